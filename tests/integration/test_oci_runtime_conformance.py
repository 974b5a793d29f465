"""Lifecycle conformance of an OCI runtime binary driven directly on a bundle, modelled on the
OCI runtime-tools validation suite (validation/{create,start,state,kill,delete,pidfile,
exec}): each test runs with runc (the reference) and with build/agentd-runc.

The bundle is `runc spec`'s config (what `ctr oci spec` and the engines start from) with the
process replaced, a host directory bound at /out (the container reports through it) and the
cgroup below a parent of the test's own; the runtime's state is under a --root of its own.
Teardown deletes every container with --force and checks that nothing is left: no init or
exec'd process, no cgroup, no mount."""
import array
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid

import pytest

from oci_engines import (RUNC, RUNTIMES, alive, assert_no_trace, cgroups_of, make_rootfs, poll,
                         remove_cgroups, runtime_path, wait_gone)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="an OCI runtime runs as root here")
PY = "/usr/bin/python3"


class Bundle:
    """A bundle, the runtime's --root and the containers this test made with it."""

    def __init__(self, runtime, rootfs):
        self.runtime = runtime
        self.token = "agentd-rt-" + uuid.uuid4().hex[:10]
        self.dir = tempfile.mkdtemp(prefix=self.token + "-", dir="/var/tmp")
        self.root = os.path.join(self.dir, "state")
        self.bundle = os.path.join(self.dir, "bundle")
        self.out = os.path.join(self.dir, "out")
        self.cgparent = self.token
        os.makedirs(self.bundle)
        os.mkdir(self.out)
        os.chmod(self.out, 0o777)  # written by the container's root, whatever host id it maps to
        subprocess.run([RUNC, "spec", "--bundle", self.bundle], check=True)
        with open(os.path.join(self.bundle, "config.json")) as f:
            self.config = json.load(f)
        self.config["root"] = {"path": rootfs, "readonly": True}  # shared, read-only
        self.config["process"]["terminal"] = False
        self.config["mounts"].append({"destination": "/out", "type": "bind",
                                      "source": self.out, "options": ["rbind", "rw"]})
        self.ids = []
        self.pids = []

    def write_config(self, args, terminal=False, cid=None):
        c = json.loads(json.dumps(self.config))
        c["process"]["args"] = args
        c["process"]["terminal"] = terminal
        if terminal:
            c["process"]["consoleSize"] = {"height": 30, "width": 100}
        c["linux"]["cgroupsPath"] = f"/{self.cgparent}/{cid}"
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(c, f)
        return c

    def rt(self, *args, check=False, timeout=60, capture=True, **kw):
        """One runtime call with our --root. A call that leaves a process behind (create,
        exec --detach) must not get pipes for stdio (it would hold them open)."""
        argv = [self.runtime, "--root", self.root, *args]
        if capture:
            return subprocess.run(argv, capture_output=True, text=True, check=check,
                                  timeout=timeout, **kw)
        with open(os.path.join(self.dir, "rt.log"), "ab") as log:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  check=check, timeout=timeout, **kw)

    def create(self, cid, args, terminal=False, extra=()):
        self.write_config(args, terminal=terminal, cid=cid)
        pidfile = os.path.join(self.dir, cid + ".pid")
        self.ids.append(cid)
        r = self.rt("create", "--bundle", self.bundle, "--pid-file", pidfile, *extra, cid,
                    capture=False)
        assert r.returncode == 0, f"create failed: {self.log_tail()}"
        with open(pidfile) as f:
            pid = int(f.read().strip())
        self.pids.append(pid)
        return pid

    def state(self, cid):
        r = self.rt("state", cid)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def status(self, cid):
        # the container's processes that ended up ours are reaped, as an engine (conmon, the
        # shim: subreapers) reaps them: this process is a subreaper too once a test module
        # before this one made it one (test_oci_runtime_cli's become_subreaper), and a
        # zombie counts as running for runc
        for pid in self.pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        s = self.state(cid)
        return s and s["status"]

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "rt.log"), "rb") as f:
                return f.read().decode(errors="replace")[-1500:]
        except OSError:
            return ""

    def outfile(self, name):
        try:
            with open(os.path.join(self.out, name)) as f:
                return f.read()
        except OSError:
            return None

    def close(self):
        for cid in self.ids:
            self.rt("delete", "--force", cid)
        left = wait_gone(self.pids)
        for p in left:
            os.kill(p, 9)
        remove_cgroups(self.cgparent)
        shutil.rmtree(self.dir, ignore_errors=True)
        return left


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    root = make_rootfs(str(tmp_path_factory.mktemp("rt-conf") / "rootfs"))
    os.mkdir(os.path.join(root, "out"))  # the mount point of the bundle's /out bind
    return root


@pytest.fixture(params=RUNTIMES)
def b(request, rootfs):
    bd = Bundle(runtime_path(request.param), rootfs)
    yield bd
    left = bd.close()
    assert not left, f"processes outlived delete --force: {left}"
    assert not cgroups_of(bd.cgparent)
    assert_no_trace(bd.dir, bd.cgparent)


LONG = ["sh", "-c", "touch /out/started; exec sleep 1000"]


def test_state_transitions_pid_file_and_create_blocks(b):
    pid = b.create("c1", LONG)
    s = b.state("c1")
    assert s["status"] == "created", s
    assert s["id"] == "c1" and s["pid"] == pid, s
    assert s["ociVersion"] and os.path.realpath(s["bundle"]) == os.path.realpath(b.bundle), s
    assert alive(pid), "the pid file names no live process"
    # create-then-start: the user's process is not exec'd before start
    time.sleep(1.0)
    assert b.outfile("started") is None, "the user process ran before start"
    assert b.status("c1") == "created"
    b.rt("start", "c1", check=True)
    poll(lambda: b.outfile("started") is not None, what="the user process after start")
    assert b.status("c1") == "running"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    b.rt("kill", "c1", "KILL", check=True)
    poll(lambda: b.status("c1") == "stopped", what="stopped after SIGKILL")
    b.rt("delete", "c1", check=True)
    assert b.state("c1") is None, "state of a deleted container"
    assert not wait_gone([pid])
    # start of a container that does not exist fails
    assert b.rt("start", "c1").returncode != 0


def test_init_is_child_of_a_subreaper_caller(b):
    """conmon and the shim are subreapers: the init must end up their child (waitable)."""
    b.write_config(LONG, cid="c2")
    b.ids.append("c2")
    helper = textwrap.dedent(f"""
        import ctypes, json, os, subprocess, sys
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        pidfile = {os.path.join(b.dir, 'c2.pid')!r}
        subprocess.run([{b.runtime!r}, "--root", {b.root!r}, "create", "--bundle",
                        {b.bundle!r}, "--pid-file", pidfile, "c2"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        pid = int(open(pidfile).read())
        ppid = int(open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[1])
        subprocess.run([{b.runtime!r}, "--root", {b.root!r}, "start", "c2"], check=True)
        subprocess.run([{b.runtime!r}, "--root", {b.root!r}, "kill", "c2", "9"], check=True)
        _, st = os.waitpid(pid, 0)  # only a parent can wait for it
        print(json.dumps({{"me": os.getpid(), "pid": pid, "ppid": ppid,
                          "signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None}}))
    """)
    r = subprocess.run([PY, "-c", helper], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    b.pids.append(got["pid"])
    assert got["ppid"] == got["me"], got
    assert got["signal"] == 9, got
    poll(lambda: b.status("c2") == "stopped", what="stopped once reaped")


def test_kill_with_signals(b):
    script = ("trap 'echo USR1 >> /out/sig' USR1; trap 'echo TERM >> /out/sig' TERM; "
              "touch /out/ready; while :; do sleep 0.05; done")
    pid = b.create("c3", ["sh", "-c", script])
    b.rt("start", "c3", check=True)
    poll(lambda: b.outfile("ready") is not None, what="the traps set")
    b.rt("kill", "c3", "USR1", check=True)          # a name
    poll(lambda: b.outfile("sig") == "USR1\n", what="USR1 delivered")
    b.rt("kill", "c3", "15", check=True)            # a number (the engines' form)
    poll(lambda: b.outfile("sig") == "USR1\nTERM\n", what="TERM delivered")
    assert b.status("c3") == "running", "a handled signal stopped the container"
    b.rt("kill", "c3", "SIGKILL", check=True)       # a SIG name
    poll(lambda: b.status("c3") == "stopped", what="stopped after SIGKILL")
    assert not wait_gone([pid])
    # a stopped container cannot be signalled
    assert b.rt("kill", "c3", "KILL").returncode != 0
    b.rt("delete", "c3", check=True)


def test_delete_running_refused_without_force(b):
    pid = b.create("c4", LONG)
    b.rt("start", "c4", check=True)
    r = b.rt("delete", "c4")
    assert r.returncode != 0, "delete of a running container succeeded without --force"
    assert b.status("c4") == "running"
    assert alive(pid)
    b.rt("delete", "--force", "c4", check=True)
    assert b.state("c4") is None
    assert not wait_gone([pid])


def test_delete_created_container(b):
    """delete of a created (never started) container stops its init: the user process
    never runs."""
    pid = b.create("c5", LONG)
    b.rt("delete", "--force", "c5", check=True)
    assert b.state("c5") is None
    assert not wait_gone([pid])
    assert b.outfile("started") is None


def test_exec_into_running_container(b):
    pid = b.create("c6", LONG)
    b.rt("start", "c6", check=True)
    proc = json.loads(json.dumps(b.config["process"]))
    proc["terminal"] = False
    proc["args"] = ["sh", "-c", "echo exec-out; cat /proc/1/cmdline; exit 3"]
    pj = os.path.join(b.dir, "p1.json")
    with open(pj, "w") as f:
        json.dump(proc, f)
    r = b.rt("exec", "--process", pj, "c6")
    assert r.returncode == 3, r
    assert r.stdout == "exec-out\nsleep\0" + "1000\0", r
    # --detach --pid-file (the engines' form): a process in the container's namespaces
    proc["args"] = ["sh", "-c", "touch /out/exec-ran; exec sleep 1000"]
    with open(pj, "w") as f:
        json.dump(proc, f)
    pf = os.path.join(b.dir, "exec.pid")
    r = b.rt("exec", "--process", pj, "--detach", "--pid-file", pf, "c6", capture=False)
    assert r.returncode == 0, b.log_tail()
    with open(pf) as f:
        epid = int(f.read().strip())
    b.pids.append(epid)
    poll(lambda: b.outfile("exec-ran") is not None, what="the detached exec running")
    for ns in ("pid", "mnt", "net", "ipc", "uts"):
        assert os.readlink(f"/proc/{epid}/ns/{ns}") == os.readlink(f"/proc/{pid}/ns/{ns}"), ns
    ps = json.loads(b.rt("ps", "--format", "json", "c6", check=True).stdout)
    assert pid in ps and epid in ps, ps
    b.rt("kill", "c6", "KILL", check=True)
    poll(lambda: b.status("c6") == "stopped", what="stopped")
    b.rt("delete", "c6", check=True)
    assert not wait_gone([pid, epid])


def test_exec_into_stopped_container_fails(b):
    b.create("c7", ["true"])
    b.rt("start", "c7", check=True)
    poll(lambda: b.status("c7") == "stopped", what="true to exit")
    assert b.rt("exec", "c7", "true").returncode != 0
    b.rt("delete", "c7", check=True)


def test_console_socket(b):
    """terminal: true: the pty master is sent over --console-socket (SCM_RIGHTS); the user
    process has the slave as its stdio, at the config's consoleSize."""
    sockpath = os.path.join(b.dir, "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sockpath)
    srv.listen(1)
    srv.settimeout(60)
    try:
        b.create("c8", ["sh", "-c", "tty; stty size; read x; echo got-$x; exit 0"],
                 terminal=True, extra=("--console-socket", sockpath))
        conn, _ = srv.accept()
        with conn:
            fds = array.array("i")
            _, anc, _, _ = conn.recvmsg(64, socket.CMSG_LEN(4 * fds.itemsize))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        assert len(fds) == 1, "no fd received on the console socket"
        master = fds[0]
        try:
            assert os.readlink(f"/proc/self/fd/{master}") in ("/dev/ptmx", "/dev/pts/ptmx")
            b.rt("start", "c8", check=True)
            shown = b""
            deadline = time.monotonic() + 30
            sent = False
            while time.monotonic() < deadline and b"got-hi" not in shown:
                try:
                    shown += os.read(master, 4096)
                except OSError:
                    break
                if b"30 100" in shown and not sent:
                    os.write(master, b"hi\n")
                    sent = True
            text = shown.decode(errors="replace")
            assert "/dev/pts/" in text and "30 100" in text and "got-hi" in text, text
        finally:
            os.close(master)
        poll(lambda: b.status("c8") == "stopped", what="the shell to exit")
        b.rt("delete", "c8", check=True)
    finally:
        srv.close()


def test_errors_are_json_lines_on_log(b):
    log = os.path.join(b.dir, "runtime.log")
    r = subprocess.run([b.runtime, "--root", b.root, "--log", log, "--log-format", "json",
                        "state", "no-such-container"], capture_output=True, text=True)
    assert r.returncode != 0
    with open(log) as f:
        lines = [json.loads(l) for l in f.read().splitlines() if l.strip()]
    assert lines and all("msg" in l for l in lines), lines
    assert any(l.get("level") == "error" for l in lines), lines
