"""The TypeScript SDK (clients/typescript): its own tests, Node's test runner against a real
`agentd serve` they start (every call, multi-byte streams, errors, cancellation, the README's
quick start), and `tsc --noEmit` of its hand-written types (typescript from the committed
lockfile, `npm ci`). Skipped only when node is absent."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD

SDK = os.path.join(os.path.dirname(__file__), "..", "..", "clients", "typescript")
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: the TypeScript "
                                "SDK's tests need Node 18+ (apt-get install nodejs)")


def run(argv, timeout):
    p = subprocess.run(argv, cwd=SDK, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "AGENTD_BUILD": BUILD})
    assert p.returncode == 0, f"{' '.join(argv)}: rc={p.returncode}\n{p.stdout[-6000:]}\n{p.stderr[-3000:]}"
    return p


def test_node_is_18_or_newer():
    major = int(subprocess.check_output([NODE, "--version"], text=True).strip().lstrip("v").split(".")[0])
    assert major >= 18


def test_sdk_against_a_real_daemon():
    p = run([NODE, "--test", "test/"], timeout=600)
    assert "# fail 0" in p.stdout, p.stdout[-3000:]


@pytest.mark.skipif(NPM is None, reason="npm is not installed: the type check needs typescript "
                    "from npm (apt-get install npm)")
def test_types_check_with_tsc():
    run([NPM, "ci", "--no-audit", "--no-fund"], timeout=600)
    run([NPM, "run", "--silent", "typecheck"], timeout=300)
