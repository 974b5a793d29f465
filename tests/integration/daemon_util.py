"""A real `agentd serve` on a temporary socket and state dir, and a small client for it
(http.client over the unix socket, keep-alive), shared by the test_daemon*.py files."""
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.parse
import time

from conftest import AGENTD

CGROUP_DIRS = sorted(glob.glob("/sys/fs/cgroup/*/agentd")) + (
    ["/sys/fs/cgroup/agentd"] if os.path.isdir("/sys/fs/cgroup/agentd") else [])


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("agentd", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Resp:
    def __init__(self, status, body, headers):
        self.status = status
        self.body = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body[:1] in (b"{", b"[") else None
        except ValueError:
            self.json = None

    @property
    def error(self):
        return (self.json or {}).get("error", {})

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:400]!r}"


class Daemon:
    def __init__(self, *extra, state_dir=None, prefix=(), durable=False):
        self.prefix = list(prefix)  # a command the daemon runs under (nsenter, unshare...)
        self.dir = tempfile.mkdtemp(prefix="agentd-daemon-", dir="/var/tmp")
        os.chmod(self.dir, 0o711)
        self.socket = os.path.join(self.dir, "agentd.sock")
        self.state_dir = state_dir or os.path.join(self.dir, "state")
        # Sandboxes outlive a daemon by default (docs/api.md#restarts); a test's daemon
        # destroys them at exit unless the test is about that (durable=True).
        self.durable = durable
        self.extra = list(extra) + ([] if durable else ["--destroy-on-exit"])
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc = None
        self.conn = None

    def start(self):
        if self.conn:
            self.conn.close()
            self.conn = None
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, AGENTD, "serve", "--socket", self.socket, "--state-dir", self.state_dir,
             "--drain", "1s", *self.extra],
            stdout=self.log, stderr=self.log, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("agentd serve exited: " + self.read_log())
            if os.path.exists(self.socket):
                try:
                    if self.request("GET", "/v1/health", new_conn=True).status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("agentd serve did not come up: " + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=None, raw=None, headers=None, new_conn=False):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        for attempt in range(2):
            conn = UnixHTTPConnection(self.socket) if new_conn else self.conn
            if conn is None:
                conn = self.conn = UnixHTTPConnection(self.socket)
            try:
                conn.request(method, path, body=data, headers=headers or {})
                r = conn.getresponse()
                out = Resp(r.status, r.read(), dict(r.getheaders()))
                if new_conn:
                    conn.close()
                return out
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # the daemon closes a connection after an early error answer (413): retry once
                conn.close()
                if not new_conn:
                    self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def announce(self, method, path, length):
        """Send only the head of a request announcing a body of length bytes (as curl does
        with Expect: 100-continue) and return the daemon's answer head."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket)
            s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                      b"Expect: 100-continue\r\n\r\n" % (method.encode(), path.encode(), length))
            s.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = s.recv(65536)   # the daemon closes after an early answer
                if not chunk:
                    break
                data += chunk
            return data

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path):
        return self.request("DELETE", path)

    def create(self, backend="container", spec=None, **kw):
        body = {"backend": backend}
        if backend == "host-direct":
            # no filesystem, network or syscall wall: it runs only when told to run without
            body["allow_degraded"] = True
        if spec is not None:
            body["spec"] = spec
        body.update(kw)
        r = self.post("/v1/sandboxes", body)
        assert r.status == 201, r
        return r.json["id"]

    def exec(self, sid, argv, **kw):
        return self.post(f"/v1/sandboxes/{sid}/exec", {"argv": argv, **kw})

    def cli(self, *args, input=None, timeout=60):
        return subprocess.run([AGENTD, *args], input=input, capture_output=True, timeout=timeout,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                   "AGENTD_SOCKET": self.socket})

    def stop(self, sig=signal.SIGTERM):
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    # issue 12: durable-daemon
    def kill9(self):
        """SIGKILL the daemon (a crash): what it ran in-flight is lost, its sandboxes stay."""
        return self.stop(signal.SIGKILL)

    def destroy_all(self):
        """Every sandbox destroyed through a daemon (started again if it was stopped): a
        durable daemon's test leaves none running."""
        try:
            if not self.proc or self.proc.poll() is not None:
                self.start()
            for sb in self.get("/v1/sandboxes").json["sandboxes"]:
                self.delete(f"/v1/sandboxes/{sb['id']}")
        except (OSError, RuntimeError):
            pass

    def restart(self, sig=signal.SIGTERM):
        """Stop the daemon with sig and start a new one on the same state dir; the new one
        answers once it adopted every durable sandbox."""
        rc = self.stop(sig)
        self.start()
        return rc

    def cleanup(self):
        if self.durable:
            self.destroy_all()
        self.stop()
        log = self.read_log() if os.path.exists(self.log_path) else ""
        shutil.rmtree(self.dir, ignore_errors=True)
        # under the sanitizer build (make asan) a report fails the test that ran the daemon
        bad = [m for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
               if m in log]
        assert not bad, log[-4000:]


def agentd_cgroups():
    """Sandbox cgroups (32-hex dirs) under every agentd cgroup parent."""
    out = set()
    for d in CGROUP_DIRS:
        try:
            out |= {e for e in os.listdir(d) if len(e) == 32 and os.path.isdir(os.path.join(d, e))}
        except FileNotFoundError:
            pass
    return out


def pids_with(marker):
    """Processes whose command line contains marker (none of them zombies)."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if marker.encode() in cmd and state != "Z":
            found.append(int(p))
    return found


def kill_sandbox_from_outside(sid, rounds=3):
    """Every process of sandbox sid (its init too) SIGKILLed from the host, found through
    its cgroups' member lists: a sandbox that dies without its daemon."""
    procs = [p for h in ("pids", "unified", "memory")
             for p in glob.glob(f"/sys/fs/cgroup/{h}/agentd/{sid}/**/cgroup.procs",
                                recursive=True)]
    assert procs
    for _ in range(rounds):
        for path in procs:
            try:
                pids = open(path).read().split()
            except FileNotFoundError:   # a kill unit removed meanwhile
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)


def mountinfo():
    with open("/proc/self/mountinfo") as f:
        return {" ".join(l.split()[3:5]) for l in f}


def wait_until(pred, timeout=10, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def context_create(d, sid, language="python", **kw):
    """A code context of sandbox sid (docs/contexts.md); its id."""
    r = d.post(f"/v1/sandboxes/{sid}/contexts", dict(language=language, **kw))
    assert r.status == 201, r
    return r.json["id"]


def context_run(d, sid, cid, code, **kw):
    """A cell run in context cid; the run object."""
    r = d.post(f"/v1/sandboxes/{sid}/contexts/{cid}/run", dict(code=code, **kw))
    assert r.status == 200, r
    return r.json


def exec_in_background(d, sid, argv):
    """A foreground exec kept running by a thread on a connection of its own (it ends with
    the sandbox, or at the policy's wall-time limit): a server for the next calls."""
    t = threading.Thread(target=lambda: d.request(
        "POST", f"/v1/sandboxes/{sid}/exec", {"argv": argv}, new_conn=True), daemon=True)
    t.start()
    return t


def forward_port(d, sid, port, **kw):
    """POST .../ports, asserted; the port object."""
    r = d.post(f"/v1/sandboxes/{sid}/ports", {"port": port, **kw})
    assert r.status == 201, r
    return r.json


def echo_connection(addr, family=socket.AF_INET, timeout=30):
    """A connection through a forward once the echo server inside answers (until then the
    forward resets: nothing listens yet)."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(family)
        s.settimeout(10)
        try:
            s.connect(addr)
            s.sendall(b"ping")
            if s.recv(4) == b"ping":
                return s
        except OSError:
            pass
        s.close()
        assert time.monotonic() < deadline, "the server inside never answered"
        time.sleep(0.2)


class LoopbackTarget:
    """A "host" for the egress proxy to reach: a listener on a loopback address of the host
    (127.0.0.2...), each accepted connection kept in conns (echoed back by a thread of its
    own when echo)."""

    def __init__(self, addr, echo=False):
        self.sock = socket.socket()
        self.sock.bind((addr, 0))
        self.sock.listen(64)
        self.addr, self.port = addr, self.sock.getsockname()[1]
        self.echo = echo
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def entry(self):
        """The allowlist entry of exactly this target."""
        return f"{self.addr}:{self.port}"

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.echo:
                threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        while True:
            try:
                b = c.recv(65536)
                if not b:
                    return
                c.sendall(b)
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()
# issue 12: files
def files_url(sid, what, path, extra=""):
    """/v1/sandboxes/SID/files<what>?path=PATH<extra>, the path quoted."""
    return (f"/v1/sandboxes/{sid}/files{what}?path=" + urllib.parse.quote(path, safe="") +
            extra)


def put_tar(d, sid, path, data):
    """PUT a tar archive into the directory path of sandbox sid."""
    return d.request("PUT", files_url(sid, "/tar", path), raw=data,
                     headers={"Content-Type": "application/x-tar"})


def sh_stdout(d, sid, script):
    """stdout of /bin/sh -c script in sid, the exec asserted to have run."""
    r = d.exec(sid, ["/bin/sh", "-c", script])
    assert r.status == 200, r
    return r.json["stdout"]
# issue 12: snapshots
def container_daemon(*extra, **kw):
    """A started Daemon (extra: its options), or the test skipped (the daemon cleaned up)
    when the container backend is not available here."""
    import pytest
    dm = Daemon(*extra, **kw).start()
    if "container" not in {b["name"] for b in dm.get("/v1/backends").json["backends"]
                           if b.get("available")}:
        dm.cleanup()
        pytest.skip("the container backend is not available here")
    return dm


def sh_ok(d, sid, script):
    """A /bin/sh script run in sid that must exit 0: its stdout."""
    r = d.exec(sid, ["/bin/sh", "-c", script])
    assert r.status == 200 and r.json["exit_code"] == 0, r
    return r.json["stdout"]


def allocated(top):
    """Host disk under top: st_blocks * 512 of every entry, as du counts it."""
    total = os.lstat(top).st_blocks * 512
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            total += os.lstat(os.path.join(root, n)).st_blocks * 512
    return total
