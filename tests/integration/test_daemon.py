"""`agentd serve` through its HTTP API (docs/api.md): every endpoint against a real daemon on a
temporary socket and state dir, lifecycle states and their 409s, strict input validation
(each bad request is a 4xx that changes nothing), sessions, audit and metrics."""
import base64
import hashlib
import json
import os
import socket
import stat
import time

import pytest

from daemon_util import Daemon, UnixHTTPConnection, pids_with, wait_until


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def live_ids(d):
    r = d.get("/v1/sandboxes")
    assert r.status == 200, r
    return {s["id"] for s in r.json["sandboxes"]}


def test_socket_is_0660_and_health(d):
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o660
    r = d.get("/v1/health")
    assert r.status == 200 and r.json["status"] == "ok", r
    assert r.headers["Content-Type"] == "application/json"


def test_backends(d):
    r = d.get("/v1/backends")
    assert r.status == 200
    names = [b["name"] for b in r.json["backends"]]
    assert {"host-direct", "linux-native", "container"} <= set(names)
    r = d.get("/v1/backends/namespace")       # an alias
    assert r.status == 200 and r.json["name"] == "container" and r.json["available"], r
    assert r.json["capabilities"]["snapshots"] is True
    assert d.get("/v1/backends/nope").status == 404


def test_lifecycle(d):
    sid = d.create(name="life")
    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.status == 200 and r.json["state"] == "ready" and r.json["name"] == "life", r
    assert r.json["spec"]["limits"]["max_memory_bytes"] == 536870912
    assert sid in live_ids(d)
    # a second sandbox may not take the name
    r = d.post("/v1/sandboxes", {"backend": "container", "name": "life"})
    assert r.status == 409, r

    r = d.exec(sid, ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert r.status == 200, r
    assert (r.json["exit_code"], r.json["stdout"], r.json["stderr"]) == (3, "out\n", "err\n")

    assert d.post(f"/v1/sandboxes/{sid}/suspend").json["state"] == "suspended"
    r = d.exec(sid, ["/bin/true"])
    assert r.status == 409 and r.error["code"] == "conflict", r
    assert d.post(f"/v1/sandboxes/{sid}/suspend").status == 409
    assert d.post(f"/v1/sandboxes/{sid}/resume").json["state"] == "ready"
    assert d.post(f"/v1/sandboxes/{sid}/resume").status == 409
    assert d.exec(sid, ["/bin/true"]).json["exit_code"] == 0

    u = d.get(f"/v1/sandboxes/{sid}/usage")
    assert u.status == 200 and u.json["peak_memory_bytes"] > 0, u

    r = d.delete(f"/v1/sandboxes/{sid}")
    assert r.status == 200 and r.json["state"] == "destroyed", r
    assert sid not in live_ids(d)
    gone = d.get(f"/v1/sandboxes/{sid}")
    assert gone.status == 200 and gone.json["state"] == "destroyed", gone
    assert d.exec(sid, ["/bin/true"]).status == 409
    assert d.delete(f"/v1/sandboxes/{sid}").status == 404     # nothing left to delete
    assert d.get(f"/v1/sandboxes/{'0' * 32}").status == 404
    assert d.exec("0" * 32, ["/bin/true"]).status == 404


def test_snapshot_restore(d):
    sid = d.create()
    assert d.exec(sid, ["/bin/sh", "-c", "echo one > state.txt"]).json["exit_code"] == 0
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "first"})
    assert r.status == 201, r
    snap = r.json["snapshot_id"]
    d.exec(sid, ["/bin/sh", "-c", "echo two > state.txt; touch extra"])
    r = d.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap})
    assert r.status == 200, r
    r = d.exec(sid, ["/bin/sh", "-c", "cat state.txt; ls"])
    assert r.json["stdout"] == "one\nstate.txt\n", r
    # a snapshot of another sandbox, or none at all
    other = d.create()
    assert d.post(f"/v1/sandboxes/{other}/restore", {"snapshot_id": snap}).status == 404
    assert d.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": "f" * 32}).status == 404
    d.delete(f"/v1/sandboxes/{sid}")
    d.delete(f"/v1/sandboxes/{other}")


@pytest.mark.parametrize("depth,ok", [(200, True), (400, False)])
def test_snapshot_of_a_deep_tree_does_not_take_the_daemon_down(d, depth, ok):
    """The sandbox chooses the depth of what a snapshot walks: a tree within the limit is
    copied and restored, a deeper one is a clear error, and the daemon lives on."""
    sid = d.create()
    mk = f"cd /tmp && for i in $(seq {depth}); do mkdir d && cd d; done && echo deep > f"
    assert d.exec(sid, ["/bin/sh", "-c", mk]).json["exit_code"] == 0
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": f"deep-{depth}"})
    assert d.get("/v1/health").status == 200
    if ok:
        assert r.status == 201, r
        d.exec(sid, ["/bin/sh", "-c", "rm -rf /tmp/d"])
        assert d.post(f"/v1/sandboxes/{sid}/restore",
                      {"snapshot_id": r.json["snapshot_id"]}).status == 200
        path = "/tmp/" + "/".join(["d"] * depth) + "/f"
        assert d.exec(sid, ["/bin/cat", path]).json["stdout"] == "deep\n"
    else:
        assert 400 <= r.status < 600 and r.error.get("message"), r
    assert d.get("/v1/health").status == 200
    d.delete(f"/v1/sandboxes/{sid}")


def test_exec_options(d):
    sid = d.create(spec={"environment": {"FROM_SPEC": "s"}})
    r = d.exec(sid, ["/bin/sh", "-c", 'cat; echo "$FROM_SPEC $EXTRA"; pwd'],
               stdin=base64.b64encode(b"piped\n").decode(), env={"EXTRA": "e"}, workdir="/tmp")
    assert r.json["stdout"] == "piped\ns e\n/tmp\n", r
    r = d.exec(sid, ["/bin/sleep", "10"], timeout_ms=300)
    assert r.json["timed_out"] is True and r.json["exit_code"] == 124, r
    assert d.exec(sid, ["/no/such/prog"]).json["exit_code"] == 127
    r = d.exec(sid, ["/bin/sh", "-c", "printf '\\377\\376'"])
    assert r.json["stdout_encoding"] == "base64"
    assert base64.b64decode(r.json["stdout"]) == b"\xff\xfe"
    d.delete(f"/v1/sandboxes/{sid}")


def test_streaming_delivers_a_chunk_before_the_command_ends(d):
    sid = d.create()
    conn = UnixHTTPConnection(d.socket)
    body = json.dumps({"argv": ["/bin/sh", "-c", "echo first; sleep 2; echo second"],
                       "stream": True})
    t0 = time.monotonic()
    conn.request("POST", f"/v1/sandboxes/{sid}/exec", body=body)
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Transfer-Encoding") == "chunked"
    assert r.getheader("Content-Type") == "application/x-ndjson"
    first = json.loads(r.readline())
    t_first = time.monotonic() - t0
    assert first == {"stream": "stdout", "data": "first\n"}, first
    assert t_first < 1.5, f"first chunk only after {t_first:.2f}s"
    rest = [json.loads(l) for l in r.read().splitlines()]
    assert time.monotonic() - t0 >= 2
    assert rest[0] == {"stream": "stdout", "data": "second\n"}
    assert rest[-1]["exit"]["exit_code"] == 0 and "stdout" not in rest[-1]["exit"]
    conn.close()
    d.delete(f"/v1/sandboxes/{sid}")


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_goes_away_cancels_its_exec(d, stream):
    sid = d.create()
    conn = UnixHTTPConnection(d.socket)
    marker = "agentd-client-gone-%d-%d" % (os.getpid(), stream)
    conn.request("POST", f"/v1/sandboxes/{sid}/exec", body=json.dumps(
        {"argv": ["/usr/bin/python3", "-c", "print('go', flush=True); "
                  "import time; time.sleep(60)", marker], "stream": stream}))
    if stream:
        r = conn.getresponse()
        assert json.loads(r.readline())["data"] == "go\n"
    else:
        assert wait_until(lambda: pids_with(marker), timeout=10)
    t0 = time.monotonic()
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    # the command is killed at once (not at its 120 s timeout); the sandbox is ready again
    assert wait_until(lambda: not pids_with(marker), timeout=10), pids_with(marker)
    assert time.monotonic() - t0 < 5
    assert wait_until(lambda: d.get(f"/v1/sandboxes/{sid}").json["running_execs"] == 0,
                      timeout=10), d.get(f"/v1/sandboxes/{sid}")
    assert d.exec(sid, ["/bin/echo", "ok"]).json["stdout"] == "ok\n"
    rec = [a for a in d.get("/v1/audit").json["records"]
           if a["sandbox_id"] == sid and a["action"] == "exec"][0]
    assert rec["argv"][-1] == marker and rec["result"] == "exit 137", rec
    d.delete(f"/v1/sandboxes/{sid}")


BAD_CREATE = [
    (b"{", 400, "malformed JSON"),
    (b"[1]", 400, "expected a JSON object"),
    (b'{"bogus": 1}', 400, "unknown field 'bogus'"),
    (b'{"backend": 3}', 400, "backend: expected string"),
    (b'{"backend": "nope"}', 400, "unknown backend"),
    (b'{"spec": {"limits": {"max_memory_bytes": 5}}}', 400, "limits.max_memory_bytes"),
    (b'{"spec": {"surprise": true}}', 400, "surprise"),
    (b'{"name": "../x"}', 400, "name"),
    (b'{"backend": "container", "backend": "host"}', 400, "duplicate"),
]


@pytest.mark.parametrize("body,status,msg", BAD_CREATE)
def test_bad_create_is_a_4xx_that_changes_nothing(d, body, status, msg):
    before = live_ids(d)
    r = d.request("POST", "/v1/sandboxes", raw=body)
    assert r.status == status, r
    assert msg in r.error["message"], r
    assert r.error["code"] == "bad_request"
    assert live_ids(d) == before


def test_bad_requests(d):
    sid = d.create()
    cases = [
        ("POST", f"/v1/sandboxes/{sid}/exec", b'{"argv": []}', 400),
        ("POST", f"/v1/sandboxes/{sid}/exec", b'{"argv": ["/bin/true"], "x": 1}', 400),
        ("POST", f"/v1/sandboxes/{sid}/exec", b'{"argv": [1]}', 400),
        ("POST", f"/v1/sandboxes/{sid}/exec", b'{"argv": ["a"], "stdin": "!!"}', 400),
        ("POST", f"/v1/sandboxes/{sid}/exec", b'{"argv": ["a"], "timeout_ms": -1}', 400),
        ("POST", f"/v1/sandboxes/{sid}/exec", b'{"argv": ["a"], "workdir": "rel"}', 400),
        ("POST", f"/v1/sandboxes/{sid}/exec", b'{"argv": ["a\\u0000b"]}', 400),
        ("POST", "/v1/sandboxes/NOT-AN-ID!/exec", b'{"argv": ["a"]}', 400),
        # a name (issue 12): no sandbox has it
        ("POST", "/v1/sandboxes/NOT-AN-ID/exec", b'{"argv": ["a"]}', 404),
        ("POST", f"/v1/sandboxes/{sid}/snapshots", b'{"name": ""}', 400),
        ("POST", f"/v1/sandboxes/{sid}/snapshots", b'{"name": "a/b"}', 400),
        ("POST", f"/v1/sandboxes/{sid}/restore", b'{"snapshot_id": "../x"}', 400),
        ("GET", "/v1/sandboxes/" + "A" * 32, None, 400),
        ("GET", "/v1/sandboxes/../../etc", None, 400),
        ("GET", "/v1/health", b"body", 400),
        ("PATCH", f"/v1/sandboxes/{sid}", None, 405),
        ("GET", "/v1/nope", None, 404),
        ("GET", "/v2/health", None, 404),
        ("GET", "/v1/audit?since=yesterday", None, 400),
    ]
    for method, path, body, status in cases:
        r = d.request(method, path, raw=body)
        assert r.status == status, (method, path, body, r)
        assert r.json and r.error["code"] and r.error["message"], r
    # nothing ran: the sandbox saw no exec
    assert d.get(f"/v1/sandboxes/{sid}").json["state"] == "ready"
    d.delete(f"/v1/sandboxes/{sid}")


def test_huge_bodies_are_413(d):
    before = live_ids(d)
    # announced too large: answered before the body is read (curl waits on Expect: 100-continue)
    head = d.announce("POST", "/v1/sandboxes", 17 << 20)
    assert head.startswith(b"HTTP/1.1 413") and b'"too_large"' in head, head
    # without a Content-Length (chunked upload) too
    conn = UnixHTTPConnection(d.socket)

    def chunks():
        for _ in range(20):
            yield b" " * (1 << 20)
    try:
        conn.request("POST", "/v1/sandboxes", body=chunks(), encode_chunked=True)
        r = conn.getresponse()
        assert r.status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may close before the whole body was sent
    conn.close()
    assert live_ids(d) == before
    assert d.get("/v1/health").status == 200


def test_sessions(d):
    r = d.post("/v1/agents/agent-7/sessions", {})
    assert r.status == 201 and r.json["status"] == "ready", r
    sess = r.json["session_id"]
    base = f"/v1/agents/agent-7/sessions/{sess}"
    r = d.post(base + "/executions", {"code": "open('keep.txt','w').write('42')\nprint('wrote')",
                                      "language": "python"})
    assert r.status == 200 and r.json["status"] == "completed", r
    assert r.json["result"]["stdout"] == "wrote\n" and r.json["result"]["success"] is True
    r = d.post(base + "/executions", {"code": "print(open('keep.txt').read())"})
    assert r.json["result"]["stdout"] == "42\n", r            # python is the default
    r = d.post(base + "/executions", {"code": "cat keep.txt; exit 4", "language": "sh"})
    assert r.json["status"] == "failed" and r.json["result"]["exit_code"] == 4, r
    if os.path.exists("/usr/bin/node"):
        r = d.post(base + "/executions", {"code": "console.log(6*7)", "language": "node"})
        assert r.json["result"]["stdout"] == "42\n", r
    assert d.post(base + "/executions", {"code": "x", "language": "ruby"}).status == 400
    assert d.post(base + "/executions", {"language": "sh"}).status == 400
    assert d.post(f"/v1/agents/other/sessions/{sess}/executions", {"code": "1"}).status == 404
    assert d.post("/v1/agents/bad%20agent/sessions", {}).status == 400
    r = d.delete(base)
    assert r.status == 200 and r.json["status"] == "destroyed", r
    assert d.post(base + "/executions", {"code": "1"}).status == 409
    assert d.delete(f"/v1/agents/agent-7/sessions/{'0' * 32}").status == 404


def test_session_config_is_a_policy(d):
    r = d.post("/v1/agents/a/sessions", {"config": {"limits": {"max_wall_time_ms": 500}}})
    assert r.status == 201, r
    sess = r.json["session_id"]
    r = d.post(f"/v1/agents/a/sessions/{sess}/executions",
               {"code": "sleep 5", "language": "sh"})
    assert r.json["result"]["timed_out"] is True, r
    assert d.post("/v1/agents/a/sessions", {"config": {"nope": 1}}).status == 400
    d.delete(f"/v1/agents/a/sessions/{sess}")


def test_audit_records_every_create_exec_destroy(d):
    since = d.get("/v1/audit").json["records"]
    last = since[-1]["seq"] if since else 0
    sid = d.create(spec={"labels": {"t": "audit"}})
    d.exec(sid, ["/bin/sh", "-c", "exit 5"])
    d.delete(f"/v1/sandboxes/{sid}")
    recs = d.get(f"/v1/audit?since={last}").json["records"]
    mine = [r for r in recs if r["sandbox_id"] == sid]
    assert [r["action"] for r in mine] == ["create", "exec", "destroy"], recs
    digest = mine[0]["policy_digest"]
    assert len(digest) == 64 and all(r["policy_digest"] == digest for r in mine)
    assert all(r["client_uid"] == os.getuid() and r["backend"] == "container" for r in mine)
    assert mine[1]["argv"] == ["/bin/sh", "-c", "exit 5"] and mine[1]["result"] == "exit 5"
    assert all(r["seq"] > last for r in recs)
    # the digest is the sha256 of the canonical policy JSON, the same for the same policy
    other = d.create(spec={"labels": {"t": "audit"}})
    assert d.get(f"/v1/sandboxes/{other}").json["policy_digest"] == digest
    d.delete(f"/v1/sandboxes/{other}")
    third = d.create(spec={"labels": {"t": "other"}})
    assert d.get(f"/v1/sandboxes/{third}").json["policy_digest"] != digest
    d.delete(f"/v1/sandboxes/{third}")
    r = d.get("/v1/audit?since=2000-01-01T00:00:00Z")
    assert r.status == 200 and len(r.json["records"]) >= 3


def test_metrics(d):
    sid = d.create()
    d.exec(sid, ["/bin/true"])
    d.exec(sid, ["/bin/false"])
    r = d.get("/v1/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.body.decode()
    vals = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            vals[k] = float(v)
    assert vals['agentd_sandboxes{state="ready"}'] >= 1
    assert vals['agentd_execs_total{result="ok"}'] >= 1
    assert vals['agentd_execs_total{result="nonzero"}'] >= 1
    assert vals['agentd_exec_duration_seconds_bucket{le="+Inf"}'] == \
        vals["agentd_exec_duration_seconds_count"] >= 2
    d.delete(f"/v1/sandboxes/{sid}")


def test_process_backends_through_the_daemon(d):
    for backend in ("host-direct", "linux-native"):
        sid = d.create(backend=backend)
        r = d.exec(sid, ["/bin/sh", "-c", "echo hi > f; cat f"])
        assert r.json["stdout"] == "hi\n", r
        r = d.get(f"/v1/sandboxes/{sid}/files?path=f")
        assert r.status == 200 and r.body == b"hi\n", r
        assert d.delete(f"/v1/sandboxes/{sid}").status == 200


def test_capacity_limit_is_429():
    dm = Daemon("--max-sandboxes", "2").start()
    try:
        a, b = dm.create(), dm.create()
        r = dm.post("/v1/sandboxes", {"backend": "container"})
        assert r.status == 429 and r.error["code"] == "over_capacity", r
        r = dm.post("/v1/agents/x/sessions", {})
        assert r.status == 429, r
        dm.delete(f"/v1/sandboxes/{a}")
        c = dm.create()
        for s in (b, c):
            dm.delete(f"/v1/sandboxes/{s}")
    finally:
        dm.cleanup()


def test_tcp_listener_requires_the_bearer_token():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "t0ken-" + os.urandom(12).hex()
    dm = Daemon("--listen", f"127.0.0.1:{port}")
    tf = os.path.join(dm.dir, "token")
    with open(tf, "w") as f:
        f.write(token + "\n")
    os.chmod(tf, 0o600)
    dm.extra += ["--token-file", tf]
    dm.start()
    try:
        import http.client
        for hdr, status in [({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                            ({"Authorization": "Bearer " + token + "x"}, 401),
                            ({"Authorization": "Bearer " + token[:-1]}, 401),
                            ({"Authorization": "Bearer " + token}, 200)]:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/v1/health", headers=hdr)
            r = c.getresponse()
            assert r.status == status, (hdr, r.status)
            r.read()
            c.close()
        # the unix socket needs no token
        assert dm.get("/v1/health").status == 200
    finally:
        dm.cleanup()
    # --listen without a token is refused
    bad = Daemon("--listen", f"127.0.0.1:{port}")
    with pytest.raises(RuntimeError, match="token-file"):
        bad.start()
    bad.cleanup()


def test_second_daemon_on_the_same_state_dir_is_refused(d):
    other = Daemon(state_dir=d.state_dir)
    with pytest.raises(RuntimeError, match="in use"):
        other.start()
    other.cleanup()


def test_socket_group():
    import grp
    dm = Daemon("--socket-group", "nogroup").start()
    try:
        assert os.stat(dm.socket).st_gid == grp.getgrnam("nogroup").gr_gid
    finally:
        dm.cleanup()
    bad = Daemon("--socket-group", "no-such-group-agentd")
    with pytest.raises(RuntimeError, match="no such group"):
        bad.start()
    bad.cleanup()


def test_serve_options_and_leftover_sweep():
    dm = Daemon("--backend", "host-direct", "--sync", "full")
    # a sandbox dir some earlier run left behind, with no row in the state
    stray = os.path.join(dm.state_dir, "sandboxes", "ab" * 16)
    os.makedirs(os.path.join(stray, "workspace"))
    try:
        dm.start()
        assert not os.path.exists(stray), "leftover sandbox dir not swept at start"
        assert "removed a leftover sandbox dir" in dm.read_log()
        r = dm.post("/v1/sandboxes", {"allow_degraded": True})
        assert r.status == 201 and r.json["backend"] == "host-direct", r
        assert dm.get("/v1/health").json["default_backend"] == "host-direct"
        dm.delete(f"/v1/sandboxes/{r.json['id']}")
    finally:
        dm.cleanup()
    for bad in (["--max-sandboxes", "0"], ["--sync", "sometimes"], ["--backend", "nope"],
                ["--max-file-size", "huge"], ["--listen", "localhost"]):
        b = Daemon(*bad)
        with pytest.raises(RuntimeError):
            b.start()
        b.cleanup()


def test_a_limit_kill_leaves_the_sandbox_usable(d):
    sid = d.create(spec={"limits": {"max_memory_bytes": 64 << 20, "max_processes": 16}})
    r = d.exec(sid, ["/usr/bin/python3", "-c", "b = bytearray(400 << 20); print(len(b))"])
    assert r.status == 200 and r.json["resource_limited"] and r.json["limit_hit"] == "memory", r
    r = d.exec(sid, ["/bin/sh", "-c", "for i in $(seq 40); do sleep 5 & done; wait"],
               timeout_ms=3000)
    assert r.json["limit_hit"] == "pids" or r.json["exit_code"] != 0, r
    # the command's tree was killed, the sandbox (its init) was not
    assert d.get(f"/v1/sandboxes/{sid}").json["state"] == "ready"
    assert d.exec(sid, ["/bin/echo", "still here"]).json["stdout"] == "still here\n"
    m = d.get("/v1/metrics").body.decode()
    limit = [l for l in m.splitlines() if l.startswith('agentd_execs_total{result="limit"}')]
    assert limit and float(limit[0].split()[-1]) >= 1, m
    d.delete(f"/v1/sandboxes/{sid}")


def test_egress_proxy_decisions_are_in_the_audit(d):
    """An allowlist sandbox of the daemon goes out through the daemon's one egress proxy,
    and every decision (allowed, denied, closed with bytes) is an audit record."""
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        last = (d.get("/v1/audit").json["records"] or [{"seq": 0}])[-1]["seq"]
        sid = d.create(spec={"profile": "standard",
                             "network": {"mode": "allowlist", "allow": [f"127.0.0.1:{port}"]}})
        code = ("import urllib.request, sys\n"
                "for p in sys.argv[1:]:\n"
                "    try:\n"
                "        print(p, urllib.request.urlopen('http://127.0.0.1:%s/' % p, timeout=10).status)\n"
                "    except Exception as e:\n"
                "        print(p, 'refused', getattr(e, 'code', e))\n")
        r = d.exec(sid, ["/usr/bin/python3", "-c", code, str(port), str(port + 1)])
        assert r.status == 200, r
        lines = r.json["stdout"].splitlines()
        assert lines[0] == f"{port} 200", r.json
        assert lines[1].startswith(f"{port + 1} refused 403"), r.json
        d.delete(f"/v1/sandboxes/{sid}")

        def net_records():
            recs = d.get(f"/v1/audit?since={last}").json["records"]
            return [x for x in recs if x["sandbox_id"] == sid and x["action"] == "network"]
        assert wait_until(lambda: {"allowed", "denied", "closed"} <= {x["result"] for x in
                                                                    net_records()}), net_records()
        recs = net_records()
        allowed = [x for x in recs if x["result"] == "allowed"][0]
        denied = [x for x in recs if x["result"] == "denied"][0]
        closed = [x for x in recs if x["result"] == "closed"][0]
        assert allowed["argv"]["port"] == port and allowed["argv"]["host"] == "127.0.0.1"
        assert denied["argv"]["port"] == port + 1 and denied["argv"]["reason"]
        assert closed["argv"]["bytes_down"] > 0
    finally:
        srv.shutdown()


def test_exec_timeout_kills_what_the_command_setsid_away(d):
    """A timed-out exec of a persistent sandbox takes its whole tree, setsid'd descendants
    included: the limit cannot be escaped by leaving the exec's session."""
    sid = d.create()
    token = "777.%d" % (os.getpid() % 100000)
    r = d.exec(sid, ["/bin/sh", "-c", f"setsid sh -c 'exec sleep {token}' & exec sleep 100"],
               timeout_ms=1000)
    assert r.status == 200 and r.json["timed_out"] and r.json["exit_code"] == 124, r
    assert wait_until(lambda: not pids_with(token), timeout=1), \
        pids_with(token)
    # the sandbox itself lives on and serves the next exec
    assert d.exec(sid, ["/bin/echo", "still"]).json["stdout"] == "still\n"
    d.delete(f"/v1/sandboxes/{sid}")
