"""The files API (PUT/GET /v1/sandboxes/{id}/files?path=P) against a hostile sandbox: paths
stay beneath the workdir the daemon opened before any sandboxed code ran; `..`, absolute
paths outside it, planted symlinks, FIFOs and directories are refused with a 4xx, and no
host file is ever read or written through them."""
import os
import urllib.parse

import pytest

from conftest import hostdir  # noqa: F401
from daemon_util import Daemon, UnixHTTPConnection

BACKENDS = ["container", "linux-native", "host-direct"]


@pytest.fixture(scope="module")
def d():
    dm = Daemon("--max-file-size", "64K").start()
    yield dm
    dm.cleanup()


def fpath(sid, p):
    return f"/v1/sandboxes/{sid}/files?path=" + urllib.parse.quote(p, safe="")


@pytest.fixture(params=BACKENDS)
def sbx(request, d):
    sid = d.create(backend=request.param)
    yield sid
    d.delete(f"/v1/sandboxes/{sid}")


def sh(d, sid, script):
    r = d.exec(sid, ["/bin/sh", "-c", script])
    assert r.status == 200, r
    return r.json


def test_roundtrip_and_files_persist_between_execs(d, sbx):
    data = bytes(range(256)) * 10
    r = d.request("PUT", fpath(sbx, "in.bin"), raw=data)
    assert r.status == 200 and r.json["size"] == len(data), r
    out = sh(d, sbx, "wc -c < in.bin; mkdir -p sub; echo made > sub/out.txt")
    assert out["stdout"].strip() == str(len(data)), out
    r = d.get(fpath(sbx, "sub/out.txt"))
    assert r.status == 200 and r.body == b"made\n"
    assert r.headers["Content-Type"] == "application/octet-stream"
    workdir = d.get(f"/v1/sandboxes/{sbx}").json["spec"]["workdir"]
    assert d.get(fpath(sbx, workdir + "/sub/out.txt")).body == b"made\n"   # absolute, inside
    assert d.get(fpath(sbx, "in.bin")).body == data
    # the file belongs to the sandbox's user: it can change it
    assert sh(d, sbx, "echo more >> in.bin && echo ok")["stdout"] == "ok\n"
    assert d.get(fpath(sbx, "missing")).status == 404
    assert d.request("PUT", fpath(sbx, "nodir/x"), raw=b"x").status == 404


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "..", ".", "a/./b", "a//b",
                                 "/workspace-other/x", "/", "", "dir/"])
def test_escaping_paths_are_400(d, bad):
    sid = d.create()
    try:
        for method in ("GET", "PUT"):
            r = d.request(method, fpath(sid, bad), raw=b"x" if method == "PUT" else None)
            assert r.status == 400, (method, bad, r)
            assert r.error["code"] == "bad_request"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_absolute_paths_are_the_sandboxs_own_and_written_only_where_it_writes(d):
    """/etc/passwd is the sandbox's (its root, not the host's) and read-only to the API as to
    the sandbox; /tmp is writable (docs/api.md#files)."""
    sid = d.create()
    try:
        r = d.get(fpath(sid, "/etc/passwd"))
        assert r.status == 200 and b"agent:" in r.body, r
        with open("/etc/passwd", "rb") as f:
            assert r.body != f.read()
        r = d.request("PUT", fpath(sid, "/etc/passwd"), raw=b"x")
        assert r.status == 400 and "may write" in r.error["message"], r
        assert d.request("PUT", fpath(sid, "/tmp/t"), raw=b"t").status == 200
        assert sh(d, sid, "cat /tmp/t")["stdout"] == "t"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_planted_symlinks_never_reach_the_host(d, sbx, hostdir):
    secret = os.path.join(hostdir, "secret.txt")
    os.chmod(hostdir, 0o755)
    sh(d, sbx, f"ln -s {secret} link; ln -s {hostdir} dirlink; ln -s ../../../.. up; "
               f"ln -s /etc/passwd pw")
    for p in ("link", "pw"):
        r = d.get(fpath(sbx, p))
        assert r.status == 400 and "symbolic link" in r.error["message"], (p, r)
        r = d.request("PUT", fpath(sbx, p), raw=b"PWNED")
        assert r.status == 400, (p, r)
    # symlinked directories resolve inside the workdir (RESOLVE_IN_ROOT), never on the host
    for p in ("dirlink/secret.txt", "up/etc/passwd", "up" + hostdir + "/secret.txt"):
        r = d.get(fpath(sbx, p))
        assert r.status == 404, (p, r)
        assert b"TOP-SECRET" not in r.body and b"root:" not in r.body
        assert d.request("PUT", fpath(sbx, p), raw=b"PWNED").status == 404, p
    with open(secret) as f:
        assert f.read() == "TOP-SECRET\n"
    assert os.listdir(hostdir) == ["secret.txt"]


def test_fifo_and_directory_are_refused_without_hanging(d, sbx):
    sh(d, sbx, "mkfifo pipe; mkdir adir")
    for p in ("pipe", "adir"):
        for method in ("GET", "PUT"):
            r = d.request(method, fpath(sbx, p), raw=b"x" if method == "PUT" else None)
            assert r.status == 400, (method, p, r)


def test_size_limits_are_413_and_write_nothing(d, sbx):
    head = d.announce("PUT", fpath(sbx, "big"), 65 << 10)
    assert head.startswith(b"HTTP/1.1 413") and b"too_large" in head, head
    # sent without announcing its size (chunked): refused once it is over the limit
    conn = UnixHTTPConnection(d.socket)
    try:
        conn.request("PUT", fpath(sbx, "big"), body=iter([b"x" * (40 << 10)] * 2),
                     encode_chunked=True)
        assert conn.getresponse().status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may close before the whole body was sent
    conn.close()
    assert sh(d, sbx, "ls big 2>&1 || true")["stdout"].endswith("No such file or directory\n")
    # a file the sandbox grew past the limit is not read (whatever its size says)
    sh(d, sbx, "head -c 70000 /dev/zero > grown")
    r = d.get(fpath(sbx, "grown"))
    assert r.status == 413, r


def test_a_swapped_workdir_does_not_redirect_the_api(d, hostdir):
    """host-direct: the sandbox owns its dir and swaps its workspace for a symlink to a host
    directory; the API keeps using the workspace it opened at creation."""
    sid = d.create(backend="host-direct")
    try:
        secret = os.path.join(hostdir, "secret.txt")
        os.chmod(hostdir, 0o755)
        out = sh(d, sid, f'cd ..; mv workspace old && ln -s {hostdir} workspace && echo swapped')
        assert out["stdout"] == "swapped\n", out
        r = d.get(fpath(sid, "secret.txt"))
        assert r.status == 404 and b"TOP-SECRET" not in r.body, r
        assert d.request("PUT", fpath(sid, "secret.txt"), raw=b"PWNED").status == 200
        with open(secret) as f:
            assert f.read() == "TOP-SECRET\n"
        assert os.listdir(hostdir) == ["secret.txt"]
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
