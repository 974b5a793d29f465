"""Background processes (docs/api.md#processes) against a real `agentd serve`, from the side of a
hostile process: it cannot outlive its sandbox's destroy however it detaches, cannot leave its
sandbox's cgroups, cannot grow the daemon's memory by writing fast (the output ring is bounded),
and a fork bomb among the processes hits the sandbox's pids limit while the others run on."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from daemon_util import AGENTD, Daemon, pids_with, wait_until  # noqa: E402
from test_errors_and_output import SHELL_PRINTF, assert_escaped, assert_verbatim, on_pty  # noqa


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def spawn(d, sid, argv, **kw):
    r = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": argv, **kw})
    assert r.status == 201, r
    return r.json["pid"]


def proc(d, sid, pid):
    r = d.get(f"/v1/sandboxes/{sid}/processes/{pid}")
    assert r.status == 200, r
    return r.json


def sleeping(n):
    return pids_with(f"sleep\0{n}")


def cgroup_lines(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return [l.strip().split(":", 2) for l in f]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    raise AssertionError("no VmRSS")


def test_a_background_process_cannot_outlive_destroy(d):
    sid = d.create()
    # every way to detach a shell knows: setsid, nohup, a double fork, its own session
    spawn(d, sid, ["/bin/sh", "-c",
                   "setsid /bin/sleep 4001 & nohup /bin/sleep 4002 >/dev/null 2>&1 & "
                   "( ( /bin/sleep 4003 & ) & ) ; exec /bin/sleep 4004"])
    assert wait_until(lambda: all(sleeping(n) for n in (4001, 4002, 4003, 4004)))
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    assert wait_until(lambda: not any(sleeping(n) for n in (4001, 4002, 4003, 4004))), \
        "a background process outlived its sandbox"


def test_a_background_process_cannot_leave_its_sandbox_cgroups(d):
    sid = d.create()
    try:
        p = spawn(d, sid, ["/bin/sh", "-c",
                           "echo $$ > /sys/fs/cgroup/cgroup.procs; "
                           "mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg && "
                           "echo $$ > /tmp/cg/cgroup.procs; "
                           "mount -t cgroup -o pids none /tmp/cg; exec /bin/sleep 40111"])
        host = wait_until(lambda: sleeping(40111))
        assert host, proc(d, sid, p)
        for hier, ctrl, path in cgroup_lines(host[0]):
            if ctrl in ("pids", "memory", ""):
                assert f"/agentd/{sid}" in path, (ctrl, path)
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
    assert wait_until(lambda: not sleeping(40111))


def test_a_process_writing_a_gigabyte_leaves_the_daemon_memory_flat(d):
    sid = d.create()
    try:
        # warm up: the pump thread and a first ring exist before the measure
        warm = spawn(d, sid, ["/bin/sh", "-c", "head -c 3000000 /dev/zero"])
        assert wait_until(lambda: proc(d, sid, warm)["state"] == "exited", timeout=30)
        before = rss_kib(d.proc.pid)
        p = spawn(d, sid, ["/bin/sh", "-c", "head -c 1073741824 /dev/zero; "
                           "head -c 1073741824 /dev/zero >&2"])
        peak = before
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            peak = max(peak, rss_kib(d.proc.pid))
            j = proc(d, sid, p)
            if j["state"] != "running":
                break
            time.sleep(0.05)
        assert j["state"] == "exited", j
        out = j["output"]
        assert out["stdout"]["total_bytes"] == out["stderr"]["total_bytes"] == 1 << 30
        assert out["stdout"]["kept_bytes"] == out["stderr"]["kept_bytes"] == 1 << 20
        # two 1 MiB rings and allocator noise; an unbounded buffer would be 2 GiB
        assert peak - before < 24 * 1024, f"daemon RSS grew {peak - before} KiB"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_a_background_fork_bomb_hits_pids_and_the_other_processes_run_on(d):
    sid = d.create(spec={"limits": {"max_processes": 48}})
    try:
        # the limit is proven before the bomb goes off
        pids_max = [os.path.join(c, sid, "pids.max") for c in
                    ("/sys/fs/cgroup/pids/agentd", "/sys/fs/cgroup/agentd")]
        proven = [open(f).read().strip() for f in pids_max if os.path.exists(f)]
        assert proven and proven[0] == "48", proven
        ticker = spawn(d, sid, ["python3", "-u", "-c",
                                "import time\nwhile True:\n  print('tick'); time.sleep(0.05)"])

        def ticks():
            return proc(d, sid, ticker)["output"]["stdout"]["total_bytes"]

        assert wait_until(lambda: ticks() > 50, timeout=30)
        bomb = spawn(d, sid, ["/bin/sh", "-c", "f() { f | f & }; f; sleep 4021"])
        time.sleep(3)
        # refused forks, counted where they were refused: the bomb's own unit, or the
        # sandbox's cgroup (the kernel's and the hierarchy's choice)
        top = os.path.dirname([f for f in pids_max if os.path.exists(f)][0])
        refused = 0
        for root, _, files in os.walk(top):
            try:
                with open(os.path.join(root, "pids.events")) as f:
                    refused += int(f.read().split()[-1])
            except (FileNotFoundError, IndexError, ValueError):
                pass  # no such file here, or the unit went meanwhile
        assert refused > 0, "the bomb never hit the pids limit"
        seen = ticks()
        assert wait_until(lambda: ticks() > seen + 50, timeout=30), "the ticker stopped"
        assert proc(d, sid, ticker)["state"] == "running"
        r = d.delete(f"/v1/sandboxes/{sid}/processes/{bomb}")
        assert r.status == 200, r
        seen = ticks()
        assert wait_until(lambda: ticks() > seen + 50, timeout=30)
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_a_process_output_and_argv_cannot_drive_the_host_terminal(d):
    """`agentd sandbox logs` and `ps` on a terminal escape what the sandbox wrote (OSC 52,
    screen clears, C1 and bidi controls), as `agentd run` does; --raw passes it through."""
    sid = d.create()
    try:
        p = spawn(d, sid, SHELL_PRINTF)
        assert wait_until(lambda: proc(d, sid, p)["state"] == "exited")
        env = {"PATH": "/usr/bin:/bin", "AGENTD_SOCKET": d.socket}
        rc, out = on_pty([AGENTD, "sandbox", "logs", sid, str(p)], env=env)
        assert rc == 0, out
        assert_escaped(out)
        assert out.count(rb"\x1b]52") == 2          # stdout and stderr alike
        rc, out = on_pty([AGENTD, "sandbox", "logs", "--raw", sid, str(p)], env=env)
        assert_verbatim(out)
        q = spawn(d, sid, ["/bin/sleep", "4031", "\x1b]52;c;aGk=\x07\u202eevil"])
        rc, out = on_pty([AGENTD, "sandbox", "ps", sid], env=env)
        assert rc == 0 and str(q).encode() in out, out
        assert b"\x1b" not in out and b"\xe2\x80\xae" not in out, out
        assert rb"\x1b]52;c;aGk=\x07\u202eevil" in out, out
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return int([l for l in f if l.startswith("Threads:")][0].split()[1])


def test_followers_that_go_away_leave_nothing_behind(d):
    """A quiet process, 20 followers that connect and vanish: the daemon's threads and the
    process's reader slots come back (a reader is woken by its client's hang-up, not by the
    next output), and the process runs on."""
    import socket
    sid = d.create()
    try:
        p = spawn(d, sid, ["/bin/sleep", "4041"])
        time.sleep(0.3)
        before = threads(d.proc.pid)
        socks = []
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.socket)
            s.sendall(f"GET /v1/sandboxes/{sid}/processes/{p}/output?follow=1 HTTP/1.1\r\n"
                      f"Host: x\r\n\r\n".encode())
            socks.append(s)
        assert wait_until(lambda: threads(d.proc.pid) >= before + 20), threads(d.proc.pid)
        for s in socks:
            s.close()
        assert wait_until(lambda: threads(d.proc.pid) <= before, timeout=10), \
            f"{threads(d.proc.pid)} threads, {before} before"
        assert proc(d, sid, p)["state"] == "running"
        # more followers, one after the other, than a process has reader slots (64): each
        # one's slot came back when it went
        for _ in range(70):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(d.socket)
                s.sendall(f"GET /v1/sandboxes/{sid}/processes/{p}/output?follow=1 HTTP/1.1"
                          f"\r\nHost: x\r\n\r\n".encode())
                head = s.recv(4096)
                assert head.startswith(b"HTTP/1.1 200"), head
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
