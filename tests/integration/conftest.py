"""Shared fixtures for the integration tests: they drive the built `agentd` binary and
probe from inside the sandbox with the project's static helper `sbxprobe`."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

BUILD = os.environ.get("AGENTD_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
BUILD = os.path.abspath(BUILD)
AGENTD = os.path.join(BUILD, "agentd")
PROBE_DIR = os.path.join(BUILD, "tests")
PROBE = os.path.join(PROBE_DIR, "sbxprobe")

ISOLATING = ["linux-native"]
ALL_BACKENDS = ["host-direct", "linux-native", "container"]


class Result:
    def __init__(self, proc):
        self.proc = proc
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.json = None
        if proc.stdout.startswith(b"{"):
            self.json = json.loads(proc.stdout)

    def __repr__(self):
        return f"rc={self.rc} stdout={self.stdout[:500]!r} stderr={self.stderr[:500]!r}"


def agentd(*args, input=None, timeout=60, env=None, pass_fds=()):
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if env:
        e.update(env)
    p = subprocess.run([AGENTD, *args], input=input, capture_output=True, timeout=timeout,
                       env=e, pass_fds=pass_fds)
    return Result(p)


def degraded(backend):
    """host-direct enforces no filesystem, network or syscall wall: agentd runs it only when
    told to run without them (docs/policy.md#enforcement)."""
    return ["--allow-degraded"] if backend == "host-direct" else []


def run(backend, *cmd, opts=(), input=None, json_out=True, **kw):
    """agentd run --backend B [opts] -- cmd..., with the probe helper's dir readable."""
    args = ["run", "--backend", backend, *degraded(backend), "--ro", PROBE_DIR]
    if json_out:
        args.append("--json")
    if input is not None:
        args.append("-i")
    args += list(opts)
    args += ["--", *cmd]
    return agentd(*args, input=input, **kw)


def probe(backend, *pargs, opts=(), **kw):
    """Run one sbxprobe attempt; returns (Result, 'ALLOWED'/'BLOCKED', line)."""
    r = run(backend, PROBE, *pargs, opts=opts, **kw)
    assert r.json is not None, r
    out = r.json["stdout"]
    line = out.strip().splitlines()[-1] if out.strip() else ""
    verdict = line.split(" ", 1)[0] if line else ""
    return r, verdict, line


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def hostdir():
    """A host directory outside any sandbox policy, world-readable and -writable, so that
    only the sandbox mechanism (not file permissions) can keep a command out."""
    d = tempfile.mkdtemp(prefix="agentd-it-", dir="/var/tmp")
    os.chmod(d, 0o777)
    secret = os.path.join(d, "secret.txt")
    with open(secret, "w") as f:
        f.write("TOP-SECRET\n")
    os.chmod(secret, 0o666)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def pytest_configure(config):
    if not os.path.exists(AGENTD):
        raise pytest.UsageError(f"{AGENTD} not built (run make build)")
