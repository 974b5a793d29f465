"""What a container sandbox learns of agentd's host layout from its mount table: nothing.
/proc/self/mountinfo names each mount's root within its filesystem (field 4); a bind from
agentd's rootfs cache on the host's disk would read <state dir>/rootfs-cache/<fp>/etc there.
/etc and /dev are directories of the sandbox's tmpfs root instead (read-only with it), for
the one-shot CLI as root here (as an unprivileged user: tests/integration/test_unprivileged.py)."""
import os
import shutil
import tempfile

import pytest

from . import secsuite

# Read both tables, then check that /etc and /dev are still what they were meant to be.
SCRIPT = r"""
cat /proc/self/mountinfo; echo ===; cat /proc/1/mountinfo; echo ===
if (echo x >> /etc/passwd) 2>/dev/null; then echo etc-passwd-writable; fi
if mkdir /etc/x 2>/dev/null; then echo etc-mkdir-ok; fi
if chmod 666 /etc/passwd 2>/dev/null; then echo etc-chmod-ok; fi
if (: > /dev/agentd-x) 2>/dev/null; then echo dev-create-ok; fi
test -e /etc/shadow && echo shadow-visible
echo hi > /dev/null && head -c 4 /dev/zero | od -An -tx1 | tr -d ' \n' && echo
grep -q '^root:' /etc/passwd && echo passwd-ok
test -s /etc/ld.so.cache && echo ldcache-ok
"""


def _available():
    if "container" not in secsuite.available_backends():
        pytest.skip("the container backend is not available here")


def _check(out, leaks):
    self_mi, init_mi, rest = out.split("===\n", 2)
    for table in (self_mi, init_mi):
        assert " / " in table, table
        for line in table.splitlines():
            for leak in leaks:
                assert leak not in line, f"{leak!r} in the sandbox's mountinfo: {line}"
    # neither /etc nor /dev is a bind from a host directory of agentd's
    points = {line.split()[4]: line.split()[3] for line in self_mi.splitlines()}
    assert "/etc" not in points and "/dev" not in points, self_mi
    lines = rest.splitlines()
    for bad in ("etc-passwd-writable", "etc-mkdir-ok", "etc-chmod-ok", "dev-create-ok",
                "shadow-visible"):
        assert bad not in lines, rest
    assert "00000000" in lines and "passwd-ok" in lines and "ldcache-ok" in lines, rest


def test_one_shot_root_mountinfo_names_no_state_dir():
    """As root, with a work root of the test's own (its cache beside it) and the default."""
    _available()
    state = tempfile.mkdtemp(prefix="agentd-sec-state-", dir="/var/tmp")
    try:
        work = os.path.join(state, "sandboxes")
        for env in ({"AGENTD_WORK_ROOT": work}, {}):
            r = secsuite.agentd("run", "--backend", "container", "--json", "--", "/bin/sh",
                                "-c", SCRIPT, env=env)
            assert r.rc == 0 and r.json, r
            root = env.get("AGENTD_WORK_ROOT", "/var/lib/agentd/sandboxes")
            _check(r.json["stdout"], [os.path.dirname(root), "rootfs-cache",
                                      "/var/lib/agentd", r.json["sandbox_id"]])
        assert os.path.exists(os.path.join(state, "rootfs-cache"))  # the cache is still used
    finally:
        shutil.rmtree(state, ignore_errors=True)
