"""agentd as an OCI runtime, driven directly as podman/conmon and containerd's shim drive
runc (build/agentd-runc, its own --root): create blocks until start, the pid file, the state
transitions, kill with names and numbers, the delete rules, exec into a running container
(attached and --detach), the console socket with a real pty, pause/resume, ps, features,
errors as JSON lines on --log, and a deleted container leaves nothing behind (processes,
cgroups, state dir). OCIRT_RUNTIME=/usr/sbin/runc runs the same specification against runc."""
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from ocirt_util import (RUNTIME, ConsoleReceiver, Runtime, become_subreaper, cgroup_dirs,
                        cmdline, make_bundle, new_base, ppid, read_pid_file, reap, wait_for)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(RUNTIME),
                                reason="root and the built agentd-runc needed")

LOOP = ["sh", "-c", "trap 'echo got-term > /tmp/sig; exit 3' TERM; "
        "echo up > /tmp/up; while :; do sleep 0.1; done"]


def read_until(fd, token, timeout=20):
    """What a pty master gives until token shows (or EOF, EIO, the deadline)."""
    out = b""
    deadline = time.monotonic() + timeout
    while token not in out and time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    become_subreaper()
    yield
    for d in cgroup_dirs("/ocirt-test"):	# the tests' parent cgroup, empty by now
        os.rmdir(d)


class Container:
    def __init__(self, args, terminal=False, config_edit=None):
        self.base = new_base()
        self.id = "t-" + uuid.uuid4().hex[:12]
        self.cgroup = f"/ocirt-test/{self.id}"

        def edit(cfg):
            cfg["linux"]["cgroupsPath"] = self.cgroup
            if config_edit:
                config_edit(cfg)
        self.bundle = make_bundle(self.base, args, terminal, edit)
        self.rt = Runtime(self.base)
        self.pid_file = os.path.join(self.base, "init.pid")
        self.pid = None
        self.status = None

    def reap(self, timeout=20):
        """The init's wait status (it is our child: we are a subreaper like conmon)."""
        if self.status is None and self.pid:
            self.status = reap(self.pid, timeout)
        return self.status

    def create(self, *extra):
        """The container's stdio is the create's (as conmon passes pipes): here a file, which
        the container keeps open after create exits."""
        self.out = os.path.join(self.base, "out")
        with open(self.out, "ab") as out:
            p = self.rt("create", "--bundle", self.bundle, "--pid-file", self.pid_file,
                        *extra, self.id, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        assert p.returncode == 0, (p, self.output(), self.log())
        self.pid = read_pid_file(self.pid_file)
        return p

    def output(self):
        with open(self.out, "rb") as f:
            return f.read()

    def log(self):
        try:
            with open(self.rt.log, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def cleanup(self):
        self.rt("delete", "--force", self.id)
        self.reap(timeout=5)
        shutil.rmtree(self.base, ignore_errors=True)

    def assert_no_trace(self):
        assert not os.path.exists(os.path.join(self.rt.root, self.id))
        assert cgroup_dirs(self.cgroup) == []
        with open("/proc/self/mountinfo") as f:
            assert self.base not in f.read(), "a mount of the container on the host"
        if self.pid:
            assert self.reap() is not None, "the init is still running"


@pytest.fixture
def container():
    made = []

    def make(*a, **kw):
        c = Container(*a, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.cleanup()


def test_create_blocks_until_start_then_runs_the_process_as_pid_1(container):
    c = container(LOOP)
    c.create()
    st = c.rt.state(c.id)
    assert st["status"] == "created" and st["pid"] == c.pid and st["id"] == c.id
    assert st["bundle"] == c.bundle and st["ociVersion"]
    # the init waits before the user process: its cmdline is still the runtime's
    time.sleep(0.5)
    assert cmdline(c.pid)[1:3] != [b"-c", LOOP[2].encode()]
    assert ppid(c.pid) == os.getpid(), "the init must be the caller's child"
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:2] == [b"sh", b"-c"], what="the exec of the process")
    assert c.rt.state(c.id)["status"] == "running"
    # PID 1 of its pid namespace
    with open(f"/proc/{c.pid}/status") as f:
        nspid = [ln for ln in f if ln.startswith("NSpid:")][0].split()
    assert nspid[-1] == "1"
    # start twice is an error
    assert c.rt("start", c.id).returncode != 0


def test_kill_delivers_a_named_signal_and_a_number(container):
    c = container(LOOP)
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    time.sleep(0.3)
    c.rt.ok("kill", c.id, "SIGTERM")
    status = c.reap()
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
    assert c.rt.state(c.id)["status"] == "stopped"
    assert c.rt("kill", c.id, "KILL").returncode != 0, "a stopped container has no init"

    d = container(["sleep", "1000"])
    d.create()
    d.rt.ok("start", d.id)
    d.rt.ok("kill", d.id, "9")
    status = d.reap()
    assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    assert d.rt("kill", d.id, "NOSUCHSIG").returncode != 0


def test_delete_refuses_a_running_container_and_force_leaves_nothing(container):
    c = container(["sh", "-c", "sleep 1000 & sleep 1000; exit 0"])
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    assert cgroup_dirs(c.cgroup), "the container's cgroup exists while it runs"
    p = c.rt("delete", c.id)
    assert p.returncode != 0 and b"running" in p.stderr
    assert c.rt.state(c.id)["status"] == "running"
    c.rt.ok("delete", "--force", c.id)
    c.assert_no_trace()
    assert c.rt("state", c.id).returncode != 0


def test_delete_of_a_created_or_stopped_container_needs_no_force(container):
    c = container(["true"])
    c.create()
    c.rt.ok("delete", c.id)		# created: killed and removed, as runc does
    c.assert_no_trace()
    d = container(["true"])
    d.create()
    d.rt.ok("start", d.id)
    assert d.reap() is not None
    assert d.rt.state(d.id)["status"] == "stopped"
    d.rt.ok("delete", d.id)
    d.assert_no_trace()


def test_exec_attached_passes_output_and_exit_status(container):
    c = container(LOOP)
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    p = c.rt("exec", c.id, "sh", "-c", "cat /tmp/up; hostname; exit 7")
    assert p.returncode == 7, p
    assert p.stdout.split() == [b"up", b"ocirt"]
    # the same process.json way podman passes it
    proc = os.path.join(c.base, "process.json")
    with open(proc, "w") as f:
        json.dump({"args": ["sh", "-c", "echo $FOO; id -u"], "env": ["FOO=bar", "PATH=/bin"],
                   "cwd": "/tmp", "user": {"uid": 0, "gid": 0}, "terminal": False,
                   "noNewPrivileges": True}, f)
    p = c.rt("exec", "--process", proc, c.id)
    assert p.returncode == 0 and p.stdout.split() == [b"bar", b"0"], p


def test_exec_detach_writes_the_pid_file_and_the_process_is_the_callers_child(container):
    c = container(LOOP)
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    pid_file = os.path.join(c.base, "exec.pid")
    c.rt.ok("exec", "--detach", "--pid-file", pid_file, c.id, "sleep", "1000",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = read_pid_file(pid_file)
    wait_for(lambda: cmdline(pid)[:2] == [b"sleep", b"1000"], what="the exec'd process")
    assert ppid(pid) == os.getpid()
    ps = json.loads(c.rt.ok("ps", "--format", "json", c.id).stdout)
    assert c.pid in ps and pid in ps
    c.rt.ok("delete", "--force", c.id)
    assert reap(pid) is not None, "delete --force kills exec'd processes too"
    c.assert_no_trace()


def test_console_socket_gets_a_pty_master_and_the_process_has_a_terminal(container):
    c = container(["sh", "-c", "tty; [ -t 0 ] && echo is-a-tty; sleep 2"], terminal=True)
    rx = ConsoleReceiver(c.base)
    try:
        import threading
        got = {}
        t = threading.Thread(target=lambda: got.update(zip(("fd", "msg"), rx.receive())))
        t.start()
        c.create("--console-socket", rx.path)
        t.join(30)
        assert "fd" in got, "no fd came on the console socket"
        c.rt.ok("start", c.id)
        out = read_until(got["fd"], b"is-a-tty")
        assert b"/dev/pts/" in out and b"is-a-tty" in out, out
        os.close(got["fd"])
    finally:
        rx.close()


def test_exec_with_a_terminal_uses_the_console_socket(container):
    c = container(LOOP)
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    rx = ConsoleReceiver(c.base)
    try:
        import threading
        got = {}
        t = threading.Thread(target=lambda: got.update(zip(("fd", "msg"), rx.receive())))
        t.start()
        pid_file = os.path.join(c.base, "exec.pid")
        # as podman does: exec --detach --tty --console-socket --pid-file
        p = c.rt("exec", "--detach", "-t", "--console-socket", rx.path, "--pid-file",
                 pid_file, c.id, "sh", "-c", "[ -t 1 ] && echo exec-tty; sleep 1",
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
        assert p.returncode == 0, c.log()
        t.join(30)
        assert "fd" in got
        out = read_until(got["fd"], b"exec-tty")
        assert b"exec-tty" in out
        status = reap(read_pid_file(pid_file))
        assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        os.close(got["fd"])
    finally:
        rx.close()


def test_pause_and_resume_freeze_the_container(container):
    c = container(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; "
                   "done"])
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    c.rt.ok("pause", c.id)
    assert c.rt.state(c.id)["status"] == "paused"
    assert c.rt("delete", c.id).returncode != 0, "a paused container needs --force"
    c.rt.ok("resume", c.id)
    assert c.rt.state(c.id)["status"] == "running"
    p = c.rt("exec", c.id, "cat", "/tmp/n")
    assert p.returncode == 0 and int(p.stdout) > 0


def test_ps_lists_the_containers_processes(container):
    c = container(LOOP)
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    assert c.pid in json.loads(c.rt.ok("ps", "--format", "json", c.id).stdout)
    table = c.rt.ok("ps", c.id).stdout.decode()
    assert "PID" in table.splitlines()[0] and str(c.pid) in table


def test_features_describe_the_runtime():
    base = new_base()
    try:
        f = json.loads(Runtime(base).ok("features").stdout)
        assert f["ociVersionMin"].startswith("1.") and f["ociVersionMax"].startswith("1.")
        assert "pid" in f["linux"]["namespaces"] and "user" in f["linux"]["namespaces"]
        assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
        assert f["linux"]["seccomp"]["enabled"] is True
        assert "bind" in f["mountOptions"]
    finally:
        shutil.rmtree(base)


def test_errors_are_json_lines_on_the_log():
    base = new_base()
    try:
        rt = Runtime(base)
        p = rt("state", "no-such-container")
        assert p.returncode != 0 and p.stderr
        with open(rt.log) as f:
            lines = [json.loads(ln) for ln in f if ln.strip()]
        assert lines and lines[-1]["level"] == "error"
        assert "exist" in lines[-1]["msg"] and lines[-1]["time"]
        p = rt("create", "--bundle", base, "bad/id")
        assert p.returncode != 0
    finally:
        shutil.rmtree(base)


def test_version_names_the_spec():
    out = subprocess.run([RUNTIME, "--version"], capture_output=True, timeout=30)
    assert out.returncode == 0 and b"spec: 1." in out.stdout


def test_a_refused_config_leaves_no_state_and_names_the_field(container):
    def wants_sys_admin(cfg):
        for k in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][k].append("CAP_SYS_ADMIN")
    c = container(["true"], config_edit=wants_sys_admin)
    if "runc" in os.path.basename(RUNTIME) and "agentd" not in RUNTIME:
        pytest.skip("runc grants what the config asks")
    p = c.rt("create", "--bundle", c.bundle, c.id, stdin=subprocess.DEVNULL,
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert p.returncode != 0 and b"CAP_SYS_ADMIN" in c.log(), c.log()
    assert not os.path.exists(os.path.join(c.rt.root, c.id))
    assert cgroup_dirs(c.cgroup) == []


def test_state_of_a_recycled_pid_is_stopped(container):
    """A pid reused by another process after the init died is never taken for the init."""
    c = container(["true"])
    c.create()
    c.rt.ok("start", c.id)
    assert c.reap() is not None
    state_file = os.path.join(c.rt.root, c.id, "state.json")
    if not os.path.exists(state_file):
        pytest.skip("the runtime keeps its state elsewhere")
    with open(state_file) as f:
        st = json.load(f)
    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        st["pid"] = sleeper.pid		# as if the kernel had recycled the init's pid
        with open(state_file, "w") as f:
            json.dump(st, f)
        assert c.rt.state(c.id)["status"] == "stopped"
        assert c.rt("kill", c.id, "KILL").returncode != 0
        assert sleeper.poll() is None, "the runtime signalled a process not its init"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_update_changes_the_cgroup_and_kill_all_signals_every_process(container):
    c = container(["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: len(json.loads(c.rt.ok("ps", "--format", "json", c.id).stdout)) >= 3,
             what="three processes")
    c.rt.ok("update", "--pids-limit", "77", c.id)
    pids_max = [os.path.join(d, "pids.max") for d in cgroup_dirs(c.cgroup)
                if os.path.exists(os.path.join(d, "pids.max"))]
    assert pids_max
    for f in pids_max:
        with open(f) as fh:
            assert fh.read().strip() == "77"
    ids = c.rt.ok("list", "--quiet").stdout.split()
    assert c.id.encode() in ids
    c.rt.ok("kill", "--all", c.id, "KILL")
    status = c.reap()
    assert status is not None and os.WIFSIGNALED(status)
    wait_for(lambda: json.loads(c.rt.ok("ps", "--format", "json", c.id).stdout) == [],
             what="every process gone")


def test_the_oci_verb_of_agentd_is_the_same_runtime():
    agentd = os.path.join(os.path.dirname(RUNTIME), "agentd")
    if not os.path.exists(agentd) or "agentd" not in RUNTIME:
        pytest.skip("agentd's own binary")
    out = subprocess.run([agentd, "oci", "--version"], capture_output=True, timeout=30)
    assert out.returncode == 0 and b"spec: 1." in out.stdout


def test_a_bundle_below_a_0700_dir_runs(container):
    """Engines keep bundles below root-only dirs (podman's overlay/<id>/merged): the
    container's root, an unprivileged host uid in its user namespace, could not walk there."""
    c = container(LOOP)
    os.chmod(c.base, 0o700)
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    p = c.rt("exec", c.id, "cat", "/tmp/up")
    assert p.returncode == 0 and p.stdout == b"up\n", p


def _oom_score_adj(pid):
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())


def _warnings(c):
    return [json.loads(ln)["msg"] for ln in c.log().decode().splitlines()
            if ln.strip() and json.loads(ln)["level"] == "warning"]


def test_a_negative_oom_score_adj_is_raised_to_0_with_a_warning_for_exec_too(container):
    """issue 16: rt-gaps. runc writes process.oomScoreAdj as given (as host root: a
    Guaranteed pod's -997); agentd's floor never makes a container's processes safer from
    the OOM killer than the host's: 0, said on --log, for the config's process and for an
    exec's process.json alike (which once went through unclamped)."""
    runc = "agentd" not in RUNTIME

    def low_oom(cfg):
        cfg["process"]["oomScoreAdj"] = -500
    c = container(LOOP, config_edit=low_oom)
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: cmdline(c.pid)[:1] == [b"sh"], what="start")
    assert _oom_score_adj(c.pid) == (-500 if runc else 0)
    proc = os.path.join(c.base, "process.json")
    with open(proc, "w") as f:
        json.dump({"args": ["sleep", "1000"], "env": ["PATH=/bin"], "cwd": "/",
                   "user": {"uid": 0, "gid": 0}, "oomScoreAdj": -300}, f)
    pid_file = os.path.join(c.base, "exec.pid")
    c.rt.ok("exec", "--detach", "--pid-file", pid_file, "--process", proc, c.id,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = read_pid_file(pid_file)
    assert _oom_score_adj(pid) == (-300 if runc else 0)
    if not runc:
        warned = [w for w in _warnings(c) if "oomScoreAdj" in w]
        assert any("-500" in w for w in warned) and any("-300" in w for w in warned), warned
    c.rt.ok("delete", "--force", c.id)
    assert reap(pid) is not None
