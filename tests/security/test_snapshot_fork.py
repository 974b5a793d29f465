"""Snapshots from the sandbox's side: what code inside plants in its workdir and /tmp before a
snapshot is hostile, and neither the snapshot stored on the host nor a restore nor a new
sandbox made from it (from_snapshot) may carry a set-id file, a device node, a fifo or a
hard link, or follow a symlink the sandbox planted."""
import os
import shutil
import stat
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from daemon_util import container_daemon, sh_ok as sh  # noqa: E402

PLANT = (
    "cp /bin/true su && chmod 6755 su && "          # a set-uid, set-gid copy of a program
    "mkdir sgid && chmod 2775 sgid && "              # a set-gid directory
    "echo data > orig && ln orig hard && "           # a hard link pair
    "mkfifo fifo && "                                # a fifo
    "(mknod dev c 1 3 2>/dev/null || true) && "      # a device node (refused inside anyway)
    "ln -s /etc/shadow shadow-link && ln -s ../../../.. up && "  # links out
    "cp /bin/true /tmp/su2 && chmod 4755 /tmp/su2 && "
    "stat -c '%a %n' su sgid /tmp/su2")

# what a restore or a fork must show: no set-id bit, no special file, no shared inode
CHECK = ("find . /tmp -xdev \\( -perm /6000 -o -type p -o -type c -o -type b "
         "-o \\( ! -type d -links +1 \\) \\) -printf 'BAD %p %M %n\\n'; "
         "stat -c '%a %h %i %n' su orig hard /tmp/su2; readlink shadow-link up; cat hard")


@pytest.fixture(scope="module")
def d():
    dm = container_daemon()
    yield dm
    dm.cleanup()


def planted(d):
    sid = d.create()
    out = sh(d, sid, PLANT)
    # the bits are really set inside before the snapshot (the scratch is nosuid, not the
    # inode): the attack is real
    assert out.split("\n")[:3] == ["6755 su", "2775 sgid", "4755 /tmp/su2"], out
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {})
    assert r.status == 201, r
    return sid, r.json["id"]


def host_entries(top):
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            yield p, os.lstat(p)


def assert_clean(out):
    lines = out.split("\n")
    assert not [x for x in lines if x.startswith("BAD")], out
    su, orig, hard, su2 = (x.split() for x in lines[:4])
    assert su[0] == "755" and su2[0] == "755", out            # set-id bits gone
    assert orig[1] == hard[1] == "1" and orig[2] != hard[2], out  # two files, no link
    assert lines[4:7] == ["/etc/shadow", "../../../..", "data"], out  # links stay links


def test_the_stored_snapshot_holds_no_setid_special_file_or_hard_link(d):
    sid, snap = planted(d)
    top = os.path.join(d.state_dir, "snapshots", snap)
    seen = {}
    for p, st in host_entries(top):
        seen[os.path.relpath(p, top)] = st
        assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), p
        assert stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or \
            stat.S_ISLNK(st.st_mode), p
        assert stat.S_ISDIR(st.st_mode) or st.st_nlink == 1, p
    assert "workdir/su" in seen and "workdir/fifo" not in seen and "workdir/dev" not in seen
    # planted symlinks were stored as symlinks, not followed into the host's files
    assert os.readlink(os.path.join(top, "workdir", "shadow-link")) == "/etc/shadow"
    assert seen["workdir/hard"].st_ino != seen["workdir/orig"].st_ino
    d.delete(f"/v1/sandboxes/{sid}")
    d.delete(f"/v1/snapshots/{snap}")


def test_a_restore_brings_back_no_setid_special_file_or_hard_link(d):
    sid, snap = planted(d)
    sh(d, sid, "rm -rf ./* /tmp/*")
    assert d.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap}).status == 200
    assert_clean(sh(d, sid, CHECK))
    d.delete(f"/v1/sandboxes/{sid}")
    d.delete(f"/v1/snapshots/{snap}")


def test_a_fork_starts_with_no_setid_special_file_or_hard_link(d):
    sid, snap = planted(d)
    r = d.post("/v1/sandboxes", {"from_snapshot": snap})
    assert r.status == 201, r
    fork = r.json["id"]
    assert_clean(sh(d, fork, CHECK))
    # and it cannot set a set-id bit that works: its scratch (an overlay or not) is nosuid
    out = sh(d, fork, "chmod 4755 su && stat -c %a su && grep -E ' (/workspace|/tmp) ' "
                      "/proc/mounts")
    assert out.startswith("4755\n") and all("nosuid" in x for x in out.split("\n")[1:] if x)
    # nor change the snapshot the other forks start from
    sh(d, fork, "echo changed > orig && rm hard")
    other = d.create(from_snapshot=snap)
    assert sh(d, other, "cat orig hard") == "data\ndata\n"
    for s in (fork, other, sid):
        d.delete(f"/v1/sandboxes/{s}")
    d.delete(f"/v1/snapshots/{snap}")


def test_a_fork_cannot_reach_the_snapshot_store(d):
    """The lower layer is the snapshot's directory, read-only: nothing of the host's path to
    it, nor of the other snapshots beside it, is reachable from inside."""
    sid, snap = planted(d)
    fork = d.create(from_snapshot=snap)
    r = d.exec(fork, ["/bin/sh", "-c", "touch /workspace/x && ls / && "
                      f"ls {d.state_dir} 2>&1; ls /tmp/lo-workdir 2>&1; true"])
    assert r.status == 200 and r.json["exit_code"] == 0, r
    out = r.json["stdout"]
    assert "No such file" in out and snap not in out, out
    for s in (fork, sid):
        d.delete(f"/v1/sandboxes/{s}")
    d.delete(f"/v1/snapshots/{snap}")


def test_a_fork_mounts_nothing_through_a_symlink_its_snapshot_planted(d, tmp_path):
    """A fork's mount points beneath its workdir and /tmp are made after the snapshot's files
    are there: a symlink the sandbox planted where a later policy mounts (here /tmp/evil ->
    the host's /tmp, as the init sees it before its pivot) must not carry a mkdir or a mount
    anywhere else — the fork fails with a clear error, and nothing appears on the host."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("host file\n")
    name = f"agentd-planted-{os.getpid()}"
    sid = d.create()
    sh(d, sid, "ln -s /tmp /tmp/evil")
    snap = d.post(f"/v1/sandboxes/{sid}/snapshots", {}).json["id"]
    spec = {"bind_mounts": [{"source": str(src), "target": f"/tmp/evil/{name}",
                             "readonly": True}]}
    r = d.post("/v1/sandboxes", {"from_snapshot": snap, "spec": spec})
    try:
        assert not os.path.lexists(f"/tmp/{name}"), "the init made a directory on the host"
        assert r.status != 201 and "Too many levels of symbolic links" in r.body.decode(), r
    finally:
        if r.status == 201:
            d.delete(f"/v1/sandboxes/{r.json['id']}")
        if os.path.lexists(f"/tmp/{name}"):
            os.rmdir(f"/tmp/{name}")
        d.delete(f"/v1/sandboxes/{sid}")
        d.delete(f"/v1/snapshots/{snap}")


def test_a_fork_takes_a_mount_point_its_snapshot_already_holds(d):
    """A policy path beneath /tmp (a project checked out under /tmp, bound read-only) is a
    mount point the source sandbox's /tmp held, so its snapshot holds the directory: the fork
    takes it as its mount point (a real directory, not a symlink) and sees the host's files."""
    src = tempfile.mkdtemp(prefix="agentd-proj-", dir="/tmp")
    os.chmod(src, 0o755)    # the sandbox's user reads it, as a checkout's
    with open(os.path.join(src, "f"), "w") as f:
        f.write("host file\n")
    os.chmod(os.path.join(src, "f"), 0o644)
    spec = {"allowed_paths_ro": [src]}
    try:
        sid = d.create(spec=spec)
        snap = d.post(f"/v1/sandboxes/{sid}/snapshots", {}).json["id"]
        fork = d.create(spec=spec, from_snapshot=snap)
        assert sh(d, fork, f"cat {src}/f") == "host file\n"
        for s in (fork, sid):
            d.delete(f"/v1/sandboxes/{s}")
        d.delete(f"/v1/snapshots/{snap}")
    finally:
        shutil.rmtree(src)
