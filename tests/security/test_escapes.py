"""Escapes that need the host to set something up first: leaked file descriptors and a
workdir naming one (CVE-2024-21626 class), a setuid-root binary, su, TIOCSTI into the
caller's terminal."""
import fcntl
import os
import pty
import shutil
import subprocess
import termios
import time

import pytest

from .secsuite import (AGENTD, PROBE, PROBE_DIR, RUN_TIMEOUT, Result, check, degraded, probe,
                       run, verdict_of)


def test_leaked_fds_not_visible(backend, hostdir):
    """Host fds left open (no CLOEXEC) in agentd's parent: a dir and a secret file."""
    dfd = os.open(hostdir, os.O_RDONLY | os.O_DIRECTORY)
    ffd = os.open(os.path.join(hostdir, "secret.txt"), os.O_RDONLY)
    try:
        _, verdict, line = probe(backend, "fds", pass_fds=(dfd, ffd))
        check("leaked-fd", backend, verdict, line)
        for fd in (dfd, ffd):
            _, verdict, line = probe(backend, "read", f"/proc/self/fd/{fd}",
                                     pass_fds=(dfd, ffd))
            check("leaked-fd-read", backend, verdict, line)
    finally:
        os.close(dfd)
        os.close(ffd)


def _run_with_fd(backend, fdnum, path, *cmd, opts=()):
    """agentd run with `path` open (a directory, no CLOEXEC) as fd `fdnum` in agentd's own
    process: a shell opens it and execs agentd, so no fd of pytest is disturbed."""
    args = ["run", "--backend", backend, *degraded(backend), "--json", "--ro", PROBE_DIR,
            "--timeout", RUN_TIMEOUT, *opts, "--", PROBE, *cmd]
    t0 = time.monotonic()
    p = subprocess.run(["/bin/sh", "-c", f'exec "$0" "$@" {fdnum}<"$AGENTD_SEC_DIR"',
                        AGENTD, *args], capture_output=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "AGENTD_SEC_DIR": path})
    return Result(p, time.monotonic() - t0)


@pytest.mark.parametrize("fdnum", [3, 4, 7])
def test_workdir_proc_self_fd(backend, hostdir, token, fdnum):
    """--workdir /proc/self/fd/N with N a host directory open in agentd's process: agentd
    must refuse, or the command must not land in (or reach) that directory."""
    planted = f"planted-{token}"
    for cmd in (["write", planted], ["read", "secret.txt"]):
        r = _run_with_fd(backend, fdnum, hostdir, *cmd,
                         opts=["--workdir", f"/proc/self/fd/{fdnum}"])
        if r.json is None:
            assert r.rc == 125, r
            verdict, line = "REFUSED", r.stderr.decode(errors="replace").strip()
        else:
            verdict, line = verdict_of(r.json["stdout"])
        if cmd[0] == "write" and verdict == "ALLOWED" and \
                not os.path.exists(os.path.join(hostdir, planted)):
            verdict = "BLOCKED"  # written inside the sandbox, not into the host directory
        check("workdir-proc-fd", backend, verdict, line, refused_ok=True)
    assert not os.path.exists(os.path.join(hostdir, planted))


@pytest.mark.parametrize("workdir,attack", [("/proc/self/cwd", "workdir-proc-cwd"),
                                            ("/proc/1/cwd", "workdir-proc1-cwd")])
def test_workdir_proc_magic_links(backend, hostdir, token, workdir, attack):
    """A workdir that names a /proc magic link: resolved by agentd in its own process it
    would be agentd's cwd (here: the host directory) or init's ("/")."""
    planted = f"planted-{token}"
    try:
        r, verdict, line = probe(backend, "write", planted, opts=["--workdir", workdir],
                                 cwd=hostdir)
        landed = [p for p in (os.path.join(hostdir, planted), "/" + planted)
                  if os.path.exists(p)]
        if verdict == "ALLOWED" and not landed:
            verdict = "BLOCKED"  # it stayed inside the sandbox
        check(attack, backend, verdict, line, refused_ok=True)
    finally:
        for p in (os.path.join(hostdir, planted), "/" + planted):
            if os.path.exists(p):
                os.unlink(p)


def test_setuid_root_binary_gives_nothing(backend, hostdir):
    """A setuid-root copy of sbxprobe, readable in the sandbox: no_new_privs (or a nosuid
    mount) must keep its euid unprivileged."""
    suid = os.path.join(hostdir, "sbxprobe-suid")
    shutil.copy(PROBE, suid)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    r = run(backend, suid, "ids", opts=["--ro", hostdir])
    assert r.json is not None, r
    out = r.json["stdout"]
    if r.rc == 0 and "euid=" in out:
        euid = int(out.split("euid=", 1)[1].split()[0])
        verdict, line = ("ALLOWED" if euid == 0 else "BLOCKED"), out.strip()
    else:
        verdict, line = "BLOCKED", f"did not run (exit {r.rc}): {r.json['stderr'][-200:]}"
    check("setuid-binary", backend, verdict, line)


def test_su_gains_nothing(backend):
    if not os.path.exists("/usr/bin/su"):
        pytest.skip("no /usr/bin/su")
    r = run(backend, "/usr/bin/su", "-c", "id -u", "root")
    assert r.json is not None, r
    lines = r.json["stdout"].split()
    verdict = "ALLOWED" if r.rc == 0 and "0" in lines else "BLOCKED"
    check("su", backend, verdict, f"exit {r.rc} stdout {lines} stderr "
                                  f"{r.json['stderr'][-200:]!r}")


def test_tiocsti_into_callers_terminal(backend):
    """agentd runs with a pty as its controlling terminal; the sandbox must not be able to
    push input into it (TIOCSTI on fd 0 or /dev/tty)."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~(termios.ICANON | termios.ECHO)  # a single injected byte is readable
    termios.tcsetattr(slave, termios.TCSANOW, attrs)

    def ctty():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    try:
        r = run(backend, PROBE, "tiocsti", stdin=slave, preexec_fn=ctty, pass_fds=(slave,))
        assert r.json is not None, r
        verdict, line = verdict_of(r.json["stdout"])
        os.set_blocking(slave, False)
        try:
            injected = os.read(slave, 64)
        except BlockingIOError:
            injected = b""
        if injected:
            verdict, line = "ALLOWED", f"{injected!r} arrived on the caller's tty ({line})"
        check("tiocsti", backend, verdict, line)
    finally:
        os.close(master)
        os.close(slave)


def test_escape_sequences_do_not_reach_the_callers_terminal(backend):
    """The command writes OSC 52 (clipboard), CSI 2J (clear) and OSC 0 (title) to its
    stdout; `agentd run` on a terminal must show them, not play them."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(AGENTD, [AGENTD, "run", "--backend", backend, *degraded(backend), "--ro",
                          PROBE_DIR, "--timeout", RUN_TIMEOUT, "--", PROBE, "term-escapes"])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: agentd is gone
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
    os.waitpid(pid, 0)
    assert b"wrote OSC 52" in out, out              # the command ran
    played = [s for s in (b"\x1b", b"\x07") if s in out]
    verdict = "ALLOWED" if played else "BLOCKED"
    check("terminal-escapes", backend, verdict, f"the terminal received {out[:120]!r}")
