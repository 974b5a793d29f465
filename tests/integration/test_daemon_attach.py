"""Interactive terminals through `agentd serve` (docs/api.md#attach): a WebSocket client
written here with the standard library (tests/integration/wsclient.py) attaches to a shell
started with "tty": true, types into it, resizes its window, detaches and reattaches, and
reads its exit message; and `tmux` drives `agentd sandbox exec -it` and `agentd sandbox
attach` as a person would (send-keys, capture-pane)."""
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import AGENTD
from daemon_util import Daemon, pids_with
from tmux_util import Tmux
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
    assert b"24 80\r\nsize-1-done" in out, out[-400:]
    ws.resize(40, 132)
    ws.send_input(b"stty size; echo resized-$((1))-done\r")
    out = ws.read_until(b"resized-1-done\r\n")
    assert b"40 132\r\nresized-1-done" in out, out[-400:]
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


# ------------------------------------------------------------------ tmux, as a person

def wait_gone(cmdline_part, timeout=30):
    """Until no process's command line holds cmdline_part (the CLI we ran has exited)."""
    deadline = time.monotonic() + timeout
    while pids_with(cmdline_part):
        assert time.monotonic() < deadline, f"{cmdline_part!r} still runs"
        time.sleep(0.05)


@pytest.fixture
def tmux(daemon, tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (scripts/install-deps.sh installs it)")
    t = Tmux(daemon.socket, tmp_path)
    yield t
    t.close()


def test_exec_it_in_tmux_is_a_shell_ctrl_c_reaches_the_program_and_exit_restores(
        daemon, sandbox, tmux, tmp_path):
    before, after = tmp_path / "stty.before", tmp_path / "stty.after"
    tmux.line(f"stty -g > {before}; {AGENTD} sandbox exec -it {sandbox} -- /bin/bash --norc")
    tmux.line("PS1='inner$ '")
    tmux.wait_for("inner$ ")
    tmux.line("echo inside-$((2+3)); tty; stty size; echo done-$((1+1))")
    s = tmux.wait_for("done-2")
    assert "inside-5" in s and "/dev/pts/" in s and "30 100" in s, s
    # Ctrl-C: a byte for the program's terminal, whose line discipline interrupts sleep;
    # agentd itself and the shell inside live on
    tmux.line("echo sleeping-$((1)); sleep 100")
    tmux.wait_for("sleeping-1")
    time.sleep(0.5)
    tmux.keys("C-c")
    tmux.line("echo alive-$?-$((1+1))")
    tmux.wait_for("alive-130-2")   # sleep died of SIGINT (128+2)
    tmux.resize(120, 40)
    tmux.line("stty size")
    tmux.wait_for("40 120")
    tmux.line("exit 5")
    wait_gone(f"-it\0{sandbox}\0")   # agentd has left: the outer shell reads again
    tmux.line(f"echo rc=$?; stty -g > {after}; cmp {before} {after} && echo SAME-$((1+1)); "
              "stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e echo -e isig | sort | "
              "tr '\\n' ,; echo END-$((1+1))")
    s = tmux.wait_for("END-2")
    assert "rc=5" in s and "SAME-2" in s, s
    assert "echo,icanon,isig,END-2" in s, s   # cooked again: echo, line editing, ^C
    # the foreground process is gone with its session, as an exec
    r = daemon.get(f"/v1/sandboxes/{sandbox}/processes")
    assert r.json["processes"] == [], r


def test_attach_in_tmux_detach_keys_leave_the_process_running(daemon, sandbox, tmux, tmp_path):
    pid = start_shell(daemon, sandbox, argv=["/bin/bash", "--norc"])
    before, after = tmp_path / "g1", tmp_path / "g2"
    tmux.line(f"stty -g > {before}; {AGENTD} sandbox attach {sandbox} {pid}")
    time.sleep(1)
    tmux.line("echo attached-$((3+4))")
    tmux.wait_for("attached-7")
    tmux.keys("C-p", "C-q")
    tmux.wait_for("detached; process")   # printed after the terminal was restored
    tmux.line(f"echo rc=$?; stty -g > {after}; cmp {before} {after} && echo SAME-$((1+1))")
    tmux.wait_for("rc=0")
    tmux.wait_for("SAME-2")
    r = daemon.get(f"/v1/sandboxes/{sandbox}/processes/{pid}")
    assert r.json["state"] == "running", r


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_cli_restores_the_terminal(daemon, sandbox, tmux, tmp_path, sig):
    pid = start_shell(daemon, sandbox, argv=["/bin/bash", "--norc"])
    before, after = tmp_path / "g1", tmp_path / "g2"
    tmux.line(f"stty -g > {before}; {AGENTD} sandbox attach {sandbox} {pid}")
    time.sleep(1)
    tmux.line("echo attached-$((3+4))")
    tmux.wait_for("attached-7")
    cli = pids_with(f"attach\0{sandbox}\0")
    assert len(cli) == 1, cli
    os.kill(cli[0], sig)
    wait_gone(f"attach\0{sandbox}\0")
    tmux.line(f"echo rc=$?; stty -g > {after}; cmp {before} {after} && echo SAME-$((1+1))")
    tmux.wait_for(f"rc={128 + sig}")
    tmux.wait_for("SAME-2")


def test_exec_it_without_a_terminal_says_so(daemon, sandbox):
    r = daemon.cli("sandbox", "exec", "-it", sandbox, "--", "/bin/sh", input=b"")
    assert r.returncode == 125, r
    assert b"stdin is not a terminal" in r.stderr, r.stderr
    # nothing was started
    assert daemon.get(f"/v1/sandboxes/{sandbox}/processes").json["processes"] == []


def test_destroying_the_sandbox_ends_its_attachments_with_the_exit(daemon):
    sid = daemon.create("container")
    pid = start_shell(daemon, sid)
    ws = attach(daemon, sid, pid)
    ws.send_input(b"echo up-$((1+1))\r")
    ws.read_until(b"up-2")
    assert daemon.delete(f"/v1/sandboxes/{sid}").status == 200
    assert ws.read_to_close(timeout=30)[0] == 1000
    assert ws.exit is not None and ws.exit["signal"] == 9, ws.exit


def test_the_daemon_stops_with_attachments_open():
    d = Daemon().start()
    try:
        sid = d.create("container")
        pid = start_shell(d, sid)
        ws = attach(d, sid, pid)
        ws.send_input(b"echo up-$((1+1))\r")
        ws.read_until(b"up-2")
        t0 = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t0 < 20
        assert ws.read_to_close(timeout=5) is not None or ws.closed_by_server(timeout=1)
    finally:
        d.cleanup()
