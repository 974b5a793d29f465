"""The container backend run by an unprivileged user: user namespaces instead of root, and
cgroup limits in a cgroup delegated to that user (what systemd-run -p Delegate=yes gives).
The test makes the delegation itself: a cgroup per hierarchy owned by uid 65534, with an
outer memory and pids fence, then runs agentd as that user from copies of the binaries in a
directory the user can reach (the build tree may be under /root)."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import AGENTD, PROBE

NOBODY = 65534
HIERARCHIES = ["memory", "pids", "cpu", "cpuacct", "freezer", "blkio", "unified"]


def _cgroup_files(d):
    return [os.path.join(d, f) for f in ("cgroup.procs", "tasks", "cgroup.subtree_control")
            if os.path.exists(os.path.join(d, f))]


@pytest.fixture
def delegated():
    """{hierarchy: dir} of cgroups owned by uid 65534; removed (leaves first) afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to delegate cgroups to another user")
    name = f"agentd-it-deleg-{uuid.uuid4().hex[:12]}"
    dirs = {}
    for h in HIERARCHIES:
        base = f"/sys/fs/cgroup/{h}"
        if h == "unified" and not os.path.exists(os.path.join(base, "cgroup.procs")):
            continue
        if not os.path.isdir(base) or not os.access(base, os.W_OK):
            continue
        d = os.path.join(base, name)
        os.mkdir(d)
        dirs[h] = d
        for f in [d, *_cgroup_files(d)]:
            os.chown(f, NOBODY, NOBODY)
    if "memory" not in dirs or "pids" not in dirs:
        for d in dirs.values():
            os.rmdir(d)
        pytest.skip("no cgroup v1 memory+pids hierarchy to delegate from (pure v2 host)")
    # The outer fence: whatever agentd does below, the test user stays within these.
    with open(os.path.join(dirs["memory"], "memory.limit_in_bytes"), "w") as f:
        f.write(str(512 << 20))
    with open(os.path.join(dirs["pids"], "pids.max"), "w") as f:
        f.write("256")
    yield dirs
    # agentd's janitor (forked into these cgroups) may take a moment to finish and exit.
    deadline = time.monotonic() + 5
    for d in dirs.values():
        while os.path.isdir(d):
            for root, subdirs, _ in os.walk(d, topdown=False):
                for s in subdirs:
                    try:
                        os.rmdir(os.path.join(root, s))
                    except OSError:
                        pass
            try:
                os.rmdir(d)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def userdir():
    """A directory of uid 65534 with copies of agentd and sbxprobe, and its runtime dir."""
    d = tempfile.mkdtemp(prefix="agentd-it-unpriv-", dir="/var/tmp")
    os.chmod(d, 0o755)
    for src in (AGENTD, PROBE):
        shutil.copy(src, d)
    run_dir = os.path.join(d, "run")
    os.mkdir(run_dir, 0o700)
    os.chown(run_dir, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody_in(delegated):
    """A preexec_fn: join the delegated cgroups (None: stay in the caller's cgroup, which
    that user cannot write), then become uid/gid 65534."""
    procs = [os.path.join(d, "cgroup.procs") for d in (delegated or {}).values()]

    def enter():
        for p in procs:
            with open(p, "w") as f:
                f.write("0")
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    return enter


def run_as_nobody(userdir, delegated, *args):
    """agentd ARGS as uid 65534, started inside the delegated cgroups."""
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": os.path.join(userdir, "run"),
           "HOME": userdir}
    return subprocess.run([os.path.join(userdir, "agentd"), *args], capture_output=True,
                          env=env, cwd=userdir, preexec_fn=as_nobody_in(delegated),
                          timeout=60)


def test_container_runs_unprivileged_with_a_delegated_cgroup(userdir, delegated, hostdir):
    probe = os.path.join(userdir, "sbxprobe")
    r = run_as_nobody(userdir, delegated, "run", "--backend", "container", "--json",
                      "--ro", userdir, "--", "/bin/sh", "-c",
                      f"id -u; {probe} write {hostdir}/planted; {probe} read /etc/shadow; true")
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    lines = out["stdout"].splitlines()
    assert lines[0] == "1000", out                   # the sandbox's own user, not nobody
    assert lines[1].startswith("BLOCKED"), out      # the host dir is not in the sandbox
    assert lines[2].startswith("BLOCKED"), out
    assert not os.path.exists(os.path.join(hostdir, "planted"))


def test_unprivileged_memory_limit_holds(userdir, delegated):
    probe = os.path.join(userdir, "sbxprobe")
    r = run_as_nobody(userdir, delegated, "run", "--backend", "container", "--json",
                      "--memory", "32M", "--ro", userdir, "--", probe, "mem-bomb",
                      str(256 << 20))
    out = json.loads(r.stdout)
    assert out["limit_hit"] == "memory", out
    # The sandbox's cgroup was below the delegated one, and is gone.
    for d in delegated.values():
        left = [e for root, subdirs, _ in os.walk(d) for e in subdirs
                if e not in ("agentd", "agentd-supervisor")]
        assert left == [], left


def test_unprivileged_mountinfo_names_no_runtime_dir(userdir, delegated):
    """/etc and /dev are the sandbox's tmpfs root's, not binds from the rootfs cache below
    $XDG_RUNTIME_DIR (mountinfo's field 4 would name it); /etc stays read-only."""
    run_dir = os.path.join(userdir, "run")
    r = run_as_nobody(userdir, delegated, "run", "--backend", "container", "--json", "--",
                      "/bin/sh", "-c", "cat /proc/self/mountinfo /proc/1/mountinfo; "
                      "echo x >> /etc/passwd || echo etc-ro; test -e /etc/shadow || echo ok")
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    lines = out["stdout"].splitlines()
    assert lines[-2:] == ["etc-ro", "ok"], out
    for leak in (userdir, "rootfs-cache", out["sandbox_id"]):
        assert not [m for m in lines if leak in m], (leak, out["stdout"])
    assert not [m for m in lines if m.split()[4:5] in (["/etc"], ["/dev"])], out["stdout"]
    assert os.path.exists(os.path.join(run_dir, "agentd", "rootfs-cache"))
