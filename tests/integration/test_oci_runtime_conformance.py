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


# ------------------------------------------------------------------ issue 16: rt-gaps
def _write_process(b, name, args):
    proc = json.loads(json.dumps(b.config["process"]))
    proc["terminal"] = False
    proc["args"] = args
    path = os.path.join(b.dir, name)
    with open(path, "w") as f:
        json.dump(proc, f)
    return path


def _confinement(pid):
    """What a process's confinement shows in /proc/PID/status (not its pid or ppid)."""
    keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
            "Seccomp_filters", "Uid", "Gid")
    with open(f"/proc/{pid}/status") as f:
        got = dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)
    with open(f"/proc/{pid}/cgroup") as f:
        got["cgroup"] = f.read()
    for ns in ("pid", "mnt", "net", "ipc", "uts", "user", "cgroup"):
        got["ns/" + ns] = os.readlink(f"/proc/{pid}/ns/{ns}")
    return {k: got.get(k) for k in (*keys, "cgroup") + tuple(k for k in got if "/" in k)}


def test_exec_into_created_container(b):
    """runc execs into a created container (runtime-tools' validation does): the process
    has the confinement of an exec into the running container, reaches nothing of the init
    waiting on its exec fifo (its fds, the host's paths of its command line), and start
    then runs the container's process."""
    pid = b.create("c9", LONG)
    assert b.status("c9") == "created"
    probe = ("echo in-created; ls /proc/1/fd >/dev/null 2>&1 && echo init-fds-listed; "
             "ls /proc/1/root/ >/dev/null 2>&1 && echo init-root-reached; "
             f"case \"$(cat /proc/1/cmdline)\" in *{b.token}*) echo host-paths-shown;; esac; "
             "exit 4")
    r = b.rt("exec", "--process", _write_process(b, "p1.json", ["sh", "-c", probe]), "c9")
    assert r.returncode == 4, (r, b.log_tail())
    shown = r.stdout.split()
    assert shown[0] == "in-created", r.stdout
    # runc's init (runc spec's config: no user namespace) is reachable by the exec'd root;
    # agentd's is not, and shows no host path
    if b.runtime != RUNC:
        assert shown == ["in-created"], r.stdout
    pf = os.path.join(b.dir, "exec1.pid")
    r = b.rt("exec", "--process", _write_process(b, "p2.json", ["sleep", "1000"]), "--detach",
             "--pid-file", pf, "c9", capture=False)
    assert r.returncode == 0, b.log_tail()
    with open(pf) as f:
        early = int(f.read().strip())
    b.pids.append(early)
    poll(lambda: open(f"/proc/{early}/cmdline", "rb").read().startswith(b"sleep"),
         what="the exec'd process")
    fds = {n: os.readlink(f"/proc/{early}/fd/{n}") for n in os.listdir(f"/proc/{early}/fd")}
    assert set(fds) == {"0", "1", "2"}, fds
    assert not any("fifo" in t or t.startswith("/proc") for t in fds.values()), fds
    assert b.status("c9") == "created", "the exec started the container"
    b.rt("start", "c9", check=True)
    poll(lambda: b.outfile("started") is not None, what="the container's process after start")
    assert b.status("c9") == "running"
    pf2 = os.path.join(b.dir, "exec2.pid")
    b.rt("exec", "--process", _write_process(b, "p3.json", ["sleep", "1001"]), "--detach",
         "--pid-file", pf2, "c9", capture=False, check=True)
    with open(pf2) as f:
        late = int(f.read().strip())
    b.pids.append(late)
    poll(lambda: open(f"/proc/{late}/cmdline", "rb").read().startswith(b"sleep"),
         what="the exec'd process")
    assert _confinement(early) == _confinement(late)
    st = _confinement(early)
    if b.runtime != RUNC:	# runc spec's config has no seccomp profile
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
    assert st["ns/mnt"] == os.readlink(f"/proc/{pid}/ns/mnt")
    # as test_exec_into_running_container ends (runc's delete --force of a container with
    # exec'd processes fails now and then on a loaded machine)
    b.rt("kill", "c9", "KILL", check=True)
    poll(lambda: b.status("c9") == "stopped", what="stopped")
    b.rt("delete", "c9", check=True)
    assert not wait_gone([pid, early, late])


def test_exec_into_stopped_container_is_still_refused(b):
    b.create("c10", ["true"])
    b.rt("start", "c10", check=True)
    poll(lambda: b.status("c10") == "stopped", what="true to exit")
    r = b.rt("exec", "--process", _write_process(b, "p.json", ["true"]), "c10")
    assert r.returncode != 0 and "stopped" in (r.stderr + b.log_tail()), r
    b.rt("delete", "c10", check=True)


def test_domainname_is_set_in_the_uts_namespace(b):
    b.config["domainname"] = "ocirt.example"
    b.create("c11", ["sh", "-c", "cat /proc/sys/kernel/domainname /proc/sys/kernel/hostname "
                     "> /out/uts"])
    b.rt("start", "c11", check=True)
    poll(lambda: b.status("c11") == "stopped", what="the process to exit")
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read().strip() != "ocirt.example", "the host's domainname changed"
    got = b.outfile("uts").split()
    b.rt("delete", "c11", check=True)
    if b.runtime == RUNC and got[0] == "(none)":
        pytest.skip("this runc ignores domainname (Debian 12's runc 1.1 does not set it)")
    assert got == ["ocirt.example", b.config["hostname"]]


def test_ps_prints_the_hosts_ps_lines_of_the_container(b):
    """runc's ps: `ps -ef` (or the ps options after the id) run on the host, its header,
    then only the container's processes' lines."""
    pid = b.create("c12", LONG)
    b.rt("start", "c12", check=True)
    poll(lambda: b.outfile("started") is not None, what="start")
    host = subprocess.run(["ps", "-ef"], capture_output=True, text=True).stdout.splitlines()
    r = b.rt("ps", "c12", check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == host[0], lines
    assert [int(ln.split()[1]) for ln in lines[1:]] == [pid], lines
    assert lines[1].split()[7:] == ["sleep", "1000"], lines
    # ps's own selection applies (without -e: the caller's euid; agentd's container root
    # is an unprivileged host uid)
    r = b.rt("ps", "c12", "-eo", "pid,comm", check=True)
    assert r.stdout.split() == ["PID", "COMMAND", str(pid), "sleep"], r.stdout
    assert json.loads(b.rt("ps", "--format", "json", "c12", check=True).stdout) == [pid]
    b.rt("delete", "--force", "c12", check=True)


def _tmpcopyup_mount(dest, *extra):
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=755", *extra, "tmpcopyup"]}


def test_tmpcopyup_starts_the_tmpfs_with_the_images_content(b, rootfs):
    """podman's --tmpfs: the tmpfs over an image directory starts with a copy of it, files
    with their modes, links as links (a link to a host path is never followed: the image
    may have been written by an earlier container), writable, and the image's directory
    untouched. (runc 1.1 fails on a fifo there: tests/security has agentd's.)"""
    src = os.path.join(rootfs, "cu-" + b.token)
    secret = os.path.join(b.dir, "host-secret")
    with open(secret, "w") as f:
        f.write("HOSTSECRET\n")
    os.makedirs(os.path.join(src, "sub", "deeper"))
    with open(os.path.join(src, "a.txt"), "w") as f:
        f.write("image-a\n")
    os.chmod(os.path.join(src, "a.txt"), 0o640)
    with open(os.path.join(src, "sub", "deeper", "b.txt"), "w") as f:
        f.write("image-b\n")
    os.chmod(os.path.join(src, "sub"), 0o710)
    os.symlink(secret, os.path.join(src, "leak"))          # absolute, to the host
    os.symlink(b.dir, os.path.join(src, "leakdir"))
    os.symlink("a.txt", os.path.join(src, "rel"))
    dest = "/cu-" + b.token
    b.config["mounts"].append(_tmpcopyup_mount(dest))
    script = (f"cd {dest} && cat a.txt sub/deeper/b.txt rel > /out/cat; "
              f"cat leak leakdir/host-secret > /out/leak 2>&1; ls -lnA . sub > /out/ls; "
              "echo new > new && echo writable > /out/w")
    b.create("c13", ["sh", "-c", script])
    b.rt("start", "c13", check=True)
    poll(lambda: b.status("c13") == "stopped", what="the process to exit")
    assert b.outfile("cat") == "image-a\nimage-b\nimage-a\n", b.outfile("ls")
    assert "HOSTSECRET" not in b.outfile("leak")
    ls = {ln.split()[-1] if "->" not in ln else ln.split()[-3]: ln
          for ln in b.outfile("ls").splitlines() if ln and ln[0] in "-dlp"}
    assert ls["a.txt"].startswith("-rw-r-----"), ls
    assert ls["sub"].startswith("drwx--x---"), ls
    assert ls["leak"].startswith("l") and ls["leak"].endswith(f"-> {secret}"), ls
    assert ls["leakdir"].startswith("l") and ls["leakdir"].endswith(f"-> {b.dir}"), ls
    assert ls["rel"].endswith("-> a.txt"), ls
    assert b.outfile("w") == "writable\n"
    assert not os.path.exists(os.path.join(src, "new")), "the copy-up wrote to the image"
    b.rt("delete", "c13", check=True)
    shutil.rmtree(src)


def test_tmpcopyup_is_bounded_by_the_tmpfs_size(b, rootfs):
    """An image directory larger than the tmpfs fails the create (nothing is left); it does
    not fill the host's memory."""
    src = os.path.join(rootfs, "cubig-" + b.token)
    os.mkdir(src)
    with open(os.path.join(src, "big"), "wb") as f:
        f.write(b"x" * (1 << 20))
    b.config["mounts"].append(_tmpcopyup_mount("/cubig-" + b.token, "size=64k"))
    b.write_config(LONG, cid="c14")
    b.ids.append("c14")
    r = b.rt("create", "--bundle", b.bundle, "c14", capture=False)
    assert r.returncode != 0, "a 1 MiB copy into a 64 KiB tmpfs succeeded"
    assert b.state("c14") is None
    shutil.rmtree(src)


def test_exec_into_a_paused_created_container_is_refused(b):
    """A created container can be paused; an exec into it is refused as into a paused one
    (its process would freeze and the attached exec wait forever), and works once resumed."""
    b.create("c15", LONG)
    b.rt("pause", "c15", check=True)
    r = b.rt("exec", "--process", _write_process(b, "p.json", ["true"]), "c15", timeout=30)
    assert r.returncode != 0 and "paused" in (r.stderr + b.log_tail()), r
    b.rt("resume", "c15", check=True)
    r = b.rt("exec", "--process", _write_process(b, "p.json", ["true"]), "c15", timeout=30)
    assert r.returncode == 0, (r, b.log_tail())
    b.rt("start", "c15", check=True)
    poll(lambda: b.outfile("started") is not None, what="start after the exec")
    b.rt("delete", "--force", "c15", check=True)
