"""The Python SDK (clients/python) against a real `agentd serve`: every call of the API,
streaming with a character split across the command's writes, errors and their fields,
cancellation from the client side, the asyncio API, the LLM tool helper, mypy --strict,
a pip install, and the README's quick start run as written."""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

from daemon_util import Daemon, container_daemon, pids_with, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SDK = os.path.join(ROOT, "clients", "python")
sys.path.insert(0, os.path.join(SDK, "src"))

import agentd  # noqa: E402
from agentd import _http  # noqa: E402
from agentd.aio import AsyncClient  # noqa: E402


@pytest.fixture(scope="module")
def d():
    dm = container_daemon()
    yield dm
    dm.cleanup()


@pytest.fixture(scope="module")
def client(d):
    with agentd.Client(d.socket) as c:
        yield c


@pytest.fixture
def sb(client):
    with client.create(agentd.Policy("standard"), backend="container") as s:
        yield s


def test_quickstart_runs_as_written(d):
    """clients/python/examples/quickstart.py is the README's quick start, byte for byte."""
    example = os.path.join(SDK, "examples", "quickstart.py")
    with open(os.path.join(SDK, "README.md")) as f:
        assert open(example).read().strip() in f.read(), "README and example differ"
    env = dict(os.environ, AGENTD_SOCKET=d.socket, PYTHONPATH=os.path.join(SDK, "src"))
    p = subprocess.run([sys.executable, example], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0 42\n1\n2\n3\n42\n", p.stdout
    assert not [s for s in d.get("/v1/sandboxes").json["sandboxes"]], "not destroyed"


def test_daemon_calls(client):
    h = client.health()
    assert h.status == "ok" and h.version and h.max_sandboxes > 0
    assert "agentd_sandboxes_created_total" in client.metrics()
    names = {b.name: b for b in client.backends()}
    assert names["container"].available and "filesystem" in names["container"].enforces
    assert client.backend("container").name == "container"
    assert {b.name for b in client.probe()} == set(names)


def test_sandbox_lifecycle(client):
    pol = (agentd.Policy("standard").memory_mib(256).wall_time(30).label(team="sdk", run="1")
           .env(GREETING="hello"))
    sb = client.create(pol, name="sdk-life", backend="container", ttl=600, idle_timeout=300)
    with sb:
        assert sb.name == "sdk-life" and sb.info.state == "ready"
        assert sb.info.spec["limits"]["max_memory_bytes"] == 256 << 20
        assert sb.info.ttl_ms == 600000 and sb.info.idle_timeout_ms == 300000
        assert client.get("sdk-life").id == sb.id == client.get(sb.id).id
        assert [s.id for s in client.list(labels={"team": "sdk"})] == [sb.id]
        assert [s.id for s in client.list(labels={"team": "sdk", "run": "1"}, state="ready",
                                          backend="container", name="sdk-life")] == [sb.id]
        assert client.list(labels={"team": "other"}) == []
        assert sb.exec(["/bin/sh", "-c", "echo $GREETING"]).stdout == "hello\n"
        info = sb.set_timeout(ttl=900, on_expire="destroy")
        assert info.ttl_ms == 900000 and info.on_expire == "destroy"
        assert sb.suspend().state == "suspended"
        with pytest.raises(agentd.Conflict) as e:
            sb.exec(["/bin/true"])
        assert e.value.status == 409 and e.value.code == "conflict"
        assert "suspended" in e.value.message
        assert sb.resume().state == "ready"
        u = sb.usage()
        assert u.id == sb.id and u.cpu_time_limit_ms > 0
        assert sb.refresh().state == "ready"
    # the context manager destroyed it; a second destroy is no error
    assert client.get(sb.id).info.state == "destroyed"
    sb.destroy()


def test_exec_result_stdin_env_workdir_timeout(sb):
    r = sb.exec(["/bin/sh", "-c", "cat; echo $X; pwd; echo oops >&2; exit 3"],
                stdin=b"in\n", env={"X": "y"}, workdir="/tmp")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "in\ny\n/tmp\n", "oops\n")
    assert not r.ok and not r.timed_out and r.limit_hit is None
    assert r.sandbox_id == sb.id and r.backend == "container" and r.usage.wall_time_ms >= 0
    with pytest.raises(agentd.CommandFailed) as e:
        sb.exec("exit 5", check=True)
    assert e.value.result.exit_code == 5
    t0 = time.monotonic()
    r = sb.exec(["/bin/sleep", "30"], timeout=0.5)
    assert r.timed_out and r.exit_code == 124 and time.monotonic() - t0 < 20
    with pytest.raises(agentd.Timeout):
        sb.exec(["/bin/sleep", "30"], timeout=0.3, check=True)
    r = sb.exec(["/bin/sh", "-c", "printf '\\377\\000'"])
    assert r.stdout_bytes == b"\xff\x00"


def test_limits_come_back_as_limit_exceeded(client):
    pol = agentd.Policy("standard").memory_mib(64).output_bytes(1000)
    with client.create(pol, backend="container") as sb:
        r = sb.exec(["python3", "-c", "b = bytearray(512 << 20); print(len(b))"])
        assert r.limit_hit == "memory" and r.exit_code == 137, r
        with pytest.raises(agentd.LimitExceeded) as e:
            r.check()
        assert e.value.limit == "memory"
        r = sb.exec(["/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"])
        assert r.limit_hit == "output" and r.output_truncated and "omitted" in r.stdout


def test_stream_multibyte_split_across_writes(sb, monkeypatch):
    """'€' is printed one byte at a time with sleeps between: each callback gets whole
    characters, never a mangled one; then again with the client reading 5 bytes at a time
    (every JSON line and HTTP chunk split across reads)."""
    script = ("printf '\\342'; sleep 0.3; printf '\\202'; sleep 0.3; printf '\\254\\n'; "
              "printf 'x\\360\\237'; sleep 0.3; printf '\\230\\200y' >&2; "
              "printf '\\360\\237\\230\\200'")
    for read_size in (65536, 5):
        monkeypatch.setattr(_http, "READ_SIZE", read_size)
        out, err = [], []
        r = sb.exec(["/bin/sh", "-c", script], on_stdout=out.append, on_stderr=err.append)
        assert "".join(out) == "€\nx\ufffd\U0001F600" and out[0].startswith("€\n")
        assert r.stdout == "".join(out) and r.exit_code == 0
        assert r.stdout_bytes == "€\nx".encode() + b"\xf0\x9f" + "😀".encode()
        assert "".join(err) == "\ufffd\ufffdy" == r.stderr


def test_stream_decoder_joins_base64_chunks():
    """The SDK's own decoder: a character whose bytes come in two base64 chunks (as a
    process's output read from an offset, or a daemon that does not hold them back)."""
    from agentd._stream import OutputStream
    st = OutputStream("exec")
    pieces = st.feed({"stream": "stdout", "data": "4g==", "encoding": "base64"})
    pieces += st.feed({"stream": "stdout", "data": "gqw=", "encoding": "base64"})
    pieces += st.feed({"exit": {"exit_code": 0}})
    assert "".join(t for _, t in pieces) == "€"
    assert st.exec_result().stdout == "€"


def test_client_side_timeout_and_callback_error_kill_the_command(sb):
    marker = "4242.25"
    seen = []

    def running(text):
        seen.append(wait_until(lambda: pids_with(marker), timeout=10))
    t0 = time.monotonic()
    with pytest.raises(agentd.Timeout):
        sb.exec(["/bin/sh", "-c", f"echo go; exec /bin/sleep {marker}"], client_timeout=3,
                on_stdout=running)
    assert seen and seen[0], "the command never ran"
    assert time.monotonic() - t0 < 15
    assert wait_until(lambda: not pids_with(marker), timeout=20), \
        "the command outlived the cancelled exec"
    marker = "4243.25"

    def boom(text):
        assert wait_until(lambda: pids_with(marker), timeout=10)
        raise RuntimeError("stop")
    with pytest.raises(RuntimeError):
        sb.exec(["/bin/sh", "-c", f"echo go; exec /bin/sleep {marker}"], on_stdout=boom)
    assert wait_until(lambda: not pids_with(marker), timeout=20)
    # a plain (unstreamed) exec cancelled by the client's deadline too
    with pytest.raises(agentd.Timeout):
        sb.exec(["/bin/sleep", "4244.25"], client_timeout=1)
    assert wait_until(lambda: not pids_with("4244.25"), timeout=20)
    assert sb.exec(["/bin/true"]).exit_code == 0     # the client still works


def test_errors_carry_status_code_message_limit(client, d):
    with pytest.raises(agentd.NotFound) as e:
        client.get("0" * 32)
    assert (e.value.status, e.value.code) == (404, "not_found")
    assert "no sandbox" in e.value.message and isinstance(e.value, agentd.AgentdError)
    with pytest.raises(agentd.BadRequest) as e:
        client.create(agentd.Policy("standard").memory_bytes(5), backend="container")
    assert e.value.status == 400 and "max_memory_bytes" in e.value.message
    with client.create(agentd.Policy("standard").snapshot_bytes(0), name="sdk-err",
                       backend="container") as sb:
        with pytest.raises(agentd.Conflict) as e:
            client.create(name="sdk-err", backend="container")
        assert "sdk-err" in e.value.message
        with pytest.raises(agentd.LimitExceeded) as e:
            sb.snapshot()
        assert e.value.status == 413 and e.value.code == "too_large"
        assert e.value.limit == "limits.max_snapshot_bytes", e.value.message
        with pytest.raises(agentd.NotFound):
            sb.files.read("nope.txt")
        with pytest.raises(agentd.BadRequest):
            sb.files.read("../etc/passwd")
    with pytest.raises(agentd.ConnectionFailed):
        agentd.Client(os.path.join(d.dir, "nothing.sock")).health()


def test_processes(sb):
    p = sb.processes.start(["/bin/sh", "-c", "while read l; do echo got:$l; done; echo end"],
                           stdin=True)
    assert p.pid > 0 and p.info.running and p.info.stdin
    assert p.write_stdin("a\n") == 2
    p.write_stdin(b"b\n", close=True)
    info = p.wait(timeout=30)
    assert info.state == "exited" and info.exit_code == 0
    assert p.read_output() == "got:a\ngot:b\nend\n"
    chunks = list(p.output(offset=6, stream="stdout"))
    assert b"".join(c.data for c in chunks) == b"got:b\nend\n" and chunks[0].offset == 6
    s = sb.processes.start(["/bin/sleep", "600"])
    assert {q.pid for q in sb.processes.list()} >= {p.pid, s.pid}
    assert sb.processes.get(s.pid).info.running
    info = s.signal("TERM")
    info = s.wait(timeout=30)
    assert info.signal == "SIGTERM" and info.exit_code == 143
    k = sb.processes.start(["/bin/sleep", "601"])
    assert k.kill().ended_by == "killed"
    with pytest.raises(agentd.NotFound):
        sb.processes.get(k.pid)
    with pytest.raises(agentd.Conflict):
        s.signal("KILL")
    # follow: output as it is written
    f = sb.processes.start(["/bin/sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"])
    assert "".join(c.text for c in f.output(follow=True)) == "1\n2\n3\n"
    assert f.info.state == "exited"


def test_process_attach_terminal(sb):
    p = sb.processes.start(["/bin/sh"], tty=True, rows=30, cols=100)
    with p.attach(offset=0) as att:
        att.send("stty size; echo $((6*7))x\n")
        assert b"42x" in att.read_until(b"42x")
        att.resize(40, 120)
        att.send("stty size\n")
        assert b"40 120" in att.read_until(b"40 120")
    assert sb.processes.get(p.pid).info.running     # a detach leaves it running
    with p.attach() as att:
        att.send("exit 7\n")
        assert att.wait() == 7
    assert sb.processes.get(p.pid).info.exit_code == 7
    q = sb.processes.start(["/bin/sleep", "4247.25"], tty=True)
    att = q.attach(foreground=True)
    att.detach()     # a foreground attachment's end kills its process
    assert wait_until(lambda: not pids_with("4247.25"), timeout=20)
    with pytest.raises(agentd.BadRequest) as e:
        sb.processes.start(["/bin/true"]).attach()
    assert "no terminal" in e.value.message


def test_contexts_and_run_code(sb):
    ctx = sb.contexts.create("python")
    assert ctx.info.language == "python" and ctx.info.state == "ready"
    assert ctx.run("x = 41").ok
    r = ctx.run("print('out'); x + 1")
    assert (r.status, r.stdout, r.text) == ("ok", "out\n", "42")
    r = ctx.run("1/0")
    assert r.status == "error" and r.error.name == "ZeroDivisionError"
    with pytest.raises(agentd.CommandFailed):
        r.check()
    r = ctx.run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nNone")
    assert r.images and r.images[0].startswith(b"\x89PNG"), r
    streamed, results = [], []
    r = ctx.run("import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.2)\n"
                "display(7)\n'done'", on_stdout=streamed.append, on_result=results.append)
    assert "".join(streamed) == "0\n1\n2\n" and r.text == "'done'"
    assert [x.text for x in results][:1] == ["7"]
    r = ctx.run("import time\ntime.sleep(30)", timeout=0.5)
    assert r.status == "timeout" and r.timed_out
    assert [c.id for c in sb.contexts.list()] == [ctx.id]
    assert sb.contexts.get(ctx.id).info.cells >= 5
    ctx.delete()
    assert sb.contexts.list() == []
    assert sb.run_code("y = 2").ok and sb.run_code("y * 21").text == "42"
    assert sb.run_code("echo $((6*7))", "bash").stdout == "42\n"


def test_files(sb, tmp_path):
    f = sb.files
    f.write("d/a.txt", "héllo", parents=True)
    assert f.read("d/a.txt") == "héllo".encode() and f.read_text("d/a.txt") == "héllo"
    st = f.stat("d/a.txt")
    assert st.is_file and st.size == 6 and st.mode == "0644"
    f.mkdir("d/sub/deeper", parents=True)
    with pytest.raises(agentd.Conflict):
        f.mkdir("d/sub")
    assert sorted(e.name for e in f.list("d")) == ["a.txt", "sub"]
    f.rename("d/a.txt", "d/b.txt")
    assert not f.exists("d/a.txt") and f.exists("d/b.txt")
    f.chmod("d/b.txt", 0o600)
    assert f.stat("d/b.txt").mode == "0600"
    with pytest.raises(agentd.Conflict):
        f.remove("d")
    f.remove("d", recursive=True)
    assert not f.exists("d")
    # directories both ways through the tar routes
    src = tmp_path / "src"
    (src / "x" / "y").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "x" / "y" / "deep.bin").write_bytes(bytes(range(256)) * 100)
    os.symlink("top.txt", src / "link")
    up = f.upload_dir(str(src), "proj")
    assert up["entries"] >= 5
    assert sb.exec("cat proj/x/y/deep.bin | wc -c; readlink proj/link").stdout == "25600\ntop.txt\n"
    sb.exec("echo made > proj/new.txt; ln -s /etc/passwd proj/evil; ln -s ../../.. proj/up")
    dst = tmp_path / "dst"
    names = f.download_dir("proj", str(dst))
    assert (dst / "x" / "y" / "deep.bin").read_bytes() == bytes(range(256)) * 100
    assert (dst / "new.txt").read_text() == "made\n" and os.readlink(dst / "link") == "top.txt"
    # links leading out of the directory are left out, never made on the host
    assert not os.path.lexists(dst / "evil") and not os.path.lexists(dst / "up")
    assert "new.txt" in names


def test_download_refuses_a_hostile_tar(tmp_path):
    """What a sandbox made is unpacked as hostile: a name out of the directory is refused,
    nothing is written through a symlink the archive made, a device is left out."""
    import io
    import tarfile
    from agentd._stream import safe_extract

    def tar_of(*members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for m, data in members:
                t.addfile(m, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()

    def member(name, kind=tarfile.REGTYPE, data=b"x", link=""):
        m = tarfile.TarInfo(name)
        m.type, m.linkname, m.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
        return m, data if kind == tarfile.REGTYPE else None
    dest = tmp_path / "dest"
    with pytest.raises(agentd.ProtocolError):
        safe_extract(tar_of(member("../evil")), str(dest))
    assert not (tmp_path / "evil").exists()
    os.mkdir(tmp_path / "outside")
    with pytest.raises(agentd.ProtocolError):
        safe_extract(tar_of(member("sub", tarfile.DIRTYPE), member("a", tarfile.SYMTYPE,
                                                                    link="sub"),
                            member("a/f")), str(dest))
    assert not (dest / "sub" / "f").exists()
    names = safe_extract(tar_of(member("up", tarfile.SYMTYPE, link="../outside"),
                                member("up/f"), member("dev", tarfile.CHRTYPE),
                                member("ok.txt")), str(tmp_path / "d2"))
    assert sorted(names) == ["ok.txt", "up/f"] and not os.listdir(tmp_path / "outside")
    assert not (tmp_path / "d2" / "dev").exists() and (tmp_path / "d2" / "up").is_dir()


def test_files_watch(sb):
    sb.files.mkdir("w")
    events = sb.files.watch("w")
    assert next(events).event == "watching"
    sb.files.write("w/new.txt", "x")
    ev = next(events)
    assert (ev.event, ev.path, ev.type) == ("create", "new.txt", "file")
    events.close()


def test_ports(sb):
    sb.processes.start(["python3", "-c", (
        "import http.server as h\n"
        "class H(h.BaseHTTPRequestHandler):\n"
        "    def do_GET(s):\n"
        "        s.send_response(200); s.end_headers(); s.wfile.write(b'from inside')\n"
        "h.HTTPServer(('127.0.0.1', 8000), H).serve_forever()\n")])
    port = sb.ports.open(8000)
    assert port.port == 8000 and port.host == "127.0.0.1" and port.host_port
    url = f"http://127.0.0.1:{port.host_port}/"

    def fetch():
        try:
            return urllib.request.urlopen(url, timeout=5).read()
        except OSError:
            return None
    assert wait_until(fetch, timeout=30) == b"from inside"
    assert [p.port for p in sb.ports.list()] == [8000]
    with pytest.raises(agentd.Conflict):
        sb.ports.open(8000)
    sb.ports.close(8000)
    assert sb.ports.list() == []


def test_snapshots_restore_fork(client, sb):
    sb.files.write("state.txt", "v1")
    snap = sb.snapshot("sdk-snap")
    assert snap.name == "sdk-snap" and snap.sandbox_id == sb.id and snap.size_bytes >= 0
    assert [s.id for s in sb.snapshots()] == [snap.id]
    assert snap.id in {s.id for s in client.snapshots()}
    assert client.snapshot("sdk-snap").id == snap.id
    sb.files.write("state.txt", "v2")
    sb.restore("sdk-snap")
    assert sb.files.read_text("state.txt") == "v1"
    with sb.fork(copy=True) as child:
        assert child.files.read_text("state.txt") == "v1" and child.id != sb.id
        child.files.write("state.txt", "child")
        assert sb.files.read_text("state.txt") == "v1"
    for s in sb.snapshots():
        client.delete_snapshot(s.id)
    with pytest.raises(agentd.NotFound):
        client.snapshot("sdk-snap")


def test_network_patch(client):
    with client.create(agentd.Policy("standard").network_allow("127.0.0.1:9"),
                       backend="container") as sb:
        assert sb.info.network["mode"] == "allowlist"
        info = sb.set_network("none")
        assert info.network["mode"] == "none"
        info = sb.set_network("allowlist", ["example.org:443"])
        assert info.network == {"mode": "allowlist", "allow": ["example.org:443"]}
        with pytest.raises(agentd.BadRequest):
            sb.set_network("host")


def test_audit(client, sb):
    sb.exec(["/bin/true"])
    recs = client.audit()
    assert any(r.action == "create" and r.sandbox_id == sb.id for r in recs)
    last = recs[-1].seq
    sb.exec(["/bin/true"])
    newer = client.audit(since=last)
    assert newer and all(r.seq > last for r in newer) and newer[-1].action == "exec"
    assert client.audit_verify()["ok"] is True


def test_sessions(client):
    with client.session("sdk-agent", backend="container") as s:
        assert s.info.status == "ready" and s.info.sandbox_id
        assert s.execute("x = 41").status == "completed"
        e = s.execute("print(x + 1)")
        assert e.result.stdout == "42\n" and e.exit_code == 0
        assert len(s.executions()) == 2


def test_async_api(d):
    async def main():
        async with AsyncClient(d.socket) as c:
            assert (await c.health()).status == "ok"
            sb = await c.create(agentd.Policy("standard"), backend="container",
                                name="sdk-async")
            async with sb:
                assert (await c.get("sdk-async")).id == sb.id
                assert [s.id for s in await c.list(name="sdk-async")] == [sb.id]
                seen = []

                async def on_out(text):
                    seen.append(text)
                r = await sb.exec(["/bin/sh", "-c", "printf '\\342'; sleep 0.3; "
                                   "printf '\\202\\254'"], on_stdout=on_out)
                assert seen == ["€"] and r.stdout == "€"
                assert (await sb.exec(["/bin/echo", "x"])).stdout == "x\n"
                assert (await sb.run_code("6 * 7")).text == "42"
                await sb.files.write("a.txt", "async")
                assert await sb.files.read_text("a.txt") == "async"
                assert [e.name for e in await sb.files.list(".")] == ["a.txt"]
                p = await sb.processes.start(["/bin/sh", "-c", "echo bg"])
                await p.wait(timeout=30)
                assert await p.read_output() == "bg\n"
                assert (await sb.usage()).id == sb.id
                # cancelling the task that awaits an exec kills the command
                task = asyncio.ensure_future(sb.exec(["/bin/sleep", "4245.25"],
                                                     on_stdout=print))
                await asyncio.sleep(1.0)
                assert pids_with("4245.25")
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                for _ in range(200):
                    if not pids_with("4245.25"):
                        break
                    await asyncio.sleep(0.1)
                assert not pids_with("4245.25"), "cancelled exec still runs"
                with pytest.raises(agentd.Timeout):
                    await sb.exec(["/bin/sleep", "4246.25"], client_timeout=1)
                with pytest.raises(agentd.NotFound):
                    await c.get("f" * 32)
            assert (await c.get(sb.id)).info.state == "destroyed"
    asyncio.run(main())
    assert wait_until(lambda: not pids_with("4246.25"), timeout=20)


def test_async_api_every_call(d, tmp_path):
    """Each asyncio call once (the sync ones are tested one by one above)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("up")

    async def main():
        async with AsyncClient(d.socket) as c:
            assert "agentd_" in await c.metrics()
            assert "container" in {b.name for b in await c.backends()}
            assert (await c.backend("container")).available
            pol = agentd.Policy("standard").network_allow("127.0.0.1:9").label(k="async")
            async with await c.create(pol, backend="container", ttl=600) as sb:
                assert [s.id for s in await c.list(labels={"k": "async"})] == [sb.id]
                assert (await sb.refresh()).state == "ready"
                assert (await sb.set_timeout(ttl=900)).ttl_ms == 900000
                assert (await sb.set_network("none")).network["mode"] == "none"
                assert (await sb.suspend()).state == "suspended"
                with pytest.raises(agentd.Conflict):
                    await sb.exec(["/bin/true"])
                assert (await sb.resume()).state == "ready"
                r = await sb.exec("cat; exit 4", stdin="in", timeout=30)
                assert (r.exit_code, r.stdout) == (4, "in")
                with pytest.raises(agentd.CommandFailed):
                    await sb.exec("exit 1", check=True)
                f = sb.files
                await f.mkdir("a/b", parents=True)
                await f.write("a/b/x.txt", b"xy")
                assert (await f.stat("a/b/x.txt")).size == 2
                await f.rename("a/b/x.txt", "a/y.txt", noreplace=True)
                await f.chmod("a/y.txt", "600")
                assert (await f.stat("a/y.txt")).mode == "0600"
                assert await f.exists("a/y.txt") and not await f.exists("a/b/x.txt")
                await f.remove("a", recursive=True)
                assert (await f.upload_dir(str(src), "up"))["entries"] >= 2
                names = await f.download_dir("up", str(tmp_path / "down"))
                assert names and (tmp_path / "down" / "sub" / "f.txt").read_text() == "up"
                events = f.watch("up")
                assert (await events.__anext__()).event == "watching"
                await f.write("up/new", "n")
                assert (await events.__anext__()).path == "new"
                await events.aclose()
                p = await sb.processes.start(["/bin/sh", "-c", "read l; echo $l"], stdin=True)
                assert await p.write_stdin("hi\n") == 3
                await p.close_stdin()
                assert (await p.wait(30)).exit_code == 0
                assert [ch.text async for ch in p.output()] == ["hi\n"]
                s = await sb.processes.start("sleep 600")
                assert {x.pid for x in await sb.processes.list()} >= {p.pid, s.pid}
                assert (await sb.processes.get(s.pid)).info.running
                await s.signal("TERM")
                assert (await s.wait(30)).signal == "SIGTERM"
                k = await sb.processes.start("sleep 601")
                assert (await k.kill()).ended_by == "killed"
                ctx = await sb.contexts.create("python")
                res = []
                r = await ctx.run("print(1)\n2", on_stdout=res.append)
                assert res == ["1\n"] and r.text == "2"
                assert [x.id for x in await sb.contexts.list()] == [ctx.id]
                assert (await sb.contexts.get(ctx.id)).info.cells == 1
                await ctx.delete()
                assert await sb.contexts.list() == []
                srv = await sb.processes.start(["python3", "-m", "http.server", "8001",
                                                "--bind", "127.0.0.1"])
                port = await sb.ports.open(8001)
                assert [x.port for x in await sb.ports.list()] == [8001] and port.host_port
                await sb.ports.close(8001)
                assert await sb.ports.list() == []
                await srv.kill()
                await f.write("s.txt", "v1")
                snap = await sb.snapshot("async-snap")
                assert [x.id for x in await sb.snapshots()] == [snap.id]
                assert (await c.snapshot("async-snap")).id == snap.id
                assert snap.id in {x.id for x in await c.snapshots()}
                await f.write("s.txt", "v2")
                await sb.restore(snap)
                assert await f.read_text("s.txt") == "v1"
                async with await sb.fork(copy=True) as child:
                    assert await child.files.read_text("s.txt") == "v1"
                await c.delete_snapshot(snap.id)
                assert (await sb.usage()).cpu_time_ms >= 0
            recs = await c.audit()
            assert recs and (await c.audit(since=recs[-1].seq - 1))
            assert (await c.audit_verify())["ok"] is True
            async with await c.session("sdk-async-agent", backend="container") as sess:
                await sess.execute("x = 41")
                e = await sess.execute("print(x + 1)")
                assert e.result.stdout == "42\n" and len(await sess.executions()) == 2
    asyncio.run(main())


def test_tools_helper(sb):
    from agentd.tools import SandboxTools, truncate
    tools = SandboxTools(sb, max_output=400)
    oa, an = tools.openai(), tools.anthropic()
    names = {"run_command", "run_code", "read_file", "write_file", "list_files"}
    assert {t["function"]["name"] for t in oa} == names == {t["name"] for t in an}
    for t in oa:
        assert t["type"] == "function" and t["function"]["parameters"]["type"] == "object"
        json.dumps(t)
    for t in an:
        assert set(t) == {"name", "description", "input_schema"}
    assert "wrote 5 bytes" in tools.call("write_file", {"path": "t/a.txt", "content": "hello"})
    assert tools.call("read_file", '{"path": "t/a.txt"}') == "hello"
    assert "a.txt" in tools.call("list_files", {"path": "t"})
    out = tools.call("run_command", {"command": "echo hi; exit 2"})
    assert out.startswith("exit code 2") and "hi" in out
    assert "value: 42" in tools.call("run_code", {"code": "40 + 2"})
    long = tools.call("run_command", {"command": "seq 1 5000"})
    assert "characters cut ...]" in long and "\n1\n" in long and "5000" in long
    assert len(long) < 600
    assert tools.call("read_file", {"path": "missing"}).startswith("error: ")
    assert tools.call("nope", {}).startswith("error: no tool")
    assert tools.call("run_command", {}).startswith("error: missing")
    assert truncate("abcdefghij", 4) == "ab\n[... 6 characters cut ...]\nij"
    assert truncate("abc", 4) == "abc"


def test_tcp_with_bearer_token(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("sdk-token-0123456789abcdef\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dm = Daemon("--listen", f"127.0.0.1:{port}", "--token-file", str(tok)).start()
    try:
        c = agentd.Client(url=f"http://127.0.0.1:{port}", token_file=str(tok))
        assert c.health().status == "ok"
        with c.create(backend="container") as sb:
            assert sb.exec(["/bin/echo", "tcp"]).stdout == "tcp\n"
        with pytest.raises(agentd.Unauthorized) as e:
            agentd.Client(url=f"http://127.0.0.1:{port}", token="wrong-token-xxxxxxxx").health()
        assert e.value.status == 401 and e.value.code == "unauthorized"
        c.close()
    finally:
        dm.cleanup()


def test_kept_alive_connection_closed_by_the_daemon_is_retried():
    """The client keeps connections alive; one the daemon closed meanwhile (its idle
    timeout, a restart) is replaced without the caller seeing an error."""
    dm = Daemon().start()
    try:
        c = agentd.Client(dm.socket)
        assert c.health().status == "ok"
        dm.restart()
        assert c.health().status == "ok"
        c.close()
    finally:
        dm.cleanup()


def test_mypy_strict():
    if subprocess.run([sys.executable, "-m", "mypy", "--version"],
                      capture_output=True).returncode != 0:
        pytest.skip("mypy is not installed (scripts/install-deps.sh installs python3-mypy)")
    with tempfile.TemporaryDirectory() as cache:
        p = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache,
                            "-p", "agentd"], cwd=os.path.join(SDK, "src"), capture_output=True,
                           text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_pip_install_into_a_target(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      capture_output=True).returncode != 0:
        pytest.skip("pip is not installed (scripts/install-deps.sh installs python3-pip)")
    src = tmp_path / "python"
    shutil.copytree(SDK, src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                            "__pycache__"))
    target = tmp_path / "target"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                        "--no-build-isolation", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (target / "agentd" / "py.typed").exists()
    p = subprocess.run([sys.executable, "-c", "import agentd, agentd.aio, agentd.tools; "
                        "print(agentd.__file__, agentd.__version__)"],
                       capture_output=True, text=True, env={"PYTHONPATH": str(target)})
    assert p.returncode == 0 and p.stdout.startswith(str(target)), p.stdout + p.stderr
