"""Helpers for driving agentd as an OCI runtime (build/agentd-runc) directly, as an engine
would: a busybox bundle with a runc-style config.json, the runtime run with its own --root,
a console-socket receiver, and the checks that a deleted container left nothing behind.
OCIRT_RUNTIME=/usr/sbin/runc runs the same tests against runc (the reference)."""
import array
import copy
import ctypes
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from conftest import BUILD

RUNTIME = os.environ.get("OCIRT_RUNTIME") or os.path.join(BUILD, "agentd-runc")
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "cat", "echo", "sleep", "ls", "mount", "ps", "id", "tty", "true", "false",
           "grep", "touch", "readlink", "stat", "kill", "wc", "test", "[",
           "wget", "nc", "ping", "ip"]  # issue 16: rt-egress

CONFIG = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID",
                             "CAP_SETGID", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
                         for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": False},
    "hostname": "ocirt",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}],
                      "pids": {"limit": 256}},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}


def make_bundle(base, args, terminal=False, config_edit=None):
    """A bundle under base: rootfs with the static busybox and its applet links."""
    bundle = os.path.join(base, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc", "mnt", "root"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
    for a in APPLETS:
        link = os.path.join(rootfs, "bin", a)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    cfg = copy.deepcopy(CONFIG)
    cfg["process"]["args"] = list(args)
    cfg["process"]["terminal"] = terminal
    if config_edit:
        config_edit(cfg)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle


class Runtime:
    """The runtime binary with a private --root (and --log in json)."""

    def __init__(self, base):
        self.root = os.path.join(base, "state")
        self.log = os.path.join(base, "runtime.log")

    def argv(self, *args, json_log=True):
        g = ["--root", self.root, "--log", self.log]
        if json_log:
            g += ["--log-format", "json"]
        return [RUNTIME, *g, *args]

    def __call__(self, *args, timeout=60, input=None, stdin=None, stdout=None, stderr=None,
                 pass_fds=()):
        kw = {"timeout": timeout, "pass_fds": pass_fds}
        if stdin is not None or stdout is not None or stderr is not None:
            kw.update(stdin=stdin, stdout=stdout, stderr=stderr)
            p = subprocess.run(self.argv(*args), **kw)
        else:
            p = subprocess.run(self.argv(*args), capture_output=True, input=input, **kw)
        return p

    def ok(self, *args, **kw):
        p = self(*args, **kw)
        assert p.returncode == 0, (args, p)
        return p

    def state(self, cid):
        p = self.ok("state", cid)
        return json.loads(p.stdout)


def become_subreaper():
    """Engines (conmon, the shim) are subreapers: the runtime's processes end up theirs."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap(pid, timeout=20):
    """Wait for pid (our child) to exit; its wait status, or None when it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            return status
        time.sleep(0.02)
    return None


def read_pid_file(path):
    with open(path) as f:
        return int(f.read().strip())


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class ConsoleReceiver:
    """The engine's side of --console-socket: a unix socket receiving one fd (the pty
    master) by SCM_RIGHTS."""

    def __init__(self, base):
        self.path = os.path.join(base, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(30)

    def receive(self):
        conn, _ = self.sock.accept()
        conn.settimeout(30)
        fds = array.array("i")
        msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
        conn.close()
        assert len(fds) == 1, (msg, anc)
        return fds[0], msg

    def close(self):
        self.sock.close()


def cgroup_dirs(rel):
    """Every hierarchy's dir for the cgroup path rel that exists."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] in ("cgroup", "cgroup2"):
                d = left.split()[4] + rel
                if os.path.isdir(d):
                    out.append(d)
    return out


def new_base():
    base = tempfile.mkdtemp(prefix="ocirt-")
    os.chmod(base, 0o755)	# the container's root is an unprivileged host uid (its userns)
    return base
