"""The files API under attack (docs/api.md#files): hostile tar archives (`..`, absolute paths,
device nodes and fifos, a symlink then a file through it, hard links out of the archive, a
100k-entry bomb, sizes that lie), a sandbox racing the host by swapping a directory for a
symlink while the host lists, deletes, renames, chmods and downloads, and chmod asked for
setuid. Nothing may ever be read or written outside the sandbox; a refused archive leaves
nothing. linux-native has its workdir on the host (an escape would land in hostdir); the
container resolves inside its own root."""
import http.client
import io
import os
import sys
import tarfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from daemon_util import (  # noqa: E402
    Daemon, exec_in_background, files_url as url, put_tar, sh_stdout as sh)

BACKENDS = ["linux-native", "container"]


@pytest.fixture(scope="module")
def d():
    dm = Daemon("--max-file-size", "64M").start()
    yield dm
    dm.cleanup()


@pytest.fixture(params=BACKENDS)
def sid(request, d):
    s = d.create(backend=request.param)
    yield s
    d.delete(f"/v1/sandboxes/{s}")




def entry(t, name, kind="file", data=b"x", mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.mode = mode
    if kind == "file":
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
        return
    ti.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
               "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    ti.linkname = link
    if kind in ("chr", "blk"):
        ti.devmajor, ti.devminor = 1, 3     # /dev/null's numbers
    t.addfile(ti)


def archive(*entries):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.GNU_FORMAT) as t:
        for e in entries:
            entry(t, *e) if isinstance(e, tuple) else entry(t, **e)
    return bio.getvalue()



def host_snapshot(hostdir):
    return sorted((n, os.lstat(os.path.join(hostdir, n)).st_mode) for n in os.listdir(hostdir))


HOSTILE = {
    "dotdot": [("ok.txt",), ("../../../../../escaped.txt",)],
    "dotdot-inside": [("a/../../escaped.txt",)],
    "absolute": [("ok.txt",), ("/var/tmp/escaped.txt",)],
    "char-device": [dict(name="null", kind="chr")],
    "block-device": [dict(name="disk", kind="blk")],
    "fifo": [dict(name="pipe", kind="fifo")],
    "symlink-outside-absolute": [dict(name="ln", kind="symlink", link="/etc")],
    "symlink-outside-relative": [dict(name="sub/ln", kind="symlink", link="../../..")],
    "hardlink-to-shadow": [dict(name="h", kind="hardlink", link="/etc/shadow")],
    "hardlink-up-to-shadow": [dict(name="h", kind="hardlink", link="../../../../etc/shadow")],
    "hardlink-out-of-the-archive": [dict(name="h", kind="hardlink", link="planted")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_whole_and_leaves_nothing(d, sid, case, hostdir):
    sh(d, sid, "echo planted > planted")
    before = host_snapshot(hostdir)
    r = put_tar(d, sid, "dst", archive(*HOSTILE[case]))
    assert r.status == 400, (case, r)
    # the archive was checked whole before anything was made: not even the destination
    assert d.get(url(sid, "/stat", "dst")).status == 404, case
    assert not os.path.exists("/var/tmp/escaped.txt")
    assert host_snapshot(hostdir) == before
    assert sh(d, sid, "ls") == "planted\n"


def test_a_symlink_then_a_file_through_it_is_never_written_through(d, sid, hostdir):
    # the archive's own symlink, pointing inside, then a file "through" it
    r = put_tar(d, sid, "dst", archive(dict(name="real", kind="dir", mode=0o755),
                                       dict(name="ln", kind="symlink", link="real"),
                                       ("ln/through.txt", "file", b"through")))
    assert r.status == 400 and "symbolic link" in r.error["message"], r
    assert sh(d, sid, "ls -A dst/real") == ""
    # a symlink the sandbox planted (to the host directory) where the archive has a directory
    sh(d, sid, f"mkdir dst2 && ln -s {hostdir} dst2/sub")
    before = host_snapshot(hostdir)
    r = put_tar(d, sid, "dst2", archive(("sub/pwned.txt", "file", b"PWNED")))
    assert r.status == 400, r
    r = put_tar(d, sid, "dst2/sub", archive(("pwned.txt", "file", b"PWNED")))
    assert r.status in (400, 404), r
    assert host_snapshot(hostdir) == before
    with open(os.path.join(hostdir, "secret.txt")) as f:
        assert f.read() == "TOP-SECRET\n"
    # a planted symlink where the archive has a file: replaced, its target untouched
    sh(d, sid, f"mkdir dst3 && ln -s {hostdir}/writable.txt dst3/f")
    assert put_tar(d, sid, "dst3", archive(("f", "file", b"new"))).status == 200
    assert sh(d, sid, "cat dst3/f; test -L dst3/f || echo ' regular'") == "new regular\n"
    with open(os.path.join(hostdir, "writable.txt")) as f:
        assert "new" not in f.read()


def test_a_100k_entry_bomb_is_refused_by_the_entry_bound_quickly(d, sid):
    # 100001 empty directories, one more than AGENTD_TAR_MAX_ENTRIES, built fast
    block = tarfile.TarInfo("d00000")
    block.type = tarfile.DIRTYPE
    parts = []
    for i in range(100001):
        block.name = f"bomb/d{i:06d}"
        parts.append(block.tobuf(format=tarfile.USTAR_FORMAT))
    data = b"".join(parts) + b"\0" * 1024
    t0 = time.monotonic()
    r = put_tar(d, sid, "bombed", data)
    took = time.monotonic() - t0
    assert r.status == 413 and "100000 entries" in r.error["message"], r
    assert took < 60, took
    assert d.get(url(sid, "/stat", "bombed")).status == 404
    assert sh(d, sid, "ls") == ""


def test_sizes_that_lie_are_bounded(d, sid):
    # a header claiming a terabyte, without the data: refused by the bound before a write
    ti = tarfile.TarInfo("huge")
    ti.size = 1 << 40
    data = ti.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024
    r = put_tar(d, sid, "h", data)
    assert r.status == 413 and "limit" in r.error["message"], r
    assert d.get(url(sid, "/stat", "h")).status == 404
    # files that together pass the bound (64M here), each under it
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as t:
        for i in range(3):
            ti = tarfile.TarInfo(f"part{i}")
            ti.size = 25 << 20
            t.addfile(ti, io.BytesIO(b"\0" * ti.size))
    body = bio.getvalue()[:60 << 20]   # under the body limit, claiming 75M: the third header is over
    r = put_tar(d, sid, "h", body)
    assert r.status == 413, r
    assert sh(d, sid, "ls") == ""


def test_chmod_never_sets_setuid_setgid_or_sticky(d, sid):
    sh(d, sid, "echo x > f && chmod 644 f && mkdir dd")
    for mode in ("4755", "2755", "1777", 0o6755, "7777"):
        r = d.post(f"/v1/sandboxes/{sid}/files/chmod", {"path": "f", "mode": mode})
        assert r.status == 400 and "setuid" in r.error["message"], (mode, r)
    assert sh(d, sid, "stat -c %a f") == "644\n"
    # nor does an archive: its modes are masked to 0777
    r = put_tar(d, sid, "t", archive(("suid", "file", b"#!/bin/sh\n", 0o6755),
                                     dict(name="sticky", kind="dir", mode=0o1777)))
    assert r.status == 200, r
    assert sh(d, sid, "stat -c %a t/suid t/sticky") == "755\n777\n"


def test_a_sandbox_swapping_a_dir_and_a_symlink_never_moves_the_host_outside(d, sid, hostdir):
    """A loop inside swaps d between a directory (holding x) and a symlink to the host
    directory while the host lists, stats, chmods, renames, deletes, downloads and writes
    through d: whatever the timing, only the sandbox's own files are touched."""
    sh(d, sid, "true")
    before = host_snapshot(hostdir)
    script = (f"end=$(($(date +%s)+12)); while [ $(date +%s) -lt $end ]; do "
              f"rm -rf d; mkdir d; echo in > d/x; rm -rf d; ln -s {hostdir} d; "
              f"rm -f d; ln -s / d; done")
    exec_in_background(d, sid, ["/bin/sh", "-c", script])
    seen = []
    deadline = time.monotonic() + 10
    ops = 0
    while time.monotonic() < deadline:
        try:    # a download the race cut short ends without its last chunk: no answer
            tar = d.request("GET", url(sid, "/tar", "d"), new_conn=True)
        except http.client.IncompleteRead:
            tar = None
        for r in (d.get(url(sid, "/list", "d")), d.get(url(sid, "/stat", "d/secret.txt")),
                  d.get(url(sid, "", "d/secret.txt"))) + ((tar,) if tar else ()):
            if r.status == 200:     # an error names the path asked for, not what is there
                seen.append(r.body)
        d.post(f"/v1/sandboxes/{sid}/files/chmod", {"path": "d/secret.txt", "mode": "777"})
        d.post(f"/v1/sandboxes/{sid}/files/chmod", {"path": "d/x", "mode": "777"})
        d.post(f"/v1/sandboxes/{sid}/files/rename", {"from": "d/writable.txt", "to": "stolen"})
        d.request("DELETE", url(sid, "", "d/secret.txt"))
        d.request("DELETE", url(sid, "", "d", "&recursive=1"))
        d.request("PUT", url(sid, "", "d/pwned", "&parents=1"), raw=b"PWNED")
        d.post(f"/v1/sandboxes/{sid}/files/mkdir", {"path": "d/newdir", "parents": True})
        put_tar(d, sid, "d", archive(("pwned2", "file", b"PWNED")))
        ops += 1
    assert ops > 5
    for body in seen:
        assert b"TOP-SECRET" not in body and b"secret.txt" not in body and \
            b"writable.txt" not in body, body[:300]
    assert host_snapshot(hostdir) == before
    with open(os.path.join(hostdir, "secret.txt")) as f:
        assert f.read() == "TOP-SECRET\n"
    assert not os.path.exists("/stolen") and not os.path.exists("/pwned")


def test_a_daemon_with_many_groups_reads_nothing_through_them():
    """The daemon's supplementary groups are never the sandbox's: a file of one of them
    (0640) in a sandbox's workdir is not read for it, neither by the single-file GET (whose
    open switched the fs ids but kept root's groups) nor by the other calls with more
    groups than were once saved (64: past that none was dropped)."""
    groups = ",".join(str(g) for g in range(50000, 50070))
    dm = Daemon(prefix=("setpriv", "--groups", groups, "--")).start()
    try:
        s = dm.create(backend="linux-native")
        try:
            sh(dm, s, "true")
            path = os.path.join(dm.state_dir, "sandboxes", s, "workspace", "group.txt")
            with open(path, "w") as f:
                f.write("GROUP-SECRET\n")
            os.chown(path, 0, 50001)
            os.chmod(path, 0o640)
            assert sh(dm, s, "cat group.txt 2>&1 || true") != "GROUP-SECRET\n"
            r = dm.get(url(s, "", "group.txt"))
            assert r.status != 200 and b"GROUP-SECRET" not in r.body, r
            try:    # a file it cannot read cuts the download (an error, never its bytes)
                body = dm.request("GET", url(s, "/tar", "."), new_conn=True).body
            except http.client.IncompleteRead as e:
                body = e.partial
            assert b"GROUP-SECRET" not in body, body[:300]
        finally:
            dm.delete(f"/v1/sandboxes/{s}")
    finally:
        dm.cleanup()
