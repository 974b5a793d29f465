"""Forwarded ports (POST/GET/DELETE /v1/sandboxes/{id}/ports, `agentd sandbox port`) against
a real `agentd serve`: a server listening inside a container sandbox answers on the host's
127.0.0.1 (or a unix socket), one connection carries many round trips, the listener and
every relay go with DELETE and with the sandbox, and bad input is a 4xx naming `port`."""
import os
import socket
import subprocess
import threading
import time

import pytest

from daemon_util import (Daemon, echo_connection, exec_in_background, forward_port,
                         kill_sandbox_from_outside, wait_until)
from test_unprivileged import NOBODY, delegated, userdir  # noqa: F401 (fixtures)

ECHO = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
import threading
def serve(c):
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def http_get(url, unix=None):
    args = ["curl", "-sS", "--max-time", "10"] + (["--unix-socket", unix] if unix else []) + [url]
    return subprocess.run(args, capture_output=True, timeout=30)


def daemon_fds(d):
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def daemon_threads(d):
    return len(os.listdir(f"/proc/{d.proc.pid}/task"))


@pytest.fixture
def sbx(d):
    sid = d.create()    # the default policy: network "none"
    yield sid
    d.delete(f"/v1/sandboxes/{sid}")


def test_curl_from_the_host_gets_the_page_served_inside(d, sbx):
    r = d.exec(sbx, ["/bin/sh", "-c", "echo hello-from-inside > index.html"])
    assert r.status == 200 and r.json["exit_code"] == 0, r
    exec_in_background(d, sbx, ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"])
    fwd = forward_port(d, sbx, 8000)
    assert fwd["host"] == "127.0.0.1" and fwd["port"] == 8000, fwd
    assert fwd["address"] == f"127.0.0.1:{fwd['host_port']}", fwd
    url = f"http://127.0.0.1:{fwd['host_port']}/index.html"
    got = wait_until(lambda: http_get(url).stdout == b"hello-from-inside\n", timeout=30)
    assert got, http_get(url)
    listed = d.get(f"/v1/sandboxes/{sbx}/ports")
    assert listed.status == 200 and [p["port"] for p in listed.json["ports"]] == [8000], listed
    assert listed.json["ports"][0]["accepted"] >= 1, listed
    # the same port on a unix socket instead, under the state dir
    assert d.delete(f"/v1/sandboxes/{sbx}/ports/8000").status == 200
    ufwd = forward_port(d, sbx, 8000, unix=True)
    assert ufwd["path"].startswith(os.path.join(d.state_dir, "ports") + "/"), ufwd
    assert oct(os.stat(ufwd["path"]).st_mode & 0o777) == "0o660"
    out = http_get("http://sandbox/index.html", unix=ufwd["path"])
    assert out.stdout == b"hello-from-inside\n", out


def test_a_background_process_server_answers_curl_from_the_host_until_destroy(d):
    """The issue's own test: `python3 -m http.server 8000` started as a background process
    in one call, a port forwarded in the next, curl from the host gets its page; the
    listener is gone after destroy."""
    sid = d.create()
    r = d.exec(sid, ["/bin/sh", "-c", "echo served-by-a-process > index.html"])
    assert r.status == 200 and r.json["exit_code"] == 0, r
    r = d.post(f"/v1/sandboxes/{sid}/processes",
               {"argv": ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"]})
    assert r.status == 201, r
    fwd = forward_port(d, sid, 8000)
    url = f"http://127.0.0.1:{fwd['host_port']}/index.html"
    assert wait_until(lambda: http_get(url).stdout == b"served-by-a-process\n", timeout=30), \
        http_get(url)
    # the exec that wrote the page is long over; the server and its forward live on
    assert d.exec(sid, ["/bin/true"]).json["exit_code"] == 0
    assert http_get(url).stdout == b"served-by-a-process\n"
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", fwd["host_port"]), timeout=5)


def test_one_long_lived_connection_carries_many_round_trips(d, sbx):
    exec_in_background(d, sbx, ["python3", "-c", ECHO, "9000"])
    fwd = forward_port(d, sbx, 9000)
    s = echo_connection(("127.0.0.1", fwd["host_port"]))
    with s:
        for i in range(300):
            msg = (b"%d:" % i) * (1 + i % 50)
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(65536)
                assert chunk, f"closed after {i} round trips"
                got += chunk
            assert got == msg
        # a message larger than what the relay holds in flight: backpressure, not loss
        big = os.urandom(8 << 20)
        received = bytearray()

        def reader():
            while len(received) < len(big):
                chunk = s.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(big)
        t.join(60)
        assert bytes(received) == big
        # a half-close goes through: the server sees EOF and closes its end
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""


def test_listener_is_gone_after_delete_and_destroy_without_leaks(d):
    sid = d.create()
    fds0, threads0 = daemon_fds(d), daemon_threads(d)
    exec_in_background(d, sid, ["python3", "-c", ECHO, "9000"])
    fwd = forward_port(d, sid, 9000)
    ufwd = forward_port(d, sid, 9001, unix=True)
    held = [echo_connection(("127.0.0.1", fwd["host_port"])) for _ in range(3)]
    assert d.delete(f"/v1/sandboxes/{sid}/ports/9000").status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", fwd["host_port"]), timeout=5)
    for s in held:   # its connections went with it
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert [p["port"] for p in d.get(f"/v1/sandboxes/{sid}/ports").json["ports"]] == [9001]
    again = forward_port(d, sid, 9000)
    held = [echo_connection(("127.0.0.1", again["host_port"])) for _ in range(2)]
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", again["host_port"]), timeout=5)
    assert not os.path.exists(ufwd["path"])
    for s in held:
        s.close()
    # everything the forwards held (listeners, relays, pipes, threads) is released
    assert wait_until(lambda: daemon_fds(d) <= fds0 and daemon_threads(d) <= threads0,
                      timeout=20), (daemon_fds(d), fds0, daemon_threads(d), threads0)
    r = d.get(f"/v1/sandboxes/{sid}/ports")
    assert r.status == 409 and "destroyed" in r.error["message"], r


def test_a_port_nobody_listens_on_closes_the_connection_at_once(d, sbx):
    fwd = forward_port(d, sbx, 9999)
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", fwd["host_port"]), timeout=10) as s:
        try:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert time.monotonic() - t0 < 8
    assert d.get("/v1/health").status == 200


@pytest.mark.parametrize("body,fragment", [
    ({"port": 0}, "port: expected 1 to 65535"),
    ({"port": 65536}, "port: expected 1 to 65535"),
    ({"port": -1}, "port: expected 1 to 65535"),
    ({"port": "8000"}, "port: expected integer"),
    ({}, "port: required"),
    ({"port": 8000, "unix": "yes"}, "unix: expected boolean"),
    ({"port": 8000, "host": "0.0.0.0"}, "unknown field 'host'"),
])
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(d, sbx, body, fragment):
    r = d.post(f"/v1/sandboxes/{sbx}/ports", body)
    assert r.status == 400 and fragment in r.error["message"], r
    assert d.get(f"/v1/sandboxes/{sbx}/ports").json["ports"] == []


def test_conflicts_and_unknowns(d, sbx):
    forward_port(d, sbx, 8000)
    r = d.post(f"/v1/sandboxes/{sbx}/ports", {"port": 8000})
    assert r.status == 409 and "8000" in r.error["message"], r
    r = d.delete(f"/v1/sandboxes/{sbx}/ports/8001")
    assert r.status == 404 and "8001" in r.error["message"], r
    for bad in ("0", "65536", "abc", "80a"):
        r = d.delete(f"/v1/sandboxes/{sbx}/ports/{bad}")
        assert r.status == 400 and "port" in r.error["message"], r
    r = d.post("/v1/sandboxes/" + "0" * 32 + "/ports", {"port": 8000})
    assert r.status == 404, r
    assert len(d.get(f"/v1/sandboxes/{sbx}/ports").json["ports"]) == 1


@pytest.mark.parametrize("backend", ["linux-native", "host-direct"])
def test_process_backends_answer_501_and_say_why(d, backend):
    sid = d.create(backend=backend)
    try:
        r = d.post(f"/v1/sandboxes/{sid}/ports", {"port": 8000})
        assert r.status == 501 and "network namespace" in r.error["message"], r
        assert d.get(f"/v1/sandboxes/{sid}/ports").json["ports"] == []
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
    b = d.get(f"/v1/backends/{backend}").json
    assert any("no port forwarding" in w for w in b["warnings"]), b
    assert "port-forwarding" in d.get("/v1/backends/container").json["platform_features"]


def test_each_open_and_close_is_an_audit_record(d, sbx):
    fwd = forward_port(d, sbx, 7000)
    d.delete(f"/v1/sandboxes/{sbx}/ports/7000")
    recs = [r for r in d.get("/v1/audit").json["records"]
            if r["sandbox_id"] == sbx and r["action"].startswith("port_")]
    assert [(r["action"], r["argv"], r["result"]) for r in recs] == [
        ("port_open", ["7000", fwd["address"]], "ok"),
        ("port_close", ["7000", fwd["address"]], "ok")], recs


def test_cli_port_ports_and_close(d, sbx):
    exec_in_background(d, sbx, ["python3", "-c", ECHO, "9000"])
    r = d.cli("sandbox", "port", sbx, "9000")
    assert r.returncode == 0, r
    host, port = r.stdout.decode().strip().split(":")
    assert host == "127.0.0.1"
    echo_connection((host, int(port))).close()
    r = d.cli("sandbox", "ports", sbx)
    assert r.returncode == 0 and f"127.0.0.1:{port}" in r.stdout.decode(), r
    r = d.cli("sandbox", "ports", "--json", sbx)
    assert r.returncode == 0 and '"port": 9000' in r.stdout.decode(), r
    r = d.cli("sandbox", "port", "--unix", sbx, "9001")
    assert r.returncode == 0 and r.stdout.decode().strip().endswith(f"{sbx}-9001.sock"), r
    assert d.cli("sandbox", "port", "--close", sbx, "9000").returncode == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    r = d.cli("sandbox", "port", sbx, "70000")
    assert r.returncode == 125 and b"PORT 1 to 65535" in r.stderr, r
    r = d.cli("sandbox", "port", "--close", sbx, "9000")
    assert r.returncode == 125 and b"not forwarded" in r.stderr and b"HTTP 404" in r.stderr, r


def test_an_unprivileged_daemon_forwards_ports_too(userdir, delegated):
    """The way in is made by the sandbox's init (an unprivileged agentd may not setns into a
    network namespace): a daemon run as uid 65534 in a delegated cgroup forwards as well."""
    procs = " ".join(os.path.join(d, "cgroup.procs") for d in delegated.values())
    prefix = ["/bin/sh", "-c", f'for p in {procs}; do echo $$ > $p; done; exec "$@"', "sh",
              "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
              "env", f"XDG_RUNTIME_DIR={userdir}/run", f"HOME={userdir}"]
    dm = Daemon(prefix=prefix)
    os.chown(dm.dir, NOBODY, NOBODY)
    try:
        dm.start()
        with open(f"/proc/{dm.proc.pid}/status") as f:
            uids = next(l.split()[1:] for l in f if l.startswith("Uid:"))
        assert uids == [str(NOBODY)] * 4, uids
        sid = dm.create()
        exec_in_background(dm, sid, ["python3", "-c", ECHO, "9000"])
        fwd = forward_port(dm, sid, 9000)
        with echo_connection(("127.0.0.1", fwd["host_port"])) as s:
            s.sendall(b"unprivileged")
            assert s.recv(64) == b"unprivileged"
        assert dm.delete(f"/v1/sandboxes/{sid}").status == 200
    finally:
        dm.cleanup()


def test_a_crashed_daemon_leaves_no_forward_behind():
    """SIGKILL: the kernel closes its listeners; the unix sockets' files go at the next
    start, as the rest of what the previous run left."""
    dm = Daemon()
    try:
        dm.start()
        sid = dm.create()
        tcp = forward_port(dm, sid, 8000)
        unix = forward_port(dm, sid, 8001, unix=True)
        dm.proc.kill()
        dm.proc.wait()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", tcp["host_port"]), timeout=5)
        assert os.path.exists(unix["path"])     # nobody is left to remove it
        dm.start()
        assert not os.path.exists(unix["path"])
        assert os.stat(os.path.dirname(unix["path"])).st_mode & 0o777 == 0o711
    finally:
        dm.cleanup()


def test_a_sandbox_whose_init_died_refuses_on_its_ports(d):
    """Failure, not destroy: everything in the sandbox (its init too) is killed from outside;
    its forwards stop listening at the next connection and say so, a new one is a 409."""
    sid = d.create()
    exec_in_background(d, sid, ["python3", "-c", ECHO, "9000"])
    fwd = forward_port(d, sid, 9000)
    echo_connection(("127.0.0.1", fwd["host_port"])).close()
    kill_sandbox_from_outside(sid)

    def refused():
        try:
            with socket.create_connection(("127.0.0.1", fwd["host_port"]), timeout=5) as s:
                s.sendall(b"x")
                s.recv(1)
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        return False
    assert wait_until(refused, timeout=20)
    port = d.get(f"/v1/sandboxes/{sid}/ports").json["ports"][0]
    assert port["state"] == "closed", port
    r = d.post(f"/v1/sandboxes/{sid}/ports", {"port": 9001})
    assert r.status == 409 and "nothing runs in it" in r.error["message"], r
    assert d.delete(f"/v1/sandboxes/{sid}").status in (200, 500)
