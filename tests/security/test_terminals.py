"""Interactive terminals (docs/api.md#attach) under attack. From inside: a program on a
sandbox pty cannot push input into any terminal (TIOCSTI/TIOCLINUX, /dev/tty, the console,
a host pty) nor reach the terminal of the person attached (`agentd sandbox exec -it` passes
no fd in). From the wire: hostile WebSocket frames close only their own connection (the
daemon, the process and other attachments live on), and attachments that come and go leave
no fd or thread behind in the daemon."""
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from .secsuite import AGENTD, PROBE, PROBE_DIR, check, verdict_of

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from daemon_util import Daemon  # noqa: E402
from tmux_util import Tmux  # noqa: E402
from wsclient import (OP_BINARY, OP_CONT, OP_PING, OP_TEXT, WS, frame)  # noqa: E402


@pytest.fixture(scope="module")
def daemon():
    d = Daemon().start()
    yield d
    d.cleanup()


def sandbox_of(daemon, backend):
    return daemon.create(backend, spec={"allowed_paths_ro": [PROBE_DIR]})


def start_tty(daemon, sid, argv):
    return daemon.post(f"/v1/sandboxes/{sid}/processes", {"argv": argv, "tty": True})


def test_a_tty_process_cannot_inject_into_any_terminal(daemon, backend):
    """sbxprobe pty-inject on a sandbox pty: TIOCSTI and TIOCLINUX on its own terminal, then
    every terminal it can open, each written a marker. The host holds a pty of its own (as a
    person's terminal would be): nothing may arrive on it, in either direction."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~(termios.ICANON | termios.ECHO)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    sid = sandbox_of(daemon, backend)
    try:
        r = start_tty(daemon, sid, [PROBE, "pty-inject"])
        if r.status == 501:   # no processes on this backend: nothing to attack
            check("pty-inject", backend, "REFUSED", r.error.get("message"), refused_ok=True)
            return
        assert r.status == 201, r
        ws = WS(daemon.socket, sid, r.json["pid"], query="offset=0")
        ws.read_to_close()
        assert ws.exit is not None, ws.output
        verdict, line = verdict_of(ws.output.decode(errors="replace").replace("\r", ""))
        reached = b""
        for fd in (master, slave):
            os.set_blocking(fd, False)
            try:
                reached += os.read(fd, 4096)
            except BlockingIOError:
                pass
        if reached:
            verdict, line = "ALLOWED", f"{reached!r} reached a host terminal ({line})"
        check("pty-inject", backend, verdict, line)
    finally:
        os.close(master)
        os.close(slave)
        daemon.delete(f"/v1/sandboxes/{sid}")


def run_exec_it_on_a_pty(daemon, sid, *cmd, timeout=60):
    """`agentd sandbox exec -it` as a person runs it: on a pty that is its controlling
    terminal. Returns (exit code, everything shown on that terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

    def ctty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen([AGENTD, "sandbox", "exec", "-it", sid, "--", *cmd],
                         stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty,
                         env={"PATH": "/usr/bin:/bin", "AGENTD_SOCKET": daemon.socket,
                              "TERM": "xterm"})
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:   # EIO: every holder of the slave is gone
                break
            if not chunk:
                break
            shown += chunk
        elif p.poll() is not None:
            break
    rc = p.wait(timeout=30)
    os.close(master)
    return rc, shown.decode(errors="replace").replace("\r", "")


def test_the_attached_terminal_is_not_passed_into_the_sandbox(daemon):
    """exec -it from a person's terminal: inside, fds 0-2 are the sandbox's own pty and
    nothing else is open; the caller's terminal stays outside."""
    sid = sandbox_of(daemon, "container")
    try:
        rc, shown = run_exec_it_on_a_pty(daemon, sid, PROBE, "fds")
        verdict, line = verdict_of(shown)
        assert verdict == "BLOCKED", f"an fd reached the sandbox: {line} ({shown[-400:]!r})"
        rc, shown = run_exec_it_on_a_pty(daemon, sid, "/bin/sh", "-c",
                                         "readlink /proc/self/fd/0 /proc/self/fd/1 "
                                         "/proc/self/fd/2; echo rc=$((6*7))")
        assert rc == 0 and "rc=42" in shown, shown
        links = [ln for ln in shown.splitlines() if ln.startswith("/dev/")]
        assert links == ["/dev/pts/0"] * 3, shown   # the sandbox's own devpts
    finally:
        daemon.delete(f"/v1/sandboxes/{sid}")


def test_an_attached_program_cannot_set_the_host_clipboard(daemon, backend, tmp_path):
    """A person runs `agentd sandbox exec -it` in tmux, which keeps what OSC 52 sets as a
    paste buffer (set-clipboard on): the program's OSC 52 must not make one, while the
    same sequence printed by the person's own shell does (the detector works)."""
    sid = sandbox_of(daemon, backend)
    t = Tmux(daemon.socket, tmp_path)
    try:
        t.tmux("set", "-g", "set-clipboard", "on")
        t.line("printf '\\033]52;c;%s\\a' $(printf own | base64); echo own-$((1+1))")
        t.wait_for("own-2")
        assert "own" in t.tmux("show-buffer").stdout, "tmux keeps no OSC 52 buffer here"
        t.tmux("delete-buffer")
        t.line(f"{AGENTD} sandbox exec -it {sid} -- {PROBE} term-escapes; echo rc-$?-en$((1))d")
        s = t.wait_for("-en1d")
        if "rc-125-en1d" in s and "no background processes" in s:
            check("pty-clipboard", backend, "REFUSED", s[-300:], refused_ok=True)
            return
        # and split across writes (two frames), as a program may write it
        t.line(f"{AGENTD} sandbox exec -it {sid} -- /bin/sh -c \"printf '\\033]5'; sleep 0.3; "
               f"printf '2;c;c3BsaXQ=\\a'; echo split-\\$((1+1))\"")
        t.wait_for("split-2")
        buf = t.tmux("show-buffer")
        verdict = "ALLOWED" if buf.returncode == 0 else "BLOCKED"
        check("pty-clipboard", backend, verdict, f"tmux buffer: {buf.stdout!r} {buf.stderr!r}")
    finally:
        t.close()
        daemon.delete(f"/v1/sandboxes/{sid}")


# ------------------------------------------------------------------ hostile frames

BIG = 1 << 20
BAD_FRAMES = [
    ("unmasked", frame(OP_BINARY, b"x", mask=False), 1002),
    ("oversized frame", frame(OP_BINARY, b"", length=BIG), 1009),
    ("length with the top bit", bytes([0x82, 0xFF]) + b"\x80" + b"\0" * 7 + b"abcd", 1002),
    ("reserved bits", frame(OP_BINARY, b"x", rsv=4), 1002),
    ("opcode 3", frame(3, b"x"), 1002),
    ("opcode 0xB", frame(0xB, b"x"), 1002),
    ("fragmented ping", frame(OP_PING, b"x", fin=False), 1002),
    ("ping over 125 bytes", frame(OP_PING, b"p" * 126), 1002),
    ("continuation first", frame(OP_CONT, b"x"), 1002),
    ("message over 64 KiB in fragments",
     frame(OP_BINARY, b"a" * 40000, fin=False) + frame(OP_CONT, b"b" * 40000), 1009),
    ("text not UTF-8", frame(OP_TEXT, b"\xc0\xaf"), 1007),
    ("text surrogate", frame(OP_TEXT, b"\xed\xa0\x80"), 1007),
    ("control not JSON", frame(OP_TEXT, b"hello"), 1007),
    ("resize to 0 rows", frame(OP_TEXT, b'{"type":"resize","rows":0,"cols":80}'), 1007),
    ("resize too large", frame(OP_TEXT, b'{"type":"resize","rows":70000,"cols":80}'), 1007),
    ("unknown control", frame(OP_TEXT, b'{"type":"exec","argv":["sh"]}'), 1007),
    ("exit from the client", frame(OP_TEXT, b'{"type":"exit","exit_code":0,"signal":0}'),
     1007),
    ("control over 1 KiB", frame(OP_TEXT, b'{"type":"resize","rows":1,"cols":1' +
                                 b' ' * 2000 + b'}'), 1009),
]


@pytest.fixture
def shell(daemon):
    """A container sandbox running /bin/sh on a terminal: (sandbox id, pid)."""
    sid = sandbox_of(daemon, "container")
    r = start_tty(daemon, sid, ["/bin/sh"])
    assert r.status == 201, r
    yield sid, r.json["pid"]
    daemon.delete(f"/v1/sandboxes/{sid}")


def test_bad_frames_close_only_their_connection(daemon, shell):
    sid, pid = shell
    good = WS(daemon.socket, sid, pid, query="offset=0")
    for name, data, code in BAD_FRAMES:
        ws = WS(daemon.socket, sid, pid)
        ws.send_raw(data)
        close = ws.read_to_close(timeout=20)
        assert close and close[0] == code, f"{name}: closed with {close}, errors {ws.errors}"
        assert ws.closed_by_server(), f"{name}: the connection stayed open"
        ws.shut()
    # the daemon, the process and the other attachment are all well; the refused resize
    # changed nothing
    assert daemon.get("/v1/health").status == 200
    assert daemon.get(f"/v1/sandboxes/{sid}/processes/{pid}").json["state"] == "running"
    good.send_input(b"stty size; echo still-$((40+2))\r")
    out = good.read_until(b"still-42")
    assert b"24 80\r\nstill-42" in out, out[-300:]
    good.shut()


def daemon_fds_and_threads(daemon):
    pid = daemon.proc.pid
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def test_attachments_that_come_and_go_leave_no_fd_or_thread(daemon, shell):
    sid, pid = shell
    warm = WS(daemon.socket, sid, pid)
    warm.detach()
    warm.read_to_close()
    warm.shut()
    time.sleep(0.5)
    base_fds, base_threads = daemon_fds_and_threads(daemon)
    for i in range(120):
        ws = WS(daemon.socket, sid, pid)
        if i % 3 == 0:
            ws.detach()             # a clean close
            ws.read_to_close()
        elif i % 3 == 1:
            ws.send_raw(frame(OP_BINARY, b"x", mask=False))   # a protocol error
            ws.read_to_close()
        ws.shut()                   # i % 3 == 2: the client just goes
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fds, threads = daemon_fds_and_threads(daemon)
        if fds <= base_fds and threads <= base_threads:
            break
        time.sleep(0.2)
    assert fds <= base_fds and threads <= base_threads, \
        f"after 120 attachments: {fds} fds (was {base_fds}), {threads} threads " \
        f"(was {base_threads})"
    assert daemon.get(f"/v1/sandboxes/{sid}/processes/{pid}").json["state"] == "running"
