"""Re-adoption of a durable sandbox proves its init (docs/backends.md#durable-sandboxes):
a socket planted at the endpoint (without the secret, or with a leaked one), a token
naming a reused or another live pid, and a process of the sandbox's own pid namespace
trying to become its host are all refused. The attacks need the wire format and real
processes around the library, so they are C (tests/unit/test_durable.c, attack_*), run
here one by one."""
import os
import subprocess

import pytest

from .secsuite import BUILD

TEST = os.path.join(BUILD, "tests", "test_durable")


@pytest.mark.parametrize("name", [
    "attack_planted_endpoint_without_the_secret_is_refused",
    "attack_planted_endpoint_with_a_leaked_secret_is_refused",
    "attack_reused_pid_is_refused",
    "attack_forged_pid_is_refused",
    "attack_sandbox_process_cannot_become_its_host",
])
def test_readoption_is_refused_unless_the_init_proves_itself(name):
    if not os.path.exists(TEST):
        pytest.skip(f"{TEST} not built (meson -Dtests=true)")
    r = subprocess.run([TEST], env=dict(os.environ, AGENTD_TEST_FILTER=name),
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert f"[       OK ] {name}" in out, out
    assert r.returncode == 0, out
