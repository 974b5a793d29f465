"""Forwarded ports from the sandbox's side: a way in is no way out. With a port forwarded (and
connections through it open), code inside still reaches nothing on the host — not the
forward's own host listener, not the host's loopback services, not its unix socket, not the
internet; a flood of connections stops at the sandbox's bound without touching another
sandbox's forward; a sandbox that never reads leaves the daemon's memory flat."""
import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from daemon_util import (  # noqa: E402
    Daemon, echo_connection, exec_in_background, forward_port, wait_until)

PORT_MAX_CONNS = 64     # live.h

# one thread for every connection: a sandbox's process limit counts threads
ECHO = """
import selectors, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(256)
sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is s:
            c, _ = s.accept(); sel.register(c, selectors.EVENT_READ)
            continue
        b = key.fileobj.recv(65536)
        if b:
            key.fileobj.sendall(b)
        else:
            sel.unregister(key.fileobj); key.fileobj.close()
"""

# accepts and then never reads a byte
DEAF = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(256)
held = []
while True:
    c, _ = s.accept(); held.append(c)
"""

# what code inside tries while its port is forwarded: one line per target
REACH = """
import socket, sys
def attempt(name, fam, addr):
    s = socket.socket(fam); s.settimeout(3)
    try:
        s.connect(addr); print(name, "CONNECTED")
    except OSError as e:
        print(name, "ERR", type(e).__name__)
attempt("own-forward", socket.AF_INET, ("127.0.0.1", int(sys.argv[1])))
attempt("host-loopback", socket.AF_INET, ("127.0.0.1", int(sys.argv[2])))
attempt("egress", socket.AF_INET, ("192.0.2.1", 80))
attempt("forward-unix", socket.AF_UNIX, sys.argv[3])
"""


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


@pytest.mark.parametrize("net", ["none", "allowlist"])
def test_a_forwarded_port_lets_the_sandbox_reach_nothing_on_the_host(d, tcp_listener, net):
    # allowlist: no Landlock connect rule, the network namespace alone stands in the way
    spec = {"network": {"mode": "allowlist", "allow": ["127.0.0.1:1"]}} if net != "none" else None
    sid = d.create(spec=spec) if spec else d.create()
    try:
        exec_in_background(d, sid, ["python3", "-c", ECHO, "9000"])
        fwd = forward_port(d, sid, 9000)
        ufwd = forward_port(d, sid, 9001, unix=True)
        held = echo_connection(("127.0.0.1", fwd["host_port"]))   # a live way in, open
        # the host side listens on loopback only
        lst = [l.split() for l in open("/proc/net/tcp").read().splitlines()[1:]]
        mine = [l for l in lst if int(l[1].split(":")[1], 16) == fwd["host_port"] and l[3] == "0A"]
        assert mine and all(l[1].split(":")[0] == "0100007F" for l in mine), mine
        r = d.exec(sid, ["python3", "-c", REACH, str(fwd["host_port"]), str(tcp_listener.port),
                         ufwd["path"]])
        assert r.status == 200, r
        got = dict(l.split(" ", 1) for l in r.json["stdout"].strip().splitlines())
        assert set(got) == {"own-forward", "host-loopback", "egress", "forward-unix"}, r.json
        for target, verdict in got.items():
            assert verdict.startswith("ERR"), (target, verdict, r.json)
        assert tcp_listener.accepted == 0
        held.sendall(b"still")
        assert held.recv(5) == b"still"
        held.close()
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_a_connection_flood_stops_at_the_bound_and_other_sandboxes_keep_working(d):
    a, b = d.create(), d.create()
    try:
        exec_in_background(d, a, ["python3", "-c", ECHO, "9000"])
        exec_in_background(d, b, ["python3", "-c", ECHO, "9000"])
        fa, fb = forward_port(d, a, 9000), forward_port(d, b, 9000)
        second = forward_port(d, a, 9001)   # the bound is the sandbox's, over all its ports
        flood = [echo_connection(("127.0.0.1", fa["host_port"]))
                 for _ in range(PORT_MAX_CONNS)]
        for port in (fa["host_port"], second["host_port"]):
            try:    # accepted and reset at once
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"ping")
                    assert s.recv(4) == b"", "a connection past the bound was relayed"
            except (ConnectionResetError, BrokenPipeError):
                pass
        # the other sandbox is untouched
        with echo_connection(("127.0.0.1", fb["host_port"])) as other:
            other.sendall(b"pong")
            assert other.recv(4) == b"pong"
        listed = {p["port"]: p for p in d.get(f"/v1/sandboxes/{a}/ports").json["ports"]}
        assert listed[9000]["connections"] == PORT_MAX_CONNS, listed
        assert listed[9000]["refused"] + listed[9001]["refused"] >= 2, listed
        for s in flood[:4]:
            s.close()
        # room again once connections close
        assert wait_until(lambda: sum(p["connections"] for p in d.get(
            f"/v1/sandboxes/{a}/ports").json["ports"]) <= PORT_MAX_CONNS - 4, timeout=10)
        echo_connection(("127.0.0.1", fa["host_port"])).close()
        for s in flood[4:]:
            s.close()
    finally:
        d.delete(f"/v1/sandboxes/{a}")
        d.delete(f"/v1/sandboxes/{b}")


def test_a_sandbox_that_never_reads_leaves_the_daemon_memory_flat(d):
    sid = d.create()
    try:
        exec_in_background(d, sid, ["python3", "-c", DEAF, "9000"])
        fwd = forward_port(d, sid, 9000)
        # wait for the server: a connection that is not reset at once
        def up():
            with socket.create_connection(("127.0.0.1", fwd["host_port"]), timeout=5) as s:
                s.settimeout(0.5)
                try:
                    return s.recv(1) is None
                except socket.timeout:
                    return True     # held open, nothing sent back: the server accepted
                except OSError:
                    return False
        assert wait_until(up, timeout=30)
        rss0 = rss_kib(d.proc.pid)
        conns, sent = [], []
        chunk = b"x" * (1 << 20)
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", fwd["host_port"]), timeout=5)
            s.setblocking(False)
            conns.append(s)
            sent.append(0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:   # push at full speed: whatever is taken
            moved = 0
            for i, s in enumerate(conns):
                try:
                    n = s.send(chunk)
                    sent[i] += n
                    moved += n
                except BlockingIOError:
                    pass
            if not moved:
                time.sleep(0.05)
        # each connection stalls at what the kernel buffers plus its relay pipe
        assert max(sent) < 48 << 20, sent
        grown = rss_kib(d.proc.pid) - rss0
        assert grown < 16 << 10, f"daemon RSS grew {grown} KiB"
        for s in conns:
            s.close()
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
