"""The whole files API against a real daemon (docs/api.md#files): list, stat, mkdir -p, PUT
with parents, delete, rename, chmod, directories as tar streams both ways, a watch, and
`agentd sandbox cp` as `docker cp`. Attacks on the same calls are in
tests/security/test_files_attacks.py."""
import io
import json
import os
import socket
import stat
import subprocess
import tarfile
import time

import pytest

from daemon_util import (
    Daemon, files_url as url, put_tar, sh_stdout as sh, wait_until)


@pytest.fixture(scope="module")
def d():
    dm = Daemon("--max-file-size", "4M").start()
    yield dm
    dm.cleanup()


@pytest.fixture
def sid(d):
    s = d.create()
    yield s
    d.delete(f"/v1/sandboxes/{s}")




def tar_bytes(entries):
    """entries: (name, kind, data-or-target, mode)"""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            ti.mtime = 1700000000
            if kind == "file":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
                continue
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
            t.addfile(ti)
    return bio.getvalue()



def members(body):
    with tarfile.open(fileobj=io.BytesIO(body)) as t:
        out = {}
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            out[m.name.rstrip("/")] = (m.type, stat.S_IMODE(m.mode),
                                       f.read() if f else m.linkname)
        return out


def test_mkdir_put_with_parents_list_stat_chmod_rename_delete(d, sid):
    assert d.post(f"/v1/sandboxes/{sid}/files/mkdir", {"path": "a/b/c"}).status == 404
    assert d.post(f"/v1/sandboxes/{sid}/files/mkdir",
                  {"path": "a/b/c", "parents": True}).status == 200
    # mkdir -p of what exists is no error; plain mkdir of it is a 409
    assert d.post(f"/v1/sandboxes/{sid}/files/mkdir",
                  {"path": "a/b/c", "parents": True}).status == 200
    assert d.post(f"/v1/sandboxes/{sid}/files/mkdir", {"path": "a/b/c"}).status == 409
    assert d.request("PUT", url(sid, "", "n/o/f.txt"), raw=b"x").status == 404
    r = d.request("PUT", url(sid, "", "n/o/f.txt", "&parents=1"), raw=b"hello")
    assert r.status == 200 and r.json["size"] == 5, r
    sh(d, sid, "ln -s n/o/f.txt lnk; mkfifo fifo")
    r = d.get(url(sid, "/list", "."))
    assert r.status == 200 and r.json["truncated"] is False, r
    byname = {e["name"]: e for e in r.json["entries"]}
    assert set(byname) == {"a", "n", "lnk", "fifo"}
    assert byname["a"]["type"] == "dir" and byname["fifo"]["type"] == "other"
    assert byname["lnk"]["type"] == "symlink" and byname["lnk"]["link_target"] == "n/o/f.txt"
    r = d.get(url(sid, "/stat", "n/o/f.txt"))
    assert r.status == 200, r
    assert (r.json["type"], r.json["size"], r.json["mode"]) == ("file", 5, "0644")
    assert abs(r.json["mtime_ms"] / 1000 - time.time()) < 600
    # stat of a symlink reports the link, never what it points to
    assert d.get(url(sid, "/stat", "lnk")).json["type"] == "symlink"
    assert d.get(url(sid, "/stat", "missing")).status == 404
    # chmod: the executable bit, as an octal string or an integer
    assert d.post(f"/v1/sandboxes/{sid}/files/chmod", {"path": "n/o/f.txt",
                                                       "mode": "755"}).status == 200
    assert sh(d, sid, "test -x n/o/f.txt && stat -c %a n/o/f.txt") == "755\n"
    assert d.post(f"/v1/sandboxes/{sid}/files/chmod", {"path": "n/o/f.txt",
                                                       "mode": 0o600}).status == 200
    assert d.get(url(sid, "/stat", "n/o/f.txt")).json["mode"] == "0600"
    r = d.post(f"/v1/sandboxes/{sid}/files/chmod", {"path": "lnk", "mode": "777"})
    assert r.status == 400 and "symbolic link" in r.error["message"], r
    # rename, with and without replacing
    d.request("PUT", url(sid, "", "other.txt"), raw=b"other")
    r = d.post(f"/v1/sandboxes/{sid}/files/rename", {"from": "n/o/f.txt", "to": "other.txt",
                                                     "noreplace": True})
    assert r.status == 409, r
    assert d.post(f"/v1/sandboxes/{sid}/files/rename",
                  {"from": "n/o/f.txt", "to": "a/b/c/g.txt"}).status == 200
    assert d.get(url(sid, "", "a/b/c/g.txt")).body == b"hello"
    # delete: a file, a symlink (not its target), an empty dir; a tree only when recursive
    assert d.request("DELETE", url(sid, "", "lnk")).status == 200
    assert d.request("DELETE", url(sid, "", "a")).status == 409
    assert d.request("DELETE", url(sid, "", "a", "&recursive=1")).status == 200
    assert d.request("DELETE", url(sid, "", "a")).status == 404
    assert d.request("DELETE", url(sid, "", "n/o")).status == 200
    assert sh(d, sid, "ls") == "fifo\nn\nother.txt\n"


def test_absolute_paths_reach_tmp_and_are_resolved_in_the_sandboxs_root(d, sid):
    assert d.request("PUT", url(sid, "", "/tmp/x/y", "&parents=1"), raw=b"in tmp").status == 200
    assert sh(d, sid, "cat /tmp/x/y") == "in tmp"
    assert [e["name"] for e in d.get(url(sid, "/list", "/tmp/x")).json["entries"]] == ["y"]
    # reading where the sandbox reads: its own /etc, not the host's
    r = d.get(url(sid, "/stat", "/etc/passwd"))
    assert r.status == 200 and r.json["type"] == "file", r
    # never written where the sandbox cannot write
    r = d.post(f"/v1/sandboxes/{sid}/files/mkdir", {"path": "/etc/x"})
    assert r.status == 400 and "may write" in r.error["message"], r
    assert d.get(url(sid, "/list", "/proc/self")).status == 400
    # /proc itself too (a mount point whose parent is the root): its kernel view not listed
    r = d.get(url(sid, "/list", "/proc"))
    assert r.status == 400 and "refused" in r.error["message"], r
    # rename across filesystems is a clear 400
    r = d.post(f"/v1/sandboxes/{sid}/files/rename", {"from": "/tmp/x/y", "to": "y"})
    assert r.status == 400 and "same filesystem" in r.error["message"], r


def test_process_backends_reach_the_workdir_and_say_why_not_more(d):
    s = d.create(backend="linux-native")
    try:
        assert d.post(f"/v1/sandboxes/{s}/files/mkdir", {"path": "p/q",
                                                         "parents": True}).status == 200
        assert d.get(url(s, "/list", "p")).json["entries"][0]["name"] == "q"
        r = put_tar(d, s, "t", tar_bytes([("f", "file", b"1", 0o644)]))
        assert r.status == 200, r
        r = d.get(url(s, "/list", "/tmp"))
        assert r.status == 501 and "reaches only the sandbox's workdir" in r.error["message"], r
    finally:
        d.delete(f"/v1/sandboxes/{s}")


TREE = [("t", "dir", None, 0o755), ("t/exe", "file", b"#!/bin/sh\necho hi\n", 0o755),
        ("t/ro.txt", "file", b"read only\n", 0o444), ("t/priv", "dir", None, 0o700),
        ("t/priv/key", "file", b"k" * 70000, 0o600), ("t/empty", "dir", None, 0o750),
        ("t/rel", "symlink", "priv/key", 0o777), ("t/up", "symlink", "../t/exe", 0o777),
        ("t/hard", "hardlink", "t/exe", 0o755)]


def test_tar_round_trip_keeps_tree_modes_empty_dirs_and_symlinks(d, sid):
    r = put_tar(d, sid, "dst", tar_bytes(TREE))
    assert r.status == 200 and r.json["entries"] == len(TREE), r
    out = sh(d, sid, "cd dst/t && ./exe && stat -c '%n %a %F' * | sort && readlink rel up"
                     " && stat -c %h exe")
    assert out.startswith("hi\n"), out
    assert "empty 750 directory\n" in out and "priv 700 directory\n" in out
    assert "ro.txt 444 regular file\n" in out and "rel 777 symbolic link\n" in out
    assert out.endswith("priv/key\n../t/exe\n2\n"), out
    # files belong to the sandbox's user
    assert sh(d, sid, "stat -c %U dst/t/exe") == "agent\n"
    r = d.get(url(sid, "/tar", "dst"))
    assert r.status == 200 and r.headers["Content-Type"] == "application/x-tar", r
    assert r.headers.get("Transfer-Encoding") == "chunked"   # streamed, not buffered whole
    m = members(r.body)
    assert m["t/exe"] == (tarfile.REGTYPE, 0o755, b"#!/bin/sh\necho hi\n")
    assert m["t/priv/key"] == (tarfile.REGTYPE, 0o600, b"k" * 70000)
    assert m["t/empty"][:2] == (tarfile.DIRTYPE, 0o750)
    assert m["t/rel"] == (tarfile.SYMTYPE, 0o777, "priv/key")
    # and back into a second sandbox: the same tree
    other = d.create()
    try:
        assert put_tar(d, other, "/tmp/copy", r.body).status == 200
        assert members(d.get(url(other, "/tar", "/tmp/copy")).body) == m
    finally:
        d.delete(f"/v1/sandboxes/{other}")


def test_tar_upload_needs_its_content_type_and_a_tar(d, sid):
    r = d.request("PUT", url(sid, "/tar", "x"), raw=tar_bytes(TREE))
    assert r.status == 415, r
    r = put_tar(d, sid, "x", b"not a tar archive at all" * 100)
    assert r.status == 400 and "tar" in r.error["message"], r
    assert d.get(url(sid, "/tar", "missing")).status == 404
    assert d.get(url(sid, "/list", "missing/")).status == 404


def read_events(conn, n, timeout=30):
    """n NDJSON lines of an open watch response."""
    resp = conn
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        line = resp.readline()
        if not line:
            break
        out.append(json.loads(line))
    return out


def open_watch(d, sid, path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    s.settimeout(60)
    s.sendall(f"GET {url(sid, '/watch', path)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    f = s.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += f.readline()
    assert head.startswith(b"HTTP/1.1 200"), head

    class Chunked:
        def __init__(self):
            self.buf = b""

        def readline(self):
            while b"\n" not in self.buf:
                size = int(f.readline().strip(), 16)
                if size == 0:
                    return b""
                self.buf += f.read(size)
                f.readline()
            line, self.buf = self.buf.split(b"\n", 1)
            return line + b"\n"

    class Conn:
        def close(self):    # the socket closes only with its file object
            f.close()
            s.close()
    return Conn(), Chunked()


def inotify_fds(d):
    """The daemon's open inotify instances."""
    n = 0
    for fd in os.listdir(f"/proc/{d.proc.pid}/fd"):
        try:
            n += os.readlink(f"/proc/{d.proc.pid}/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            pass
    return n


def test_watch_reports_create_modify_delete_and_ends_with_destroy(d):
    s = d.create()
    sock, w = open_watch(d, s, ".")
    try:
        assert read_events(w, 1) == [{"event": "watching", "path": "."}]
        sh(d, s, "mkdir sub")
        # the new directory is watched by the time its create is reported (recursive)
        assert read_events(w, 1) == [{"event": "create", "path": "sub", "type": "dir"}]
        sh(d, s, "echo 1 > sub/new.txt; echo 2 >> sub/new.txt; rm sub/new.txt")
        ev = []
        while not any(e.get("event") == "delete" for e in ev):
            got = read_events(w, 1)
            assert got, ev
            ev += got
        seen = [(e["event"], e["path"], e["type"]) for e in ev]
        assert ("create", "sub/new.txt", "file") in seen, seen
        assert ("modify", "sub/new.txt", "file") in seen, seen
        assert seen[-1] == ("delete", "sub/new.txt", "file"), seen
        sh(d, s, "mv sub sub2")
        moves = read_events(w, 2)
        assert [(e["event"], e["direction"], e["path"]) for e in moves] == \
            [("move", "from", "sub"), ("move", "to", "sub2")], moves
        assert moves[0]["cookie"] == moves[1]["cookie"]
    finally:
        assert d.delete(f"/v1/sandboxes/{s}").status == 200
    # destroy ends the stream (a last "end" line, then the end of the response)
    rest = read_events(w, 100, timeout=30)
    assert rest and rest[-1] == {"event": "end", "reason": "the sandbox was destroyed"}, rest
    # and its inotify instance went with it, before the destroy answered
    assert inotify_fds(d) == 0
    sock.close()


def test_watches_are_bounded_and_released_by_clients_going_away(d, sid):
    socks = [open_watch(d, sid, ".") for _ in range(8)]
    r = d.get(url(sid, "/watch", "."))
    assert r.status == 429 and "too many watches" in r.error["message"], r
    assert inotify_fds(d) == 8
    for s, _ in socks:
        s.close()
    # each watch ends when its client goes (its inotify instance with it)
    assert wait_until(lambda: inotify_fds(d) == 0, timeout=30)
    # and its place (counted until the server let go of the response, a moment later)
    assert wait_until(lambda: d.get(url(sid, "/watch", "missing")).status == 404, timeout=30)
    s, w = open_watch(d, sid, "/tmp")
    assert read_events(w, 1) == [{"event": "watching", "path": "/tmp"}]
    s.close()


def test_a_watch_walks_the_tree_with_the_sandboxs_ids_only(d, sid):
    """A directory the sandbox locked itself out of (mode 0) is not opened by the watch's
    walk: the walk runs with the sandbox's fs ids to its end (each inotify_add_watch, made
    as the sandbox's uid, once reset them to root's, and root opened what the sandbox
    cannot, whose watch then failed the whole call)."""
    sh(d, sid, "mkdir -p a locked/inner && chmod 0 locked")
    sock, w = open_watch(d, sid, ".")
    assert read_events(w, 1) == [{"event": "watching", "path": "."}]
    sh(d, sid, "touch a/after")
    assert read_events(w, 1) == [{"event": "create", "path": "a/after", "type": "file"}]
    sock.close()


def test_a_directory_moved_in_with_more_than_the_watch_reports_is_an_overflow(d, sid):
    """A directory of 5000 files renamed under the watch: its files are reported as created
    up to a bound, and past it the client is told it missed some (an overflow and the
    end), never handed a silently shorter list."""
    sh(d, sid, "mkdir -p /tmp/w/a && cd /tmp/w/a && seq 5000 | xargs touch")
    sock, w = open_watch(d, sid, "/tmp/w")
    assert read_events(w, 1) == [{"event": "watching", "path": "/tmp/w"}]
    # one rename (in one directory: Landlock refuses a move across): the files of
    # the directory under its new name are found by walking it
    sh(d, sid, "mv /tmp/w/a /tmp/w/big")
    events = []
    creates = 0     # (without the bound's overflow: 4096, then silence)
    while creates < 5000 and not (events and events[-1]["event"] == "end"):
        got = read_events(w, 1)
        assert got, (creates, events[-3:])
        events += got
        creates += got[0]["event"] == "create" and got[0]["path"].startswith("big/")
    assert (events[0]["event"], events[0]["direction"], events[0]["path"]) == \
        ("move", "from", "a"), events[:3]
    assert creates == 5000 or {"event": "overflow"} in events, (creates, events[-3:])
    sock.close()


def cp(d, *args, input=None):
    return d.cli("sandbox", "cp", *args, input=input)


def test_cp_copies_directories_both_ways_like_docker_cp(d, sid, tmp_path):
    src = tmp_path / "proj"
    (src / "pkg" / "empty").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("print(1)\n")
    (src / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(src / "run.sh", 0o755)
    os.symlink("pkg/mod.py", src / "link")
    # into a path that does not exist: it becomes the directory
    p = cp(d, str(src), f"{sid}:newdir")
    assert p.returncode == 0, p
    assert sh(d, sid, "./newdir/run.sh; readlink newdir/link; ls newdir/pkg") == \
        "run\npkg/mod.py\nempty\nmod.py\n"
    # into an existing directory: under its own name
    sh(d, sid, "mkdir existing")
    assert cp(d, str(src), f"{sid}:existing").returncode == 0
    assert sh(d, sid, "ls existing/proj") == "link\npkg\nrun.sh\n"
    # a file into a directory keeps its name
    assert cp(d, str(src / "run.sh"), f"{sid}:existing").returncode == 0
    assert sh(d, sid, "ls -l existing/run.sh | cut -c1-10") == "-rw-r--r--\n"
    # and back: a directory to a new host path, then into an existing one
    out = tmp_path / "back"
    assert cp(d, f"{sid}:newdir", str(out)).returncode == 0
    assert (out / "pkg" / "mod.py").read_text() == "print(1)\n"
    assert os.readlink(out / "link") == "pkg/mod.py"
    assert os.stat(out / "run.sh").st_mode & 0o777 == 0o755
    assert (out / "pkg" / "empty").is_dir()
    assert cp(d, f"{sid}:newdir", str(out)).returncode == 0
    assert (out / "newdir" / "run.sh").exists()
    assert cp(d, f"{sid}:newdir/run.sh", str(tmp_path)).returncode == 0
    assert (tmp_path / "run.sh").read_text() == "#!/bin/sh\necho run\n"


def test_cp_dash_is_a_tar_stream(d, sid, tmp_path):
    data = tar_bytes([("s/a.txt", "file", b"A\n", 0o640), ("s/e", "dir", None, 0o755)])
    p = cp(d, "-", f"{sid}:fromstdin", input=data)
    assert p.returncode == 0, p
    assert sh(d, sid, "cat fromstdin/s/a.txt; stat -c %a fromstdin/s/a.txt") == "A\n640\n"
    p = cp(d, f"{sid}:fromstdin", "-")
    assert p.returncode == 0, p
    m = members(p.stdout)
    assert m["s/a.txt"] == (tarfile.REGTYPE, 0o640, b"A\n") and "s/e" in m


def test_cp_shows_the_daemons_errors_never_a_broken_pipe(d, sid, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 << 20))     # over --max-file-size 4M
    p = cp(d, str(big), f"{sid}:big")
    assert p.returncode == 125, p
    assert b"413" in p.stderr and b"limit" in p.stderr and b"Broken pipe" not in p.stderr, p
    bigdir = tmp_path / "bigdir"
    bigdir.mkdir()
    os.rename(big, bigdir / "big")
    p = cp(d, str(bigdir), f"{sid}:bigdir")
    assert p.returncode == 125 and b"413" in p.stderr and b"Broken pipe" not in p.stderr, p
    p = cp(d, f"{sid}:nothing-here", str(tmp_path / "x"))
    assert p.returncode == 125 and b"404" in p.stderr, p
    p = cp(d, f"{sid}:../etc", str(tmp_path / "x"))
    assert p.returncode == 125 and b"400" in p.stderr and not (tmp_path / "x").exists(), p
    p = cp(d, "-", f"{sid}:t", input=b"garbage" * 1000)
    assert p.returncode == 125 and b"400" in p.stderr and b"tar" in p.stderr, p
