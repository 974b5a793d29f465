"""A network narrowed live (PATCH /v1/sandboxes/{id}/network): a process that was started
while a host was allowed, and holds tunnels to it, reaches it by no route once the host is
taken off the list — not through the tunnels it keeps (closed by the proxy at once), not
through a new tunnel by name or by address (HTTP CONNECT, absolute-URI GET, SOCKS5), not
around the proxy, and the proxy no longer looks its name up (no DNS query leaves the host
for it or for a made-up name under it). The daemon runs with a resolver of this module (a
DNS server on 127.0.0.9 that records every query, bound over /etc/resolv.conf in a private
mount namespace); the hosts are echo servers on the host's loopback."""
import os
import secrets
import shutil
import socket
import struct
import sys
import tempfile
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from daemon_util import Daemon, LoopbackTarget, wait_until  # noqa: E402

DNS_ADDR = "127.0.0.9"
KEPT, REMOVED = "127.0.0.2", "127.0.0.3"

# The attacker, started while REMOVED is allowed: two tunnels to it (by name, by address),
# "ready", then — once /tmp/go exists, after the narrowing — every route it can think of.
ATTACKER = r"""
import os, socket, struct, sys, time
name, addr, port, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def proxy():
    return socket.create_connection(("127.0.0.1", 3128), timeout=10)
def connect(host):
    s = proxy()
    s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port, host, port)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        if not b:
            return s, "closed"
        head += b
    return s, head.split(b"\r\n")[0].decode()
def alive(s):
    try:
        s.sendall(b"ping\n")   # a line: the proxy judges a tunnel to a name by it
        s.settimeout(5)
        return "OPEN" if s.recv(5) == b"ping\n" else "closed"
    except OSError as e:
        return "closed " + type(e).__name__
def attempt(what, fn):
    try:
        print(what, fn(), flush=True)
    except OSError as e:
        print(what, "ERR", type(e).__name__, flush=True)
t_name, line1 = connect(name)
t_addr, line2 = connect(addr)
print("ready", line1, "|", line2, alive(t_name), alive(t_addr), flush=True)
while not os.path.exists("/tmp/go"):
    time.sleep(0.05)
time.sleep(0.5)
attempt("kept-by-name", lambda: alive(t_name))
attempt("kept-by-addr", lambda: alive(t_addr))
attempt("new-by-name", lambda: connect(name)[1])
attempt("new-by-addr", lambda: connect(addr)[1])
attempt("new-exfil-name", lambda: connect("exfil-%s.%s" % (token, name))[1])
def get():
    s = proxy()
    s.sendall(("GET http://%s:%d/ HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (name, port, name, port)).encode())
    return s.recv(4096).split(b"\r\n")[0].decode() or "closed"
attempt("get-by-name", get)
def socks():
    s = proxy()
    s.sendall(b"\x05\x01\x00")
    if s.recv(2) != b"\x05\x00":
        return "refused greeting"
    n = name.encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(n)]) + n + struct.pack(">H", port))
    r = s.recv(10)
    return "granted" if r[:2] == b"\x05\x00" else "refused %d" % (r[1] if len(r) > 1 else -1)
attempt("socks-by-name", socks)
def direct():
    socket.create_connection((addr, port), timeout=5)
    return "CONNECTED"
attempt("direct", direct)
print("done", flush=True)
"""


class Dns:
    """Answers NAME (and anything under it) with REMOVED, everything else NXDOMAIN; every
    query name is kept in order."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((DNS_ADDR, 53))
        self.queries = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                q, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            i, labels = 12, []
            while i < len(q) and q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
                i += 1 + q[i]
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            qname = ".".join(labels).lower()
            self.queries.append(qname)
            question = q[12:i + 5]
            if qname.endswith(self.name) and qtype == 1:
                ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(REMOVED)
                self.sock.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" +
                                 question + ans, peer)
            elif qname.endswith(self.name):
                self.sock.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" +
                                 question, peer)
            else:
                self.sock.sendto(q[:2] + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" +
                                 question, peer)

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def env():
    name = "removed-%s.test" % secrets.token_hex(3)
    d = tempfile.mkdtemp(prefix="agentd-narrow-", dir="/var/tmp")
    os.chmod(d, 0o755)
    with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write("nameserver %s\noptions timeout:3 attempts:1\n" % DNS_ADDR)
    with open(os.path.join(d, "hosts"), "w") as f:
        f.write("127.0.0.1\tlocalhost\n")
    dns = Dns(name)
    # the daemon's own view of /etc: the host's files are never touched
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount --bind "$0/resolv.conf" /etc/resolv.conf && '
              'mount --bind "$0/hosts" /etc/hosts && exec "$@"', d]
    daemon = Daemon(prefix=prefix).start()
    try:
        yield {"daemon": daemon, "dns": dns, "name": name}
    finally:
        daemon.cleanup()
        dns.close()
        shutil.rmtree(d, ignore_errors=True)


def process_output(d, sid, pid):
    import json
    r = d.get(f"/v1/sandboxes/{sid}/processes/{pid}/output")
    return "".join(json.loads(l).get("data", "") for l in r.body.decode().splitlines() if l)


def results(text):
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        out[k] = v
    return out


def test_an_earlier_process_reaches_the_removed_host_by_no_route(env):
    d, dns, name = env["daemon"], env["dns"], env["name"]
    kept, removed = LoopbackTarget(KEPT, echo=True), LoopbackTarget(REMOVED, echo=True)
    token = secrets.token_hex(4)
    allow = [kept.entry, f"{name}:{removed.port}", removed.entry]
    sid = d.create(spec={"network": {"mode": "allowlist", "allow": allow}})
    try:
        r = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": [
            "python3", "-c", ATTACKER, name, REMOVED, str(removed.port), token]})
        assert r.status == 201, r
        pid = r.json["pid"]
        ready = wait_until(lambda: "ready" in process_output(d, sid, pid), timeout=60)
        out = process_output(d, sid, pid)
        assert ready, out
        # before: both tunnels work, the name was looked up
        assert results(out)["ready"] == ("HTTP/1.1 200 Connection established | "
                                         "HTTP/1.1 200 Connection established OPEN OPEN"), out
        assert name in dns.queries, dns.queries
        r = d.request("PATCH", f"/v1/sandboxes/{sid}/network",
                      {"mode": "allowlist", "allow": [kept.entry]})
        assert r.status == 200, r
        looked_up = len(dns.queries)
        accepted = len(removed.conns)
        assert d.exec(sid, ["/bin/touch", "/tmp/go"]).json["exit_code"] == 0
        assert wait_until(lambda: "done" in process_output(d, sid, pid), timeout=90), \
            process_output(d, sid, pid)
        got = results(process_output(d, sid, pid))
        for k in ("kept-by-name", "kept-by-addr"):
            assert got[k].startswith("closed"), got
        for k in ("new-by-name", "new-by-addr", "new-exfil-name", "get-by-name"):
            assert got[k].startswith("HTTP/1.1 403"), got
        assert got["socks-by-name"].startswith("refused"), got
        assert got["direct"].startswith("ERR"), got
        # no new connection reached the removed host, no name left the host
        assert len(removed.conns) == accepted, got
        assert dns.queries[looked_up:] == [], dns.queries
        denied = [x for x in d.get("/v1/audit").json["records"]
                  if x["sandbox_id"] == sid and x["result"] == "denied"]
        assert any(x["argv"]["host"] == name and x["argv"]["reason"] == "not in the allowlist"
                   for x in denied), denied
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
        kept.close()
        removed.close()
