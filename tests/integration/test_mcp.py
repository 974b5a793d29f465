"""agentd mcp: raw JSON-RPC over stdio (negotiation, batches, bad JSON, bounds), and the
official MCP TypeScript SDK client over both transports (tests/mcp, `npm ci` then
`node --test`; skipped with a message only when npm is absent)."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD
from daemon_util import Daemon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENTD = os.path.join(BUILD, "agentd")


def mcp_stdio(lines, timeout=120):
    """Send lines to `agentd mcp --embedded`, close stdin; the replies, parsed."""
    data = b"".join(l if isinstance(l, bytes) else l.encode() + b"\n" for l in lines)
    out = subprocess.run([AGENTD, "mcp", "--embedded"], input=data, capture_output=True,
                         timeout=timeout, check=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def init(version):
    return json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})


def test_the_version_is_negotiated_and_errors_are_json_rpc_errors():
    r = mcp_stdio([init("2025-06-18"), "{bad json", '{"jsonrpc":"2.0","id":1,"method":"nope"}',
                   '{"jsonrpc":"1.0","id":2,"method":"ping"}',
                   '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope"}}',
                   '[{"jsonrpc":"2.0","id":4,"method":"ping"}]',
                   '{"jsonrpc":"2.0","id":5,"method":"ping"}'])
    by_id = {}
    for m in r:
        by_id.setdefault(json.dumps(m["id"]), []).append(m)
    assert by_id["0"][0]["result"]["protocolVersion"] == "2025-06-18"
    codes = sorted(m["error"]["code"] for m in by_id["null"])
    assert codes == [-32700, -32600]  # bad JSON; a batch under 2025-06-18
    assert by_id["1"][0]["error"]["code"] == -32601
    assert by_id["2"][0]["error"]["code"] == -32600
    assert by_id["3"][0]["error"]["code"] == -32602
    assert by_id["5"][0]["result"] == {}
    older = mcp_stdio([init("2025-03-26")])
    assert older[0]["result"]["protocolVersion"] == "2025-03-26"
    unknown = mcp_stdio([init("1999-01-01")])
    assert unknown[0]["result"]["protocolVersion"] == "2025-06-18"


def test_a_parse_error_quoting_bytes_that_are_not_utf8_is_still_answered():
    # jansson's message quotes the bad bytes; an error that is not UTF-8 could not be sent
    with open(os.path.join(ROOT, "fuzz/corpus/jsonrpc/parse_error_not_utf8"), "rb") as f:
        bad = f.read()  # found by fuzz/fuzz_jsonrpc.c
    r = mcp_stdio([init("2025-06-18"), bad + b"\n", '{"jsonrpc":"2.0","id":1,"method":"ping"}'])
    assert r[1]["error"]["code"] == -32700 and r[1]["id"] is None
    assert r[2]["result"] == {}


def test_batches_are_answered_as_batches_under_2025_03_26():
    r = mcp_stdio([init("2025-03-26"),
                   '[{"jsonrpc":"2.0","id":1,"method":"ping"},'
                   '{"jsonrpc":"2.0","method":"notifications/initialized"},'
                   '{"jsonrpc":"2.0","id":2,"method":"tools/list"}, 5]',
                   "[]", "[" + ",".join(['{"jsonrpc":"2.0","id":1,"method":"ping"}'] * 33) + "]"])
    batch = r[1]
    assert isinstance(batch, list) and [m["id"] for m in batch] == [1, 2, None]
    assert len(batch[1]["result"]["tools"]) == 13 and batch[2]["error"]["code"] == -32600
    assert r[2]["error"]["code"] == -32600 and "empty" in r[2]["error"]["message"]
    assert r[3]["error"]["code"] == -32600 and "limit of 32" in r[3]["error"]["message"]


def test_size_and_nesting_are_bounded():
    deep = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + "[" * 40 + "]" * 40 + "}}"
    huge = b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"a":"' + b"x" * (5 << 20) + b'"}}\n'
    r = mcp_stdio([init("2025-06-18"), deep, huge, '{"jsonrpc":"2.0","id":3,"method":"ping"}'])
    errors = [m["error"]["message"] for m in r if "error" in m]
    assert any("nested deeper than 32" in e for e in errors)
    assert any("over the limit of 4194304 bytes" in e for e in errors)
    assert r[-1] == {"jsonrpc": "2.0", "id": 3, "result": {}}  # the server reads on


def call(i, tool, args):
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": tool, "arguments": args}})


@pytest.fixture
def daemon():
    dm = Daemon().start()
    yield dm
    dm.stop()


def live_ids(dm):
    return {s["id"] for s in dm.get("/v1/sandboxes").json["sandboxes"]}


def test_a_sessions_sandboxes_are_destroyed_at_stdin_eof_unless_kept(daemon):
    out = subprocess.run([AGENTD, "mcp", "--socket", daemon.socket], capture_output=True,
                         input=(init("2025-06-18") + "\n" + call(1, "sandbox_create", {}) + "\n"
                                + call(2, "sandbox_create", {"keep": True}) + "\n").encode(),
                         timeout=120, check=True).stdout
    r = {m["id"]: m for m in map(json.loads, out.splitlines())}
    gone, kept = (r[i]["result"]["structuredContent"]["sandbox_id"] for i in (1, 2))
    assert live_ids(daemon) == {kept}
    assert gone not in live_ids(daemon)


def test_a_sessions_sandboxes_are_destroyed_at_sigterm_and_its_command_killed(daemon):
    p = subprocess.Popen([AGENTD, "mcp", "--socket", daemon.socket], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    p.stdin.write((init("2025-06-18") + "\n" + call(1, "sandbox_create", {}) + "\n").encode())
    p.stdin.flush()
    p.stdout.readline()
    sid = json.loads(p.stdout.readline())["result"]["structuredContent"]["sandbox_id"]
    p.stdin.write((call(2, "exec", {"sandbox_id": sid, "command": "sleep 300"}) + "\n").encode())
    p.stdin.flush()
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0
    assert sid not in live_ids(daemon)
    assert not mcp_dirs()


def test_the_official_typescript_sdk_client_over_both_transports():
    if not shutil.which("npm"):
        pytest.skip("npm is absent: the MCP TypeScript SDK tests (tests/mcp) need it")
    d = os.path.join(ROOT, "tests", "mcp")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=d, check=True, timeout=600)
    env = dict(os.environ, AGENTD_BUILD=BUILD)
    r = subprocess.run(["node", "--test"], cwd=d, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]


def test_streamable_http_sessions_headers_and_auth(daemon, tmp_path):
    import http.client
    import socket as sk
    tok = tmp_path / "token"
    tok.write_text("0123456789abcdef0123\n")
    s = sk.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen([AGENTD, "mcp", "--socket", daemon.socket, "--listen",
                          f"127.0.0.1:{port}", "--token-file", str(tok)], stderr=subprocess.DEVNULL)
    try:
        def post(body, headers=None, method="POST", auth=True):
            for _ in range(100):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
                    if auth:
                        h["Authorization"] = "Bearer 0123456789abcdef0123"
                    h.update(headers or {})
                    c.request(method, "/mcp", body=body, headers=h)
                    r = c.getresponse()
                    data = r.read()
                    return r.status, dict(r.getheaders()), json.loads(data) if data else None
                except ConnectionRefusedError:
                    time.sleep(0.1)
            raise AssertionError("agentd mcp --listen did not come up")

        ping = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
        st, h, body = post(ping, auth=False)
        assert st == 401 and h["WWW-Authenticate"] == "Bearer"
        assert post(ping)[0] == 400  # no session: initialize first
        st, h, body = post(init("2025-03-26"))
        assert st == 200 and body["result"]["protocolVersion"] == "2025-03-26"
        sid = {"Mcp-Session-Id": h["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-03-26"}
        assert post('{"jsonrpc":"2.0","method":"notifications/initialized"}', sid)[0] == 202
        st, _, body = post("[" + ping + "," + ping.replace('"id":1', '"id":2') + "]", sid)
        assert st == 200 and [m["id"] for m in body] == [1, 2]  # a batch under 2025-03-26
        assert post(ping, {**sid, "MCP-Protocol-Version": "1999-01-01"})[0] == 400
        assert post(ping, {"Mcp-Session-Id": "0" * 32})[0] == 404
        assert post("", sid, method="GET")[0] == 405
        st, _, body = post("{bad", sid)
        assert st == 400 and body["error"]["code"] == -32700
        assert post(None, sid, method="DELETE")[0] == 200
        assert post(ping, sid)[0] == 404  # the session ended
    finally:
        p.terminate()
        assert p.wait(timeout=60) == 0


def test_serves_mcp_sessions_end_with_the_daemon_and_their_sandboxes_go():
    # durable: the daemon would leave its sandboxes running for the next one; an MCP
    # session's go with the session, which ends with the daemon
    dm = Daemon(durable=True).start()
    try:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        r = dm.request("POST", "/mcp", raw=init("2025-06-18").encode(), headers=h, new_conn=True)
        assert r.status == 200, r
        sid = r.headers["Mcp-Session-Id"]
        r = dm.request("POST", "/mcp", raw=call(1, "sandbox_create", {"backend": "container", "keep": False}).encode(),
                       headers={**h, "Mcp-Session-Id": sid}, new_conn=True)
        made = r.json["result"]["structuredContent"]["sandbox_id"]
        kept = dm.request("POST", "/mcp", raw=call(2, "sandbox_create", {"backend": "container", "keep": True}).encode(),
                          headers={**h, "Mcp-Session-Id": sid}, new_conn=True).json["result"]["structuredContent"]["sandbox_id"]
        dm.stop()
        dm.start()
        assert made not in live_ids(dm) and kept in live_ids(dm)
    finally:
        dm.cleanup()


def mcp_dirs():
    return {d for d in os.listdir("/tmp") if d.startswith("agentd-mcp-")}


def test_embedded_daemon_and_its_dir_go_when_agentd_mcp_is_killed():
    before = mcp_dirs()
    p = subprocess.Popen([AGENTD, "mcp", "--embedded"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdin.write((init("2025-06-18") + "\n" + call(1, "sandbox_create", {}) + "\n").encode())
    p.stdin.flush()
    p.stdout.readline()
    assert json.loads(p.stdout.readline())["result"]["isError"] is False
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        daemon_pid = int(f.read().split()[0])
    (tmp,) = (os.path.join("/tmp", d) for d in mcp_dirs() - before)
    p.kill()
    p.wait()
    for _ in range(300):
        if not os.path.exists(f"/proc/{daemon_pid}") and not os.path.exists(tmp):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{daemon_pid}"), "the embedded daemon outlived agentd mcp"
    assert not os.path.exists(tmp), f"{tmp} was left behind"
