"""Network modes on the container backend: `none` is a namespace with loopback only;
`allowlist` leaves only the egress proxy, which allows exactly what the policy lists and
logs each decision; `host` needs the permissive profile. "Outside" hosts are real servers
on the host's loopback and in a network namespace this module creates (veth, TEST-NET-3
addresses), so nothing here needs a network beyond the machine."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import AGENTD, agentd

NS = "agentd-t%d" % (os.getpid() % 100000)
VETH_HOST, VETH_NS = "agt%da" % (os.getpid() % 100000), "agt%db" % (os.getpid() % 100000)
HOST_ADDR, OUTSIDE = "203.0.113.1", "203.0.113.2"
PY = "/usr/bin/python3"


# ----------------------------------------------------------------- servers

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/big"):
            size = int(self.path.split("=", 1)[1]) if "=" in self.path else 64 << 20
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while size > 0:
                    n = min(size, len(chunk))
                    self.wfile.write(chunk[:n])
                    size -= n
            except OSError:
                pass
            return
        body = ("loopback %d %s\n" % (self.server.server_port, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


@pytest.fixture(scope="module")
def loopback():
    """Two HTTP servers on the host's loopback: one to allow, one never listed."""
    servers = [Server(("127.0.0.1", 0), Handler) for _ in range(2)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield [s.server_port for s in servers]
    for s in servers:
        s.shutdown()
        s.server_close()


OUTSIDE_SERVER = r'''
import http.server, ssl, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("outside %d %s\n" % (self.server.server_port, self.path)).encode()
        if self.path == "/host":
            body = ("host %s\n" % self.headers.get("Host")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
servers = [http.server.ThreadingHTTPServer(("0.0.0.0", p), H) for p in (8080, 8081, 8443)]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
servers[2].socket = ctx.wrap_socket(servers[2].socket, server_side=True)
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
'''


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def outside():
    """An "internet" host: a network namespace behind a veth pair, at 203.0.113.2, serving
    HTTP on 8080 and 8081 and HTTPS (certificate for outside.test) on 8443; a hosts file
    naming it, plus names that lead to loopback and private addresses."""
    d = tempfile.mkdtemp(prefix="agentd-net-", dir="/var/tmp")
    os.chmod(d, 0o755)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
       cert, "-days", "1", "-subj", "/CN=outside.test", "-addext",
       "subjectAltName=DNS:outside.test")
    os.chmod(cert, 0o644)
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1\tlocalhost\n%s\toutside.test\n10.200.0.1\tinternal.test\n"
                "169.254.169.254\tmetadata.test\n" % OUTSIDE)
    os.chmod(hosts, 0o644)
    server = os.path.join(d, "server.py")
    with open(server, "w") as f:
        f.write(OUTSIDE_SERVER)
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    sh("ip", "netns", "add", NS)
    proc = None
    try:
        sh("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS, "netns", NS)
        sh("ip", "addr", "add", HOST_ADDR + "/24", "dev", VETH_HOST)
        sh("ip", "link", "set", VETH_HOST, "up")
        sh("ip", "-n", NS, "addr", "add", OUTSIDE + "/24", "dev", VETH_NS)
        sh("ip", "-n", NS, "link", "set", VETH_NS, "up")
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        proc = subprocess.Popen(["ip", "netns", "exec", NS, PY, server, cert, key],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        yield {"dir": d, "cert": cert, "hosts": hosts}
    finally:
        if proc:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "link", "del", VETH_HOST], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------- running

def with_hosts(hosts, args):
    """agentd with its own view of /etc/hosts (a private mount namespace; the host's file
    is never touched): the proxy resolves names with the system resolver."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', hosts, *args]


def sandbox_py(script, allow=None, hosts=None, ro=(), timeout=120, net=None):
    args = [AGENTD, "run", "--json"]
    for p in ro:
        args += ["--ro", p]
    args += ["--net", net or ("allow:" + ",".join(allow))]
    args += ["--", PY, "-c", textwrap.dedent(script)]
    if hosts:
        args = with_hosts(hosts, args)
    p = subprocess.run(args, capture_output=True, timeout=timeout,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert p.stdout.startswith(b"{"), (p.stdout, p.stderr)
    out = json.loads(p.stdout)
    return out, p.stderr.decode(errors="replace")


def lines(out):
    return dict(l.split(" ", 1) for l in out["stdout"].splitlines() if " " in l)


# The client side of most checks, run inside the sandbox: one line per attempt.
CLIENT = r'''
import os, socket, ssl, sys, urllib.request, urllib.error
def report(name, f):
    try:
        print(name, "OK", f(), flush=True)
    except urllib.error.HTTPError as e:
        print(name, "HTTP", e.code, e.read().decode().strip(), flush=True)
    except Exception as e:
        print(name, "ERR", type(e).__name__, e, flush=True)
def get(url, **kw):
    return urllib.request.urlopen(url, timeout=20, **kw).read().decode().strip()
def connect(host, port):
    """A raw CONNECT through the proxy; returns the status line."""
    s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (host.encode(), port))
    r = s.recv(4096).decode().split("\r\n")[0]
    s.close()
    return r
def direct(host, port):
    s = socket.create_connection((host, port), timeout=5)
    s.close()
    return "connected"
def read_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
'''


# ----------------------------------------------------------------- tests

def test_acceptance_allowed_loopback_port_through_proxy(loopback):
    allowed, other = loopback
    out, log = sandbox_py(
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:%d/')"
        ".status)" % allowed, allow=["127.0.0.1:%d" % allowed])
    assert out["backend"] == "container", out
    assert out["exit_code"] == 0, (out, log)
    assert out["stdout"].strip() == "200"
    assert "allowed GET 127.0.0.1:%d" % allowed in log
    assert "closed GET 127.0.0.1:%d" % allowed in log

    out, log = sandbox_py(CLIENT + textwrap.dedent("""
        report("other", lambda: get("http://127.0.0.1:%d/"))
        report("direct", lambda: direct("127.0.0.1", %d))
        report("env", lambda: (os.environ["HTTP_PROXY"], os.environ["https_proxy"],
                               os.environ["ALL_PROXY"], os.environ["NO_PROXY"]))
    """ % (other, allowed)), allow=["127.0.0.1:%d" % allowed])
    r = lines(out)
    assert r["other"].startswith("HTTP 403"), out
    assert "denied: loopback address not in the allowlist" in r["other"]
    assert "DENIED GET 127.0.0.1:%d" % other in log
    # bypassing the proxy: the sandbox's loopback is its own; nothing listens there
    assert r["direct"].startswith("ERR ConnectionRefusedError"), r
    assert r["env"] == "OK ('http://127.0.0.1:3128', 'http://127.0.0.1:3128', " \
                       "'http://127.0.0.1:3128', '')", r


def test_outside_host_by_name_over_http_and_tls(outside):
    out, log = sandbox_py(CLIENT + textwrap.dedent("""
        ctx = ssl.create_default_context(cafile=%r)
        report("http", lambda: get("http://outside.test:8080/x"))
        report("https", lambda: get("https://outside.test:8443/y", context=ctx))
        report("port", lambda: get("http://outside.test:8081/"))
        report("unlisted", lambda: get("http://unlisted.test:8080/"))
        report("direct", lambda: direct(%r, 8080))
        report("dns", lambda: socket.getaddrinfo("outside.test", 80))
    """ % (outside["cert"], OUTSIDE)), allow=["outside.test:8080", "outside.test:8443"],
        hosts=outside["hosts"], ro=[outside["dir"]])
    r = lines(out)
    assert r["http"] == "OK outside 8080 /x", (r, log)
    assert r["https"] == "OK outside 8443 /y", (r, log)
    assert r["port"].startswith("HTTP 403") and "not in the allowlist" in r["port"], r
    # an unlisted name is refused without being looked up
    assert r["unlisted"].startswith("HTTP 403"), r
    assert r["direct"].startswith("ERR") and "unreachable" in r["direct"], r
    # no resolver inside: names go to the proxy, raw DNS goes nowhere
    assert r["dns"].startswith("ERR gaierror"), r
    assert "allowed CONNECT outside.test:8443 (%s)" % OUTSIDE in log
    assert "DENIED GET outside.test:8081: not in the allowlist" in log
    assert "closed CONNECT outside.test:8443" in log


def test_address_entries_and_internal_ranges(outside, loopback):
    allowed, _ = loopback
    out, log = sandbox_py(CLIENT + textwrap.dedent("""
        report("cidr", lambda: get("http://%s:8081/"))
        report("cidr_port", lambda: get("http://%s:8080/"))
        report("rebind", lambda: get("http://localhost:%d/"))
        report("private_name", lambda: connect("internal.test", 80))
        report("metadata_name", lambda: connect("metadata.test", 80))
        report("metadata", lambda: connect("169.254.169.254", 80))
        report("private", lambda: connect("10.0.0.1", 80))
        report("mapped", lambda: connect("[::ffff:127.0.0.1]", %d))
        report("zero", lambda: connect("0.0.0.0", %d))
    """ % (OUTSIDE, OUTSIDE, allowed, allowed, allowed)),
        allow=["%s:8081" % OUTSIDE, "localhost:%d" % allowed, "internal.test:80",
               "metadata.test:80"], hosts=outside["hosts"])
    r = lines(out)
    assert r["cidr"] == "OK outside 8081 /", (r, log)
    assert r["cidr_port"].startswith("HTTP 403"), r
    # DNS rebinding: a listed name that resolves to loopback is not loopback access
    assert r["rebind"].startswith("HTTP 403") and "resolves to loopback" in r["rebind"], r
    assert r["private_name"] == "OK HTTP/1.1 403 Forbidden", r
    assert r["metadata_name"] == "OK HTTP/1.1 403 Forbidden", r
    assert r["metadata"] == "OK HTTP/1.1 403 Forbidden", r
    assert r["private"] == "OK HTTP/1.1 403 Forbidden", r
    assert r["mapped"] == "OK HTTP/1.1 403 Forbidden", r
    assert r["zero"] == "OK HTTP/1.1 403 Forbidden", r
    assert "resolves to private address 10.200.0.1" in log
    assert "resolves to cloud metadata address 169.254.169.254" in log
    assert "DENIED CONNECT 169.254.169.254:80 (169.254.169.254): cloud metadata address" in log
    assert "DENIED CONNECT ::ffff:127.0.0.1" in log or \
           "DENIED CONNECT [::ffff:127.0.0.1]" in log, log


def test_socks5_clients_get_the_same_rules(outside):
    out, log = sandbox_py(CLIENT + textwrap.dedent("""
        import struct
        def socks(host, port):
            s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
            s.sendall(b"\\x05\\x01\\x00")
            assert s.recv(2) == b"\\x05\\x00"
            try:
                addr = b"\\x01" + socket.inet_aton(host)
            except OSError:
                addr = bytes([3, len(host)]) + host.encode()
            s.sendall(b"\\x05\\x01\\x00" + addr + struct.pack(">H", port))
            rep = s.recv(10)
            if rep[1] != 0:
                return "reply %d" % rep[1]
            s.sendall(b"GET /socks HTTP/1.0\\r\\n\\r\\n")
            return read_all(s).decode().splitlines()[-1]
        report("name", lambda: socks("outside.test", 8080))
        report("port", lambda: socks("outside.test", 8081))
        report("metadata", lambda: socks("169.254.169.254", 80))
    """), allow=["outside.test:8080"], hosts=outside["hosts"])
    r = lines(out)
    assert r["name"] == "OK outside 8080 /socks", (r, log)
    assert r["port"] == "OK reply 2", r  # "connection not allowed by ruleset"
    assert r["metadata"] == "OK reply 2", r
    assert "allowed SOCKS5 outside.test:8080 (%s)" % OUTSIDE in log
    assert "DENIED SOCKS5 169.254.169.254:80" in log


def test_tls_sni_must_match_the_connect_target(outside):
    out, log = sandbox_py(CLIENT + textwrap.dedent("""
        def fronted(sni):
            s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
            s.sendall(b"CONNECT outside.test:8443 HTTP/1.1\\r\\n\\r\\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            ctx = ssl.create_default_context(cafile=%r)
            ctx.check_hostname = False
            t = ctx.wrap_socket(s, server_hostname=sni)
            return t.version()
        report("fronted", lambda: fronted("evil.test"))
        report("nosni", lambda: fronted(None))
    """ % outside["cert"]), allow=["outside.test:8443"], hosts=outside["hosts"],
        ro=[outside["dir"]])
    r = lines(out)
    assert r["fronted"].startswith("ERR"), r
    assert r["nosni"].startswith("ERR"), r
    assert 'TLS SNI "evil.test" does not match the CONNECT target' in log, log
    assert "TLS ClientHello without SNI for a CONNECT to a name" in log, log


def test_client_hello_sent_with_the_connect_is_checked_too(outside):
    """Eager clients send the ClientHello right behind the CONNECT, before the 200."""
    out, log = sandbox_py(CLIENT + textwrap.dedent("""
        def eager(sni):
            ctx = ssl.create_default_context(cafile=%r)
            ctx.check_hostname = False
            inc, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(inc, outb, server_hostname=sni)
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
            s.sendall(b"CONNECT outside.test:8443 HTTP/1.1\\r\\n\\r\\n" + outb.read())
            head = b""
            while b"\\r\\n\\r\\n" not in head:
                chunk = s.recv(1)
                if not chunk:
                    raise ConnectionError("closed before the CONNECT answer")
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    s.sendall(outb.read())
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("closed during the handshake")
                    inc.write(data)
            s.sendall(outb.read())
            tls.write(b"GET /eager HTTP/1.1\\r\\nHost: outside.test\\r\\n\\r\\n")
            s.sendall(outb.read())
            got = b""
            while b"/eager" not in got:
                try:
                    got += tls.read(4096)
                except ssl.SSLWantReadError:
                    data = s.recv(65536)
                    if not data:
                        break
                    inc.write(data)
            return got.decode().splitlines()[-1]
        report("match", lambda: eager("outside.test"))
        report("mismatch", lambda: eager("evil.test"))
    """ % outside["cert"]), allow=["outside.test:8443"], hosts=outside["hosts"],
        ro=[outside["dir"]])
    r = lines(out)
    assert r.get("match") == "OK outside 8443 /eager", (out["stdout"], out["stderr"], log)
    assert r["mismatch"].startswith("ERR"), r
    assert 'TLS SNI "evil.test" does not match the CONNECT target' in log, log


def test_plain_http_through_a_tunnel_reaches_only_the_judged_name(outside):
    """After CONNECT (or SOCKS5) to a listed name, an HTTP request inside the tunnel reaches
    the origin with Host set to that name: behind a shared frontend another Host would reach
    another tenant. Protocols that are neither TLS nor HTTP go through as they are."""
    out, log = sandbox_py(CLIENT + textwrap.dedent("""
        import struct, time
        def tunnel(data, socks=False, eager=False, trickle=False):
            s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if eager:  # the request in the same send as the CONNECT
                s.sendall(b"CONNECT outside.test:8080 HTTP/1.1\\r\\n\\r\\n" + data)
                data = b""
            elif socks:
                s.sendall(b"\\x05\\x01\\x00")
                assert s.recv(2) == b"\\x05\\x00"
                name = b"outside.test"
                s.sendall(b"\\x05\\x01\\x00\\x03" + bytes([len(name)]) + name +
                          struct.pack(">H", 8080))
                assert s.recv(10)[1] == 0
            else:
                s.sendall(b"CONNECT outside.test:8080 HTTP/1.1\\r\\n\\r\\n")
                assert s.recv(4096).startswith(b"HTTP/1.1 200")
            for i in range(len(data)) if trickle else ():
                s.send(data[i:i + 1])
                time.sleep(0.002)
            s.sendall(b"" if trickle else data)
            return [l.strip() for l in read_all(s).decode().splitlines()
                    if l.startswith(("host", "HTTP")) or "Error code" in l]
        fronted = b"GET /host HTTP/1.1\\r\\nHost: evil.example\\r\\n\\r\\n"
        report("fronted", lambda: tunnel(fronted))
        report("socks", lambda: tunnel(fronted, socks=True))
        report("eager", lambda: tunnel(fronted, eager=True))
        report("trickle", lambda: tunnel(fronted, trickle=True))
        report("pipelined", lambda: tunnel(b"GET /host HTTP/1.1\\r\\nHost: outside.test:8080"
                                           b"\\r\\n\\r\\n" + fronted))
        report("absolute", lambda: tunnel(b"GET http://evil.example/host HTTP/1.1\\r\\n\\r\\n"))
        report("lowercase", lambda: tunnel(b"GET /host http/1.1\\r\\nHost: evil.example\\r\\n\\r\\n"))
        report("other", lambda: tunnel(b"SSH-2.0-probe\\r\\n"))
    """), allow=["outside.test:8080"], hosts=outside["hosts"])
    r = lines(out)
    assert r["fronted"] == "OK ['HTTP/1.0 200 OK', 'host outside.test:8080']", (r, log)
    assert r["socks"] == "OK ['HTTP/1.0 200 OK', 'host outside.test:8080']", (r, log)
    assert r["eager"] == "OK ['HTTP/1.1 200 Connection established', 'HTTP/1.0 200 OK', " \
                         "'host outside.test:8080']", (r, log)
    assert r["trickle"] == "OK ['HTTP/1.0 200 OK', 'host outside.test:8080']", (r, log)
    # one request per tunnel: the origin reads no request after the first
    assert r["pipelined"] == "OK ['HTTP/1.0 200 OK', 'host outside.test:8080']", (r, log)
    assert r["absolute"] == "OK []", r  # refused, nothing reached the origin
    assert r["lowercase"] == "OK []", r
    assert "HTTP request in a tunnel to a name: only origin-form targets" in log, log
    # not HTTP: relayed, and the origin (an HTTP server) answers it with its own error
    assert r["other"].startswith("OK ['<p>Error code: 400</p>'"), r


def test_network_none_has_loopback_and_nothing_else(loopback):
    allowed, _ = loopback
    name = "agentd-net-%d" % os.getpid()
    host_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host_sock.bind("\0" + name)
    host_sock.listen(1)
    try:
        out, _ = sandbox_py(CLIENT + textwrap.dedent("""
            def udp_echo():
                a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                a.bind(("127.0.0.1", 0))
                b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                b.sendto(b"ping", a.getsockname())
                a.settimeout(5)
                return a.recv(10).decode()
            def abstract():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect("\\0%s")
                return "connected"
            report("lo", udp_echo)
            report("ifaces", lambda: sorted(l.split(":")[0].strip()
                                            for l in open("/proc/net/dev").readlines()[2:]))
            report("host_loopback", lambda: direct("127.0.0.1", %d))
            report("outside", lambda: direct("203.0.113.2", 8080))
            report("abstract", abstract)
            report("proxy", lambda: direct("127.0.0.1", 3128))
            report("env", lambda: os.environ.get("HTTP_PROXY"))
        """ % (name, allowed)), net="none")
    finally:
        host_sock.close()
    r = lines(out)
    assert r["lo"] == "OK ping", r
    assert r["ifaces"] == "OK ['lo']", r
    assert r["host_loopback"].startswith("ERR"), r
    assert r["outside"].startswith("ERR"), r
    assert r["abstract"].startswith("ERR"), r
    assert r["proxy"].startswith("ERR"), r
    assert r["env"] == "OK None", r


def test_sandboxes_cannot_reach_each_other():
    """Each sandbox's loopback is its own: a server in one is not there for another."""
    server = subprocess.Popen(
        [AGENTD, "run", "--net", "allow:127.0.0.1:1", "--", PY, "-c", textwrap.dedent("""
            import socket, select
            s = socket.socket()
            s.bind(("127.0.0.1", 4444))
            s.listen(8)
            print("READY", flush=True)
            r, _, _ = select.select([s], [], [], 3)
            print("CONNECTED" if r else "NOBODY", flush=True)
        """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout.readline().strip() == b"READY"
        out, _ = sandbox_py(CLIENT + 'report("peer", lambda: direct("127.0.0.1", 4444))\n',
                            allow=["127.0.0.1:1"])
        r = lines(out)
        assert r["peer"].startswith("ERR ConnectionRefusedError"), r
        assert server.stdout.readline().strip() == b"NOBODY"
        # let it destroy its sandbox itself: a kill would leave that to the janitor, later
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_network_mode_errors_name_the_problem():
    r = agentd("run", "--net", "allow:a.com:443,foo:99999", "--", "/bin/true")
    assert r.rc == 125
    assert b'network.allow[1]: invalid entry "foo:99999": invalid port (1..65535)' in r.stderr
    r = agentd("run", "--net", "host", "--", "/bin/true")
    assert r.rc == 125 and b'needs profile "permissive"' in r.stderr, r
    for backend in ("linux-native", "host-direct"):
        r = agentd("run", "--backend", backend, "--net", "allow:a.com:443", "--", "/bin/true")
        assert r.rc == 125, r
        assert (b'backend ' + backend.encode() + b' cannot enforce network "allowlist": ' +
                backend.encode() + b' has no network namespace') in r.stderr, r
    r = agentd("probe", "--backend", "linux-native")
    assert b'network mode "allowlist" unavailable' in r.stdout, r
    r = agentd("probe", "--backend", "container")
    assert b"egress-proxy" in r.stdout, r


# The proxy under abuse: malformed requests, a slowloris client, a client gone in the middle
# of a download, 200 connections at once — and afterwards not one fd more than before.
ABUSE = r'''
import os, socket, sys, threading, time
P = %d
def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.05)
print("BASE", flush=True)
wait_for(%r)
res = {}
def slowloris():
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(b"GET http://127.0.0.1:%%d/ HTTP/1.1\r\nX-Slow: " %% P)
    t0 = time.time()
    s.settimeout(30)
    data = s.recv(4096)
    res["slowloris"] = (data.split(b"\r\n")[0].decode(), round(time.time() - t0))
t = threading.Thread(target=slowloris)
t.start()
bad = 0
for junk in (b"\x00\xff garbage\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n", b"A" * 20000,
             b"CONNECT x:99999 HTTP/1.1\r\n\r\n", b"GET http://a.com/ HTTP/1.1\nX: y\n\n"):
    s = socket.create_connection(("127.0.0.1", 3128))
    try:
        s.sendall(junk)
        if s.recv(4096).startswith(b"HTTP/1.1 400"):
            bad += 1
    except ConnectionResetError:
        pass
    s.close()
res["malformed_400"] = bad
# gone mid-stream: read a little of a large download, then vanish
for _ in range(3):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(b"GET http://127.0.0.1:%%d/big HTTP/1.1\r\n\r\n" %% P)
    got = 0
    while got < (1 << 20):
        got += len(s.recv(65536))
    s.close()
# 200 at once
socks = [socket.create_connection(("127.0.0.1", 3128)) for _ in range(200)]
for i, s in enumerate(socks):
    s.sendall(b"GET http://127.0.0.1:%%d/n%%d HTTP/1.1\r\n\r\n" %% (P, i))
ok = 0
for i, s in enumerate(socks):
    data = b""
    s.settimeout(30)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    if data.startswith(b"HTTP/1.1 200 ") and (b"/n%%d\n" %% i) in data:
        ok += 1
    s.close()
res["concurrent_ok"] = ok
t.join()
print("RESULT", res, flush=True)
print("DONE", flush=True)
wait_for(%r)
'''


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_proxy_survives_abuse_and_leaks_no_fd(loopback):
    allowed, _ = loopback
    d = tempfile.mkdtemp(prefix="agentd-net-", dir="/var/tmp")
    os.chmod(d, 0o777)
    go1, go2 = os.path.join(d, "go1"), os.path.join(d, "go2")
    proc = subprocess.Popen(
        [AGENTD, "run", "--rw", d, "--timeout", "120s", "--net", "allow:127.0.0.1:%d" % allowed,
         "--", PY, "-c", ABUSE % (allowed, go1, go2)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"BASE"
        base = fd_count(proc.pid)
        open(go1, "w").close()
        result = None
        for line in proc.stdout:
            if line.startswith(b"RESULT"):
                result = line.decode()
            if line.strip() == b"DONE":
                break
        assert result, proc.stderr.read()
        res = eval(result.split(" ", 1)[1])
        assert res["malformed_400"] == 5, res
        assert res["concurrent_ok"] == 200, res
        status, took = res["slowloris"]
        assert status == "HTTP/1.1 408 Request Timeout", res
        assert 8 <= took <= 15, res
        # every connection is gone, and with it every fd it used
        deadline = time.time() + 10
        while fd_count(proc.pid) != base and time.time() < deadline:
            time.sleep(0.1)
        assert fd_count(proc.pid) == base
        open(go2, "w").close()
        proc.wait(timeout=30)
        assert proc.returncode == 0, proc.stderr.read()
        log = proc.stderr.read().decode()
        assert "request header not complete within 10000 ms" in log
        assert "closed GET 127.0.0.1:%d (127.0.0.1): " % allowed in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)
