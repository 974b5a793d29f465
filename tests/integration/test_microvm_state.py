"""The microvm backend's lifecycle through `agentd serve` (docs/microvm.md#lifecycle): a
suspended VM gets no CPU (its QEMU's cgroup time stands still, the cgroup frozen) and
refuses exec as a container does, and runs again once resumed; the writable state (the
shared workdir and /tmp) is snapshotted and restored, a planted symlink copied as a link,
never followed; a sandbox without file sharing starts from the memory-snapshot template
(built once under the state directory, root-only, keyed by its inputs), and each one
started from it gets a fresh seed (its RNG differs from a sibling's) and the host's clock,
while one with a virtiofs share boots cold. Runs under TCG here: generous deadlines,
nothing timed."""
import os
import shutil
import stat
import time

import pytest

from conftest import AGENTD
from daemon_util import Daemon

BUILD = os.path.dirname(AGENTD)
GUEST = os.path.join(BUILD, "guest")

pytestmark = pytest.mark.skipif(
    not shutil.which("qemu-system-x86_64") or not os.path.exists(os.path.join(GUEST, "vmlinux")),
    reason="needs QEMU and the guest (ninja -C build guest)")

SPEC = {"limits": {"max_memory_bytes": 128 << 20}}
SH = "/bin/busybox"


@pytest.fixture(scope="module")
def d():
    """Sandboxes without file sharing, from the template."""
    dm = Daemon(prefix=["env", "AGENTD_MICROVM_TEMPLATES=nofiles"]).start()
    yield dm
    dm.cleanup()


@pytest.fixture(scope="module")
def ds():
    """Sandboxes with their files shared (virtiofs): cold boots."""
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def create(d):
    r = d.post("/v1/sandboxes", {"backend": "microvm", "spec": SPEC})
    assert r.status == 201, (r, d.read_log()[-2000:])
    return r.json["id"]


def sh(d, sid, script):
    r = d.exec(sid, [SH, "sh", "-c", script], timeout_ms=60000)
    assert r.status == 200, r
    return r.json


def templates(d):
    roots = []
    for dirpath, dirnames, _ in os.walk(d.state_dir):
        if os.path.basename(dirpath) == "microvm-templates":
            roots.append(dirpath)
            dirnames[:] = []
    assert len(roots) == 1, roots
    return roots[0]


def test_sandboxes_start_from_the_template_with_their_own_seed_and_the_clock(d):
    a = create(d)
    b = create(d)
    try:
        ra = sh(d, a, "head -c 32 /dev/urandom | od -An -tx1")
        rb = sh(d, b, "head -c 32 /dev/urandom | od -An -tx1")
        assert ra["exit_code"] == 0 and rb["exit_code"] == 0, (ra, rb)
        assert len(ra["stdout"].split()) == 32
        assert ra["stdout"] != rb["stdout"], "two VMs from one template share their RNG"
        # the clock is the host's, not the template's
        now = sh(d, b, "date +%s")
        assert abs(int(now["stdout"]) - time.time()) < 120, now
        # one template, in a directory only root enters
        root = templates(d)
        st = os.stat(root)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0
        keys = [n for n in os.listdir(root) if len(n) == 64]
        assert len(keys) == 1, os.listdir(root)
        files = sorted(os.listdir(os.path.join(root, keys[0])))
        assert files == ["mem", "meta.json"], files
        assert not [n for n in os.listdir(root) if n.endswith(".tmp")]
        with open(os.path.join(root, keys[0], "mem"), "rb") as f:
            assert f.read(4) == b"QEVM"
    finally:
        d.delete(f"/v1/sandboxes/{a}")
        d.delete(f"/v1/sandboxes/{b}")


def cpu_ms(d, sid):
    r = d.get(f"/v1/sandboxes/{sid}/usage")
    assert r.status == 200, r
    return r.json["cpu_time_ms"]


def qemu_cpu_ms(d):
    """CPU time of the test daemon's QEMU processes, read from the host (the sandbox's usage
    counts its commands' CPU in the guest, not QEMU's)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for q in qemus_of(d):
        with open(f"/proc/{q}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total * 1000 // tick


def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def qemus_of(d):
    """Pids of the QEMUs the test's daemon started (its descendants)."""
    out = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/comm") as f:
                if not f.read().startswith("qemu-system"):
                    continue
            q = int(p)
            while q > 1 and q != d.proc.pid:
                q = ppid(q)
            if q == d.proc.pid:
                out.append(int(p))
        except (OSError, ValueError, IndexError):
            pass
    return out


def frozen(pid):
    """Whether a cgroup on pid's path (its jail's) is frozen: cgroup v2's cgroup.freeze (at
    /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host) or the v1 freezer."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [l.rstrip("\n").split(":", 2) for l in f]
    paths = []
    for _, ctrl, rel in lines:
        if ctrl == "":
            paths += [("/sys/fs/cgroup" + rel, "cgroup.freeze", "1"),
                      ("/sys/fs/cgroup/unified" + rel, "cgroup.freeze", "1")]
        elif ctrl == "freezer":
            paths.append(("/sys/fs/cgroup/freezer" + rel, "freezer.state", "FROZEN"))
    for path, name, want in paths:
        while path.count("/") > 3:
            try:
                with open(os.path.join(path, name)) as f:
                    if f.read().strip() == want:
                        return True
            except OSError:
                pass
            path = os.path.dirname(path)
    return False


def test_a_suspended_vm_uses_no_cpu_refuses_exec_like_a_container_and_resumes(d):
    sid = create(d)
    ctr = d.create("container")
    try:
        assert sh(d, sid, "echo up")["stdout"] == "up\n"
        # running, the VM's QEMU burns CPU (TCG, the guest's timers): the probe can see it
        t0 = qemu_cpu_ms(d)
        time.sleep(3)
        assert qemu_cpu_ms(d) > t0, "the running VM's cpu time did not move: no measure"
        assert d.post(f"/v1/sandboxes/{sid}/suspend").status == 200
        time.sleep(0.5)
        # stopped (QMP) and, as a backstop, its QEMU frozen: no CPU even if QEMU ignored stop
        [qemu] = qemus_of(d)
        assert frozen(qemu), "the suspended VM's QEMU is not in a frozen cgroup"
        t1 = qemu_cpu_ms(d)
        time.sleep(3)
        t2 = qemu_cpu_ms(d)
        assert t2 == t1, f"a suspended VM used {t2 - t1} ms of CPU in 3 s"
        # exec while suspended: the container's answer
        assert d.post(f"/v1/sandboxes/{ctr}/suspend").status == 200
        rv = d.exec(sid, [SH, "true"])
        rc = d.exec(ctr, ["/bin/true"])
        assert rv.status == rc.status and rv.status >= 400, (rv, rc)
        assert "suspended" in rv.json["error"]["message"], rv
        assert rv.json["error"]["code"] == rc.json["error"]["code"], (rv, rc)
        assert d.post(f"/v1/sandboxes/{sid}/resume").status == 200
        assert not frozen(qemu)
        assert sh(d, sid, "echo back")["stdout"] == "back\n"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
        d.delete(f"/v1/sandboxes/{ctr}")


def test_a_shared_sandbox_boots_cold_and_its_state_snapshots_without_following_links(ds):
    sid = create(ds)
    try:
        # its files are shared by virtiofs: no template for it
        assert not os.path.exists(os.path.join(ds.state_dir, "microvm-templates")) or not [
            n for n in os.listdir(templates(ds)) if len(n) == 64]
        r = sh(ds, sid, "echo one > f && mkdir -p d && echo deep > d/g && echo t > /tmp/t && "
                        "ln -s /etc/shadow esc && ln -s / root && ln -s loop loop && pwd")
        assert r["exit_code"] == 0, r
        wd = r["stdout"].strip()
        snap = ds.post(f"/v1/sandboxes/{sid}/snapshots", {})
        assert snap.status == 201, snap
        snap = snap.json
        sdir = os.path.join(ds.state_dir, "snapshots", snap["id"])
        # links copied as links, never followed (the host's /etc/shadow, its root)
        assert os.readlink(os.path.join(sdir, "workdir", "esc")) == "/etc/shadow"
        assert os.readlink(os.path.join(sdir, "workdir", "root")) == "/"
        assert os.readlink(os.path.join(sdir, "workdir", "loop")) == "loop"
        assert open(os.path.join(sdir, "workdir", "f")).read() == "one\n"
        assert open(os.path.join(sdir, "tmp", "t")).read() == "t\n"
        assert snap["size_bytes"] < 1 << 20, snap
        # change, restore, read back
        r = sh(ds, sid, "echo two > f && rm -r d esc && echo new > n && rm /tmp/t")
        assert r["exit_code"] == 0, r
        r = ds.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap["id"]})
        assert r.status == 200, r
        r = sh(ds, sid, f"cd {wd} && cat f d/g /tmp/t && readlink esc && ls -a")
        assert r["exit_code"] == 0, r
        out = r["stdout"].split("\n")
        assert out[:4] == ["one", "deep", "t", "/etc/shadow"], r
        assert "n" not in out, r
        # the guest's user owns what came back: it writes there again
        assert sh(ds, sid, "echo three > f && cat f")["stdout"] == "three\n"
    finally:
        ds.delete(f"/v1/sandboxes/{sid}")
