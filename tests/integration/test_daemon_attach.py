"""Interactive terminals through `agentd serve` (docs/api.md#attach): a WebSocket client
written here with the standard library (tests/integration/wsclient.py) attaches to a shell
started with "tty": true, types into it, resizes its window, detaches and reattaches, and
reads its exit message; and `tmux` drives `agentd sandbox exec -it` and `agentd sandbox
attach` as a person would (send-keys, capture-pane)."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import AGENTD
from daemon_util import Daemon
from wsclient import WS, WSError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the container backend runs as root")


@pytest.fixture(scope="module")
def daemon():
    d = Daemon().start()
    yield d
    d.cleanup()


@pytest.fixture
def sandbox(daemon):
    sid = daemon.create("container")
    yield sid
    daemon.delete(f"/v1/sandboxes/{sid}")


def start_shell(daemon, sid, argv=("/bin/sh",), rows=24, cols=80, **kw):
    r = daemon.post(f"/v1/sandboxes/{sid}/processes",
                    {"argv": list(argv), "tty": True, "rows": rows, "cols": cols, **kw})
    assert r.status == 201, r
    return r.json["pid"]


def attach(daemon, sid, pid, query="offset=0"):
    return WS(daemon.socket, sid, pid, query=query)


def test_typed_input_reaches_the_shell_and_its_output_comes_back(daemon, sandbox):
    pid = start_shell(daemon, sandbox)
    ws = attach(daemon, sandbox, pid)
    ws.send_input(b"echo hi-$((6*7))\r")
    ws.read_until(b"hi-42")
    ws.shut()


def test_a_resize_reaches_the_program_as_its_window_size(daemon, sandbox):
    pid = start_shell(daemon, sandbox, rows=24, cols=80)
    ws = attach(daemon, sandbox, pid)
    ws.send_input(b"stty size; echo size-$((1))-done\r")
    out = ws.read_until(b"size-1-done\r\n")
    assert b"\r\n24 80\r\n" in out, out[-400:]
    ws.resize(40, 132)
    ws.send_input(b"stty size; echo resized-$((1))-done\r")
    out = ws.read_until(b"resized-1-done\r\n")
    assert b"\r\n40 132\r\n" in out, out[-400:]
    ws.shut()


def test_the_program_sees_sigwinch_on_resize(daemon, sandbox):
    pid = start_shell(daemon, sandbox, argv=["/bin/bash", "--norc", "-i"])
    ws = attach(daemon, sandbox, pid)
    ws.send_input(b"trap 'echo WINCH-$(stty size | tr \" \" x)' WINCH; echo arm$((1))ed\r")
    ws.read_until(b"arm1ed\r\n")
    ws.resize(33, 99)
    ws.send_input(b"echo aft$((1))er\r")
    ws.read_until(b"aft1er\r\n")
    ws.read_until(b"WINCH-33x99")
    ws.shut()


def test_exit_sends_the_exit_message_and_a_close(daemon, sandbox):
    pid = start_shell(daemon, sandbox)
    ws = attach(daemon, sandbox, pid)
    ws.send_input(b"exit 7\r")
    code, _ = ws.read_to_close()
    assert code == 1000
    assert ws.exit == {"type": "exit", "exit_code": 7, "signal": 0}
    assert ws.closed_by_server()


def test_a_signal_death_is_reported_with_its_signal(daemon, sandbox):
    pid = start_shell(daemon, sandbox, argv=["/bin/sh", "-c", "echo ready; kill -TERM $$"])
    ws = attach(daemon, sandbox, pid)
    ws.read_to_close()
    assert ws.exit == {"type": "exit", "exit_code": 143, "signal": 15}


def test_detach_leaves_the_process_running_and_reattach_sees_it(daemon, sandbox):
    pid = start_shell(daemon, sandbox)
    ws = attach(daemon, sandbox, pid)
    ws.send_input(b"X=kept-state\r")
    ws.detach()
    assert ws.read_to_close()[0] == 1000
    ws.shut()
    # a client that just goes away (no close frame) detaches too
    ws2 = attach(daemon, sandbox, pid, query="")
    ws2.shut()
    time.sleep(0.3)
    r = daemon.get(f"/v1/sandboxes/{sandbox}/processes/{pid}")
    assert r.status == 200 and r.json["state"] == "running", r
    ws3 = attach(daemon, sandbox, pid, query="")
    ws3.send_input(b"echo $X-again\r")
    ws3.read_until(b"kept-state-again")
    ws3.shut()


def test_several_attachments_watch_one_process(daemon, sandbox):
    pid = start_shell(daemon, sandbox)
    a = attach(daemon, sandbox, pid)
    b = attach(daemon, sandbox, pid)
    a.send_input(b"echo from-a-$((1+1))\r")
    a.read_until(b"from-a-2")
    b.read_until(b"from-a-2")
    b.send_input(b"exit 3\r")
    for ws in (a, b):
        ws.read_to_close()
        assert ws.exit["exit_code"] == 3


def test_a_foreground_attachment_takes_its_process_with_it(daemon, sandbox):
    pid = start_shell(daemon, sandbox)
    ws = attach(daemon, sandbox, pid, query="offset=0&foreground=1")
    ws.send_input(b"echo u$((1))p\r")
    ws.read_until(b"u1p\r\n")
    ws.shut()  # the client dies: no close frame
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = daemon.get(f"/v1/sandboxes/{sandbox}/processes/{pid}")
        if r.status == 404:
            break
        time.sleep(0.1)
    assert r.status == 404, r   # killed and forgotten, as DELETE does


def test_output_before_the_attachment_is_replayed_from_an_offset(daemon, sandbox):
    pid = start_shell(daemon, sandbox, argv=["/bin/sh", "-c", "echo early-bird; sleep 30"])
    deadline = time.monotonic() + 10
    while daemon.get(f"/v1/sandboxes/{sandbox}/processes/{pid}").json["output"]["stdout"][
            "total_bytes"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    ws = attach(daemon, sandbox, pid, query="offset=0")
    ws.read_until(b"early-bird")
    ws.shut()


@pytest.mark.parametrize("headers,query,status,words", [
    ({"Upgrade": None}, "", 400, "Upgrade: websocket"),
    ({"Sec-WebSocket-Version": "8"}, "", 400, "Sec-WebSocket-Version"),
    ({"Sec-WebSocket-Key": "short"}, "", 400, "Sec-WebSocket-Key"),
    ({}, "foreground=maybe", 400, "foreground"),
    ({}, "offset=99999999", 400, "offset"),
])
def test_a_bad_attach_request_is_a_4xx_naming_what(daemon, sandbox, headers, query, status,
                                                   words):
    pid = start_shell(daemon, sandbox)
    with pytest.raises(WSError) as e:
        WS(daemon.socket, sandbox, pid, query=query, headers=headers)
    assert f"HTTP {status}" in str(e.value) and words in str(e.value), e.value


def test_attach_to_an_unknown_pid_or_a_process_without_a_tty_is_refused(daemon, sandbox):
    with pytest.raises(WSError, match="HTTP 404"):
        WS(daemon.socket, sandbox, 99999)
    r = daemon.post(f"/v1/sandboxes/{sandbox}/processes", {"argv": ["/bin/sleep", "30"]})
    assert r.status == 201, r
    with pytest.raises(WSError, match="(?s)HTTP 400.*no terminal"):
        WS(daemon.socket, sandbox, r.json["pid"])


def test_attach_over_tcp_needs_the_token(tmp_path):
    token = "attach-token-0123456789abcdef"
    tf = tmp_path / "token"
    tf.write_text(token)
    tf.chmod(0o600)
    import socket as so
    s = so.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = Daemon("--listen", f"127.0.0.1:{port}", "--token-file", str(tf)).start()
    try:
        sid = d.create("container")
        pid = start_shell(d, sid)
        with pytest.raises(WSError, match="HTTP 401"):
            WS(None, sid, pid, tcp=("127.0.0.1", port))
        ws = WS(None, sid, pid, query="offset=0", tcp=("127.0.0.1", port), token=token)
        ws.send_input(b"echo over-$((1))tcp\r")
        ws.read_until(b"over-1tcp\r\n")
        ws.shut()
    finally:
        d.cleanup()
