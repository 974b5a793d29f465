"""Live network policy (PATCH /v1/sandboxes/{id}/network, `agentd sandbox network`) against a
real `agentd serve`: a container sandbox switched from allowlist to none loses its open
connections through the egress proxy at once and its new commands cannot connect; one
switched from none to allowlist lets new commands out through the proxy (commands started
before keep their stricter rule); a replaced allowlist drops the connections to a host no
longer listed and keeps the others working; "host" cannot be switched to or from; the
process backends answer 501 with the reason; every change is an audit record with the old
and the new policy. The "hosts" are echo servers of this module on the host's loopback
(127.0.0.2 and 127.0.0.3), nothing beyond the machine."""
import json
import socket
import time

import pytest

from daemon_util import Daemon, LoopbackTarget, wait_until

# Inside the sandbox: a tunnel through the proxy to HOST:PORT, its answer line printed, then
# every byte the target sends echoed back until the tunnel ends ("ended"). MODE "once": exit
# after the answer; "wait": first wait for the file /tmp/go.
HOLDER = r"""
import os, socket, sys, time
host, port, mode = sys.argv[1], sys.argv[2], sys.argv[3]
while mode == "wait" and not os.path.exists("/tmp/go"):
    time.sleep(0.05)
try:
    s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
except OSError as e:
    print("no-proxy", type(e).__name__, flush=True); sys.exit(3)
s.sendall(("CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n" % (host, port, host, port)).encode())
head = b""
while b"\r\n\r\n" not in head:
    b = s.recv(4096)
    if not b:
        print("closed-before-answer", flush=True); sys.exit(4)
    head += b
print(head.split(b"\r\n")[0].decode(), flush=True)
if mode == "once":
    sys.exit(0)
s.settimeout(None)
s.sendall(head.split(b"\r\n\r\n", 1)[1])   # what the target sent right after the answer
while True:
    try:
        b = s.recv(65536)
    except OSError as e:
        b = b""
    if not b:
        break
    s.sendall(b)
print("ended", flush=True)
"""


class EchoTarget(LoopbackTarget):
    """A target host whose accepted connections the test drives (the sandbox's holder
    echoes what it is sent)."""

    def round_trip(self, c, data=b"ping"):
        c.settimeout(20)
        got = b""
        try:
            c.sendall(data)
            while len(got) < len(data):
                b = c.recv(len(data) - len(got))
                if not b:
                    return False
                got += b
        except OSError:
            return False
        return got == data

    @staticmethod
    def closed(c):
        c.setblocking(False)
        try:
            return c.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            c.setblocking(True)


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


@pytest.fixture
def targets():
    ts = [EchoTarget("127.0.0.2"), EchoTarget("127.0.0.3")]
    yield ts
    for t in ts:
        t.close()


def allowlist(*targets):
    return {"network": {"mode": "allowlist", "allow": [t.entry for t in targets]}}


def holder(target, mode="hold"):
    return ["python3", "-c", HOLDER, target.addr, str(target.port), mode]


def hold(d, sid, target):
    """A holder process through the proxy to target; its pid once the target accepted."""
    before = len(target.conns)
    r = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": holder(target)})
    assert r.status == 201, r
    assert wait_until(lambda: len(target.conns) > before, timeout=30), output(d, sid, r.json["pid"])
    return r.json["pid"], target.conns[before]


def output(d, sid, pid):
    r = d.get(f"/v1/sandboxes/{sid}/processes/{pid}/output")
    return "".join(json.loads(l).get("data", "") for l in r.body.decode().splitlines() if l)


def patch(d, sid, body):
    return d.request("PATCH", f"/v1/sandboxes/{sid}/network", body)


def through_proxy(d, sid, target):
    """A new command's tunnel to target: its first output line."""
    r = d.exec(sid, holder(target, "once"))
    assert r.status == 200, r
    return (r.json["stdout"].splitlines() or [""])[0]


def landlock_abi(d):
    feats = d.get("/v1/backends/container").json["platform_features"]
    return max([int(f.rsplit("-", 1)[1]) for f in feats if f.startswith("landlock-abi-")] or [0])


def test_allowlist_to_none_cuts_an_open_connection(d, targets):
    a = targets[0]
    sid = d.create(spec=allowlist(a))
    try:
        pid, conn = hold(d, sid, a)
        assert a.round_trip(conn), output(d, sid, pid)
        r = patch(d, sid, {"mode": "none"})
        assert r.status == 200, r
        assert r.json["network"] == {"mode": "none", "allow": []}, r
        assert r.json["capabilities"]["has_network"] is False
        # the tunnel ends at once, on both sides
        assert wait_until(lambda: a.closed(conn), timeout=20), "the connection stayed open"
        assert wait_until(lambda: "ended" in output(d, sid, pid), timeout=20), output(d, sid, pid)
        # a new command has no way out: no proxy, no TCP connect at all
        line = through_proxy(d, sid, a)
        assert line.startswith("no-proxy"), line
        assert d.get(f"/v1/sandboxes/{sid}").json["network"]["mode"] == "none"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_none_to_allowlist_lets_a_new_command_through(d, targets):
    a = targets[0]
    sid = d.create()    # the default policy: network none
    try:
        assert through_proxy(d, sid, a).startswith("no-proxy")
        # started under none: its connect rule stays, whatever comes later
        early = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": holder(a, "wait")})
        assert early.status == 201, early
        r = patch(d, sid, {"mode": "allowlist", "allow": [a.entry]})
        assert r.status == 200, r
        assert r.json["network"] == {"mode": "allowlist", "allow": [a.entry]}, r
        line = through_proxy(d, sid, a)
        assert line == "HTTP/1.1 200 Connection established", line
        env = d.exec(sid, ["/bin/sh", "-c", "echo $HTTP_PROXY"]).json["stdout"]
        assert env == "http://127.0.0.1:3128\n", env
        pid = early.json["pid"]
        assert d.exec(sid, ["/bin/touch", "/tmp/go"]).json["exit_code"] == 0
        if landlock_abi(d) >= 4:    # the rule is Landlock's network one (docs/backends.md)
            assert wait_until(lambda: "no-proxy PermissionError" in output(d, sid, pid),
                              timeout=30), output(d, sid, pid)
        # and back: the listener is made again past the connections closed before
        assert patch(d, sid, {"mode": "none"}).status == 200
        assert patch(d, sid, {"mode": "allowlist", "allow": [a.entry]}).status == 200
        assert through_proxy(d, sid, a) == "HTTP/1.1 200 Connection established"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_created_with_an_allowlist_cut_then_widened_again(d, targets):
    """The listener of its create goes with the cut (nothing left listening on 3128
    inside), so the widening's new one binds: not a 409 "address in use"."""
    a = targets[0]
    sid = d.create(spec=allowlist(a))
    try:
        assert through_proxy(d, sid, a) == "HTTP/1.1 200 Connection established"
        assert patch(d, sid, {"mode": "none"}).status == 200
        r = patch(d, sid, {"mode": "allowlist", "allow": [a.entry]})
        assert r.status == 200, r
        assert through_proxy(d, sid, a) == "HTTP/1.1 200 Connection established"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_a_replaced_allowlist_drops_only_what_it_no_longer_lists(d, targets):
    a, b = targets
    sid = d.create(spec=allowlist(a, b))
    try:
        pa, ca = hold(d, sid, a)
        pb, cb = hold(d, sid, b)
        assert a.round_trip(ca) and b.round_trip(cb)
        r = patch(d, sid, {"mode": "allowlist", "allow": [a.entry]})
        assert r.status == 200 and r.json["network"]["allow"] == [a.entry], r
        assert wait_until(lambda: b.closed(cb), timeout=20), "the dropped host stayed connected"
        assert wait_until(lambda: "ended" in output(d, sid, pb), timeout=20)
        # the one still listed keeps working, on the same connection
        time.sleep(0.5)
        assert not a.closed(ca) and a.round_trip(ca, b"still-here"), output(d, sid, pa)
        assert "ended" not in output(d, sid, pa)
        # a new tunnel to the dropped host is refused by the proxy
        assert through_proxy(d, sid, b).startswith("HTTP/1.1 403"), through_proxy(d, sid, b)
        assert through_proxy(d, sid, a) == "HTTP/1.1 200 Connection established"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_host_mode_cannot_be_switched_to_or_from(d):
    sid = d.create()
    try:
        r = patch(d, sid, {"mode": "host"})
        assert r.status == 400 and 'switched to "host"' in r.error["message"], r
        r = patch(d, sid, {"mode": "none", "allow": ["example.com:443"]})
        assert r.status == 400 and "allow: only valid" in r.error["message"], r
        r = patch(d, sid, {"mode": "allowlist", "allow": ["not an entry"]})
        assert r.status == 400 and "allow[0]" in r.error["message"], r
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
    hid = d.create(spec={"profile": "permissive", "network": {"mode": "host"}})
    try:
        r = patch(d, hid, {"mode": "none"})
        assert r.status == 409 and '"host"' in r.error["message"], r
        assert d.get(f"/v1/sandboxes/{hid}").json["network"]["mode"] == "host"
    finally:
        d.delete(f"/v1/sandboxes/{hid}")


def test_process_backends_answer_501_with_the_reason(d):
    sid = d.create(backend="host-direct")
    try:
        r = patch(d, sid, {"mode": "none"})
        assert r.status == 501, r
        assert "live network switching is not supported by backend host-direct" in \
            r.error["message"], r
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_every_change_is_audited_with_old_and_new_policy(d, targets):
    a, b = targets
    sid = d.create(name="np-audit", spec=allowlist(a, b))
    try:
        # the CLI, by name
        p = d.cli("sandbox", "network", "np-audit", "--allow", a.entry)
        assert p.returncode == 0 and p.stdout.decode() == f"allowlist {a.entry}\n", p
        p = d.cli("sandbox", "network", "np-audit", "--none")
        assert p.returncode == 0 and p.stdout == b"none\n", p
        p = d.cli("sandbox", "network", "np-audit")
        assert p.returncode != 0 and b"--none or --allow" in p.stderr, p
        recs = [x for x in d.get("/v1/audit").json["records"]
                if x["action"] == "network" and x["sandbox_id"] == sid and x["client"] != "egress-proxy"]
        assert [x["argv"] for x in recs] == [
            {"old": {"mode": "allowlist", "allow": [a.entry, b.entry]},
             "new": {"mode": "allowlist", "allow": [a.entry]}},
            {"old": {"mode": "allowlist", "allow": [a.entry]},
             "new": {"mode": "none", "allow": []}},
        ], recs
        assert all(x["result"] == "ok" for x in recs), recs
    finally:
        d.delete(f"/v1/sandboxes/{sid}")

