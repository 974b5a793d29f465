"""Background processes through `agentd serve` (docs/api.md#processes): a process outlives the
request that started it, its output is kept in a bounded ring and read from an offset or
followed by several readers, its stdin is written and closed, it is signalled and killed on
its own, it stops with a suspend and ends with its sandbox; bad input is a 4xx naming the
field that changes nothing."""
import base64
import json
import os
import socket
import threading
import time

import pytest

from daemon_util import Daemon, UnixHTTPConnection, pids_with, wait_until


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


@pytest.fixture
def sid(d):
    s = d.create()
    yield s
    d.delete(f"/v1/sandboxes/{s}")


def sleeping(n):
    """Host pids of the sandboxed `sleep N` (cmdline's arguments are NUL-separated)."""
    return pids_with(f"sleep\0{n}")


def spawn(d, sid, argv, status=201, **kw):
    r = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": argv, **kw})
    assert r.status == status, r
    return r.json if status != 201 else r.json["pid"]


def proc(d, sid, pid):
    r = d.get(f"/v1/sandboxes/{sid}/processes/{pid}")
    assert r.status == 200, r
    return r.json


def output_lines(d, sid, pid, query="", timeout=60):
    """The NDJSON lines of GET .../output?query, on a connection of its own."""
    conn = UnixHTTPConnection(d.socket, timeout=timeout)
    conn.request("GET", f"/v1/sandboxes/{sid}/processes/{pid}/output" + query)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 200, body
    assert r.getheader("Content-Type") == "application/x-ndjson"
    return [json.loads(l) for l in body.splitlines() if l.strip()]


def data_of(lines, stream="stdout"):
    out = b""
    for l in lines:
        if l.get("stream") == stream and "data" in l:
            b = l["data"].encode() if "encoding" not in l else base64.b64decode(l["data"])
            out += b
    return out


def test_a_server_started_in_one_call_answers_in_the_next(d):
    # the standard profile: a network namespace whose loopback the sandbox may use
    s = d.create(spec={"profile": "standard"})
    try:
        r = d.post(f"/v1/sandboxes/{s}/processes",
                   {"argv": ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"]})
        assert r.status == 201, r
        assert r.json["state"] == "running" and r.json["pid"] > 0, r
        fetch = ["python3", "-c",
                 "import urllib.request as u,time\n"
                 "o=u.build_opener(u.ProxyHandler({}))\n"
                 "for i in range(100):\n"
                 "  try: print(o.open('http://127.0.0.1:8000/').status); break\n"
                 "  except OSError: time.sleep(0.1)\n"]
        e = d.exec(s, fetch)
        assert e.status == 200 and e.json["stdout"] == "200\n", e
        # a second request, a second exec: the server is still there
        e = d.exec(s, ["curl", "-s", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                       "http://127.0.0.1:8000/"])
        assert e.json["stdout"] == "200", e
        assert proc(d, s, r.json["pid"])["state"] == "running"
    finally:
        d.delete(f"/v1/sandboxes/{s}")


def test_a_timed_out_exec_tree_dies_while_a_background_process_lives_on(d, sid):
    bg = spawn(d, sid, ["/bin/sleep", "3011"])
    e = d.exec(sid, ["/bin/sh", "-c", "setsid /bin/sleep 3012 & /bin/sleep 3013"],
               timeout_ms=1000)
    assert e.status == 200 and e.json["timed_out"], e
    assert wait_until(lambda: not sleeping(3012) and not sleeping(3013))
    assert sleeping(3011), "the background process died with the exec"
    assert proc(d, sid, bg)["state"] == "running"


def test_kill_takes_the_process_tree_and_nothing_else(d, sid):
    a = spawn(d, sid, ["/bin/sh", "-c", "setsid /bin/sleep 3021 & exec /bin/sleep 3022"])
    b = spawn(d, sid, ["/bin/sleep", "3023"])
    assert wait_until(lambda: sleeping(3021) and sleeping(3022))
    r = d.delete(f"/v1/sandboxes/{sid}/processes/{a}")
    assert r.status == 200 and r.json["state"] == "killed" and r.json["signal"] == "SIGKILL", r
    assert r.json["ended_by"] == "killed" and r.json["usage"]["wall_time_ms"] > 0, r
    assert wait_until(lambda: not sleeping(3021) and not sleeping(3022)), \
        "a setsid'd child of the killed process survived"
    assert sleeping(3023)
    assert proc(d, sid, b)["state"] == "running"
    # forgotten once ended
    assert d.get(f"/v1/sandboxes/{sid}/processes/{a}").status == 404
    pids = [p["pid"] for p in d.get(f"/v1/sandboxes/{sid}/processes").json["processes"]]
    assert pids == [b]


def test_signal_by_name_and_number(d, sid):
    p = spawn(d, sid, ["/bin/sleep", "3031"])
    r = d.post(f"/v1/sandboxes/{sid}/processes/{p}/signal", {"signal": "TERM"})
    assert r.status == 200, r
    got = wait_until(lambda: proc(d, sid, p)["state"] != "running" and proc(d, sid, p))
    assert got["state"] == "killed" and got["signal"] == "SIGTERM" and got["exit_code"] == 143
    assert got["ended_at"] >= got["started_at"] > 0
    # an ended process: a conflict, not a missing one
    r = d.post(f"/v1/sandboxes/{sid}/processes/{p}/signal", {"signal": 9})
    assert r.status == 409, r
    q = spawn(d, sid, ["/bin/sleep", "3032"])
    assert d.post(f"/v1/sandboxes/{sid}/processes/{q}/signal", {"signal": "SIGKILL"}).status \
        == 200
    assert wait_until(lambda: proc(d, sid, q)["signal"] == "SIGKILL")


def test_exit_code_and_output_of_an_ended_process(d, sid):
    p = spawn(d, sid, ["/bin/sh", "-c", "echo out; echo err >&2; exit 7"])
    lines = output_lines(d, sid, p, "?follow=1")
    assert data_of(lines) == b"out\n" and data_of(lines, "stderr") == b"err\n"
    ex = lines[-1]["exit"]
    assert ex["state"] == "exited" and ex["exit_code"] == 7 and ex["signal"] is None, ex
    assert ex["output"]["stdout"] == {"kept_bytes": 4, "kept_from": 0, "total_bytes": 4}
    assert ex["usage"] is not None
    # only stderr
    lines = output_lines(d, sid, p, "?stream=stderr")
    assert data_of(lines, "stderr") == b"err\n" and not data_of(lines)


def test_two_readers_follow_from_an_offset(d, sid):
    p = spawn(d, sid, ["/bin/sh", "-c",
                       "i=0; while [ $i -lt 40 ]; do echo line$i; i=$((i+1)); sleep 0.05; done"])
    expected = b"".join(b"line%d\n" % i for i in range(40))
    results = [None, None]
    # an offset past what was written is refused: start once it is there
    assert wait_until(lambda: proc(d, sid, p)["output"]["stdout"]["total_bytes"] >= 6)

    def follow(k):
        results[k] = output_lines(d, sid, p, "?offset=6&follow=1&stream=stdout")

    ts = [threading.Thread(target=follow, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    for lines in results:
        assert lines is not None
        assert data_of(lines) == expected[6:], lines
        offs = [l["offset"] for l in lines if "data" in l]
        assert offs[0] == 6 and offs == sorted(offs)
        assert lines[-1]["exit"]["exit_code"] == 0
    # one reader that goes away mid-stream does not end the process
    q = spawn(d, sid, ["/bin/sh", "-c", "while :; do echo tick; sleep 0.1; done"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    s.sendall(f"GET /v1/sandboxes/{sid}/processes/{q}/output?follow=1 HTTP/1.1\r\n"
              f"Host: x\r\n\r\n".encode())
    assert b"tick" in s.recv(65536) or b"tick" in s.recv(65536)
    s.close()
    time.sleep(0.5)
    assert proc(d, sid, q)["state"] == "running"


def test_a_small_ring_keeps_the_tail_and_says_what_was_dropped(d):
    s = d.create(spec={"limits": {"max_process_output_bytes": 4096}})
    try:
        p = spawn(d, s, ["python3", "-c", "import sys\nfor i in range(10000): print(f'{i:09d}')"])
        lines = output_lines(d, s, p, "?follow=1")
        ex = lines[-1]["exit"]
        assert ex["output"]["stdout"]["total_bytes"] == 100000
        assert ex["output"]["stdout"]["kept_bytes"] == 4096
        assert ex["output"]["stdout"]["kept_from"] == 100000 - 4096
        assert ex["output"]["max_bytes_per_stream"] == 4096
        # reading from 0 now: a line says where the kept bytes start
        lines = output_lines(d, s, p)
        assert lines[0] == {"stream": "stdout", "offset": 100000 - 4096,
                            "dropped": 100000 - 4096}, lines[0]
        assert data_of(lines) == b"".join(b"%09d\n" % i for i in range(10000))[-4096:]
    finally:
        d.delete(f"/v1/sandboxes/{s}")


def test_stdin_to_a_background_process(d, sid):
    p = spawn(d, sid, ["python3", "-u", "-c",
                       "import sys\nfor l in sys.stdin: print('got', l.strip())\nprint('eof')"],
              stdin=True)
    assert proc(d, sid, p)["stdin"] is True
    r = d.post(f"/v1/sandboxes/{sid}/processes/{p}/stdin", {"data": "hello\n"})
    assert r.status == 200 and r.json["written"] == 6, r
    assert wait_until(lambda: b"got hello" in data_of(output_lines(d, sid, p)))
    r = d.post(f"/v1/sandboxes/{sid}/processes/{p}/stdin",
               {"data": base64.b64encode(b"w\xc3\xb6rld\n").decode(), "encoding": "base64",
                "close": True})
    assert r.status == 200 and r.json["closed"], r
    lines = output_lines(d, sid, p, "?follow=1")
    assert data_of(lines) == "got hello\ngot wörld\neof\n".encode()
    assert lines[-1]["exit"]["exit_code"] == 0
    r = d.post(f"/v1/sandboxes/{sid}/processes/{p}/stdin", {"data": "late"})
    assert r.status == 409 and "stdin" in r.error["message"], r
    # a process started without a stdin pipe has none
    q = spawn(d, sid, ["/bin/sleep", "3041"])
    r = d.post(f"/v1/sandboxes/{sid}/processes/{q}/stdin", {"data": "x"})
    assert r.status == 409 and "no stdin" in r.error["message"], r


def test_suspend_really_stops_a_background_loop(d, sid):
    p = spawn(d, sid, ["/bin/sh", "-c", "while :; do echo tick; sleep 0.05; done"])

    def total():
        return proc(d, sid, p)["output"]["stdout"]["total_bytes"]

    assert wait_until(lambda: total() > 20)
    assert d.post(f"/v1/sandboxes/{sid}/suspend").status == 200
    time.sleep(0.3)
    frozen = total()
    time.sleep(1.5)
    assert total() == frozen, "the loop advanced while suspended"
    assert d.post(f"/v1/sandboxes/{sid}/processes", {"argv": ["/bin/true"]}).status == 409
    assert d.post(f"/v1/sandboxes/{sid}/resume").status == 200
    assert wait_until(lambda: total() > frozen + 20)
    assert proc(d, sid, p)["state"] == "running"
    # and snapshotted while it runs
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "with-a-process"})
    assert r.status == 201, r
    seen = total()
    assert wait_until(lambda: total() > seen + 20)


def test_destroy_ends_every_process_and_its_followers(d):
    s = d.create()
    p = spawn(d, s, ["/bin/sh", "-c", "setsid /bin/sleep 3051 & while :; do sleep 1; done"])
    assert wait_until(lambda: sleeping(3051))
    got = []
    t = threading.Thread(target=lambda: got.extend(output_lines(d, s, p, "?follow=1")))
    t.start()
    time.sleep(0.3)
    assert d.delete(f"/v1/sandboxes/{s}").status == 200
    t.join(30)
    assert got and got[-1]["exit"]["ended_by"] == "sandbox destroyed", got
    assert got[-1]["exit"]["usage"]["wall_time_ms"] > 0, got
    assert wait_until(lambda: not sleeping(3051))
    assert d.get(f"/v1/sandboxes/{s}/processes").status == 409


def test_process_backends_answer_501_with_the_reason(d):
    s = d.create(backend="host-direct")
    try:
        r = d.post(f"/v1/sandboxes/{s}/processes", {"argv": ["/bin/true"]})
        assert r.status == 501 and r.error["code"] == "not_supported", r
        assert len(r.error["message"]) > 20
        assert d.get(f"/v1/sandboxes/{s}/processes").json["processes"] == []
    finally:
        d.delete(f"/v1/sandboxes/{s}")


def test_start_and_kill_are_audited(d, sid):
    p = spawn(d, sid, ["/bin/sleep", "3061"])
    assert d.delete(f"/v1/sandboxes/{sid}/processes/{p}").status == 200
    recs = [r for r in d.get("/v1/audit").json["records"] if r["sandbox_id"] == sid]
    start = [r for r in recs if r["action"] == "process_start"]
    kill = [r for r in recs if r["action"] == "process_kill"]
    assert start and start[-1]["result"] == f"pid {p}" and "3061" in json.dumps(start[-1]["argv"])
    assert kill and kill[-1]["result"].startswith(f"pid {p}: signal SIGKILL"), kill


def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(d, sid):
    p = spawn(d, sid, ["/bin/sleep", "3071"])
    base = f"/v1/sandboxes/{sid}/processes"

    def listing():
        return [(x["pid"], x["state"]) for x in d.get(base).json["processes"]]

    before = listing()
    cases = [
        (d.get(f"{base}/99999"), 404, "no process 99999"),
        (d.delete(f"{base}/99999"), 404, "no process 99999"),
        (d.get(f"{base}/0"), 400, "pid"),
        (d.get(f"{base}/abc"), 400, "pid"),
        (d.post(f"{base}/{p}/signal", {"signal": "NOPE"}), 400, "signal"),
        (d.post(f"{base}/{p}/signal", {"signal": 65}), 400, "signal"),
        (d.post(f"{base}/{p}/signal", {}), 400, "signal"),
        (d.post(base, {"argv": []}), 400, "argv"),
        (d.post(base, {"argv": [""]}), 400, "argv[0]"),
        (d.post(base, {"argv": ["/bin/echo", "x" * (300 << 10)]}), 400, "argv"),
        (d.post(base, {"argv": ["/bin/true"], "rows": 10}), 400, "rows"),
        (d.post(base, {"argv": ["/bin/true"], "tty": True, "cols": 0}), 400, "cols"),
        (d.post(base, {"argv": ["/bin/true"], "workdir": "rel"}), 400, "workdir"),
        (d.post(base, {"argv": ["/bin/true"], "bogus": 1}), 400, "bogus"),
        (d.post(f"{base}/{p}/stdin", {"data": "x", "encoding": "hex"}), 400, "encoding"),
        (d.post(f"{base}/{p}/stdin", {"data": "***", "encoding": "base64"}), 400, "data"),
        (d.post(f"{base}/{p}/stdin", {}), 400, "data"),
        (d.get(f"{base}/{p}/output?offset=5"), 400, "offset"),
        (d.get(f"{base}/{p}/output?offset=-1"), 400, "offset"),
        (d.get(f"{base}/{p}/output?stream=both2"), 400, "stream"),
        (d.get(f"{base}/{p}/output?follow=yes"), 400, "follow"),
    ]
    for r, status, word in cases:
        assert r.status == status, r
        assert word in r.error["message"], r
    assert listing() == before
    assert proc(d, sid, p)["state"] == "running"


def test_cli_spawn_ps_logs_stdin_kill(d, sid):
    r = d.cli("sandbox", "spawn", sid, "--", "/bin/sh", "-c", "echo hi; echo oops >&2; "
              "exec /bin/sleep 3081")
    assert r.returncode == 0, r
    pid = int(r.stdout)
    ps = d.cli("sandbox", "ps", sid)
    assert ps.returncode == 0 and str(pid).encode() in ps.stdout and b"running" in ps.stdout, ps
    assert b"/bin/sh -c echo hi" in ps.stdout
    js = json.loads(d.cli("sandbox", "ps", "--json", sid).stdout)
    assert [p["pid"] for p in js] == [pid]
    logs = d.cli("sandbox", "logs", sid, str(pid))
    assert logs.returncode == 0 and logs.stdout == b"hi\n" and logs.stderr == b"oops\n", logs
    logs = d.cli("sandbox", "logs", "--stderr", "--offset", "1", sid, str(pid))
    assert logs.stdout == b"" and logs.stderr == b"ops\n", logs

    r = d.cli("sandbox", "spawn", "--stdin", sid, "--", "/bin/cat")
    cat = int(r.stdout)
    r = d.cli("sandbox", "stdin", "--close", sid, str(cat), input=b"from the host\n")
    assert r.returncode == 0, r
    logs = d.cli("sandbox", "logs", "--follow", sid, str(cat))
    assert logs.returncode == 0 and logs.stdout == b"from the host\n", logs

    r = d.cli("sandbox", "kill", "--signal", "BOGUS", sid, str(pid))
    assert r.returncode == 125 and b"signal" in r.stderr, r
    assert d.cli("sandbox", "kill", "--signal", "TERM", sid, str(pid)).returncode == 0
    assert wait_until(lambda: proc(d, sid, pid)["signal"] == "SIGTERM")
    logs = d.cli("sandbox", "logs", "--follow", "--stdout", sid, str(pid))
    assert logs.returncode == 143 and logs.stdout == b"hi\n", logs
    assert d.cli("sandbox", "kill", sid, str(pid)).returncode == 0
    r = d.cli("sandbox", "logs", sid, str(pid))
    assert r.returncode == 125 and b"no process" in r.stderr, r
    r = d.cli("sandbox", "spawn", sid)
    assert r.returncode == 125 and b"no command" in r.stderr, r


def test_a_process_on_a_terminal(d, sid):
    r = d.post(f"/v1/sandboxes/{sid}/processes",
               {"argv": ["/bin/sh"], "tty": True, "rows": 30, "cols": 100})
    assert r.status == 201 and r.json["tty"] and r.json["stdin"], r
    assert "stderr" not in r.json["output"]
    p = r.json["pid"]
    w = d.post(f"/v1/sandboxes/{sid}/processes/{p}/stdin",
               {"data": "stty size; tty; exit 5\n"})
    assert w.status == 200, w
    lines = output_lines(d, sid, p, "?follow=1")
    out = data_of(lines)
    assert b"30 100" in out and b"/dev/pts/" in out, out
    assert lines[-1]["exit"]["exit_code"] == 5
    r = d.get(f"/v1/sandboxes/{sid}/processes/{p}/output?stream=stderr")
    assert r.status == 400 and "stream" in r.error["message"], r


def test_a_sandbox_keeps_at_most_32_processes(d, sid):
    done = spawn(d, sid, ["/bin/true"])
    assert wait_until(lambda: proc(d, sid, done)["state"] == "exited")
    running = [spawn(d, sid, ["/bin/sleep", "3091"]) for _ in range(31)]
    # full: the ended one is forgotten to make room for a new one
    extra = spawn(d, sid, ["/bin/sleep", "3091"])
    assert d.get(f"/v1/sandboxes/{sid}/processes/{done}").status == 404
    r = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": ["/bin/true"]})
    assert r.status == 429 and "32" in r.error["message"], r
    listed = d.get(f"/v1/sandboxes/{sid}/processes").json
    assert len(listed["processes"]) == listed["max_processes"] == 32
    assert d.delete(f"/v1/sandboxes/{sid}/processes/{extra}").status == 200
    assert spawn(d, sid, ["/bin/true"]) > 0
    assert all(proc(d, sid, p)["state"] == "running" for p in running)
