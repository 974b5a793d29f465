"""The client commands of docs/cli.md (`agentd sandbox ...`, `agentd session ...`) against a real
daemon found through $AGENTD_SOCKET or --socket: ids printed, exit codes passed through,
--json and --stream output, cp in both directions."""
import json
import os
import time

import pytest

from daemon_util import Daemon


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout.decode()


def test_sandbox_commands(d, tmp_path):
    sid = ok(d.cli("sandbox", "create", "--backend", "container", "--name", "cli",
                   "--memory", "128M", "--env", "GREETING=hi")).strip()
    assert len(sid) == 32
    p = d.cli("sandbox", "exec", sid, "--", "/bin/sh", "-c", 'echo "$GREETING"; echo e >&2; exit 7')
    assert (p.returncode, p.stdout, p.stderr) == (7, b"hi\n", b"e\n")
    p = d.cli("sandbox", "exec", "--json", sid, "--", "/bin/echo", "j")
    assert p.returncode == 0 and json.loads(p.stdout)["stdout"] == "j\n"
    p = d.cli("sandbox", "exec", "--stdin", "--timeout", "5s", sid, "--", "/bin/cat", input=b"in")
    assert p.stdout == b"in"
    p = d.cli("sandbox", "exec", "--timeout", "200ms", sid, "--", "/bin/sleep", "5")
    assert p.returncode == 124, p

    listing = ok(d.cli("sandbox", "ls"))
    assert sid in listing and "cli" in listing and "container" in listing
    assert sid in [s["id"] for s in json.loads(ok(d.cli("sandbox", "ls", "--json")))]
    info = json.loads(ok(d.cli("sandbox", "inspect", sid)))
    assert info["spec"]["limits"]["max_memory_bytes"] == 128 << 20
    assert json.loads(ok(d.cli("sandbox", "usage", sid, "--json")))["peak_memory_bytes"] > 0

    assert ok(d.cli("sandbox", "suspend", sid)).strip() == "suspended"
    p = d.cli("sandbox", "exec", sid, "--", "/bin/true")
    assert p.returncode == 125 and b"suspended" in p.stderr and b"409" in p.stderr
    assert ok(d.cli("sandbox", "resume", sid)).strip() == "ready"

    local = tmp_path / "up.txt"
    local.write_bytes(b"uploaded\n")
    ok(d.cli("sandbox", "cp", str(local), f"{sid}:up.txt"))
    snap = ok(d.cli("sandbox", "snapshot", sid, "s1")).strip()
    assert len(snap) == 32
    d.cli("sandbox", "exec", sid, "--", "/bin/sh", "-c", "echo changed > up.txt")
    ok(d.cli("sandbox", "restore", sid, snap))
    ok(d.cli("sandbox", "cp", f"{sid}:up.txt", str(tmp_path / "down.txt")))
    assert (tmp_path / "down.txt").read_bytes() == b"uploaded\n"
    p = d.cli("sandbox", "cp", f"{sid}:/workspace/up.txt", "-")
    assert p.stdout == b"uploaded\n"
    p = d.cli("sandbox", "cp", f"{sid}:../etc/passwd", str(tmp_path / "x"))
    assert p.returncode == 125 and b"400" in p.stderr and not (tmp_path / "x").exists()

    ok(d.cli("sandbox", "rm", sid))
    p = d.cli("sandbox", "inspect", sid)
    assert json.loads(p.stdout)["state"] == "destroyed"
    p = d.cli("sandbox", "rm", sid)
    assert p.returncode == 125


def test_exec_stream_prints_as_it_goes(d):
    sid = ok(d.cli("sandbox", "create", "--backend", "container")).strip()
    import subprocess
    from conftest import AGENTD
    t0 = time.monotonic()
    p = subprocess.Popen([AGENTD, "sandbox", "exec", "--stream", "--socket", d.socket, sid, "--",
                          "/bin/sh", "-c", "echo early; sleep 2; echo late >&2; exit 3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    t_first = time.monotonic() - t0
    out, err = p.communicate(timeout=30)
    assert first == b"early\n" and t_first < 1.5, (first, t_first)
    assert err == b"late\n" and p.returncode == 3
    p = d.cli("sandbox", "exec", "--stream", "--json", sid, "--", "/bin/echo", "x")
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    assert lines[0] == {"stream": "stdout", "data": "x\n"} and lines[-1]["exit"]["exit_code"] == 0
    ok(d.cli("sandbox", "rm", sid))


def test_session_commands(d):
    sess = ok(d.cli("session", "create", "agent-1", "--backend", "container")).strip()
    assert len(sess) == 32
    p = d.cli("session", "exec", "agent-1", sess, "import os; open('n','w').write('1'); print('a')")
    assert (p.returncode, p.stdout) == (0, b"a\n"), p
    p = d.cli("session", "exec", "agent-1", sess, "cat n; exit 9", "--language", "sh")
    assert (p.returncode, p.stdout) == (9, b"1"), p
    p = d.cli("session", "exec", "agent-1", sess, "-", "--json", input=b"print(2+2)")
    assert json.loads(p.stdout)["result"]["stdout"] == "4\n"
    ok(d.cli("session", "rm", "agent-1", sess))
    p = d.cli("session", "exec", "agent-1", sess, "print(1)")
    assert p.returncode == 125 and b"409" in p.stderr


def test_socket_resolution_and_errors(d, tmp_path):
    # --socket wins over $AGENTD_SOCKET
    import subprocess
    from conftest import AGENTD
    p = subprocess.run([AGENTD, "sandbox", "ls", "--socket", d.socket], capture_output=True,
                       env={"PATH": "/usr/bin:/bin", "AGENTD_SOCKET": str(tmp_path / "none")})
    assert p.returncode == 0, p
    p = subprocess.run([AGENTD, "sandbox", "ls"], capture_output=True,
                       env={"PATH": "/usr/bin:/bin", "AGENTD_SOCKET": str(tmp_path / "none")})
    assert p.returncode == 125 and b"is `agentd serve` running" in p.stderr
    p = d.cli("sandbox", "create", "--memory", "1")
    assert p.returncode == 125 and b"--memory: 1 byte is below 1M" in p.stderr
    p = d.cli("sandbox", "frobnicate", "x")
    assert p.returncode == 125
