"""The microvm backend (docs/microvm.md): a QEMU micro-VM per sandbox, started in agentd's
own container jail, its guest agent spoken to over virtio-serial. Skipped, with the probe's
reason, where the backend is unavailable (no QEMU, no guest built); CI builds the guest
(scripts/build-guest.sh) before the tests run.

Boots are ~2-5 s each under TCG on a loaded machine: VMs are shared per module where a test
allows, every deadline is generous, and every subprocess runs in its own process group,
killed on a timeout."""
import base64
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import AGENTD, BUILD
from daemon_util import Daemon, agentd_cgroups, wait_until

GUEST_DIR = os.environ.get("AGENTD_GUEST_DIR") or os.path.join(BUILD, "guest")
HOSTILE_INIT = os.path.join(BUILD, "tests", "hostile-guest-init")
PACK = os.path.join(os.path.dirname(__file__), "..", "microvm", "pack.sh")
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
if os.environ.get("AGENTD_GUEST_DIR"):
    BASE_ENV["AGENTD_GUEST_DIR"] = os.environ["AGENTD_GUEST_DIR"]
VM_TIMEOUT = 240


def sh(args, env=None, timeout=VM_TIMEOUT, input=None):
    """Run args in a process group of its own; the whole group is killed on a timeout."""
    e = dict(BASE_ENV)
    e.update(env or {})
    p = subprocess.Popen(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                         start_new_session=True)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    return p.returncode, out, err


def probe_caps(env=None):
    rc, out, err = sh([AGENTD, "probe", "--backend", "microvm", "--json"], env=env)
    assert rc == 0, err
    return json.loads(out)["backends"][0]


@pytest.fixture(scope="module")
def caps():
    c = probe_caps()
    if not c["available"]:
        pytest.skip(f"microvm unavailable here: {c.get('reason')}")
    return c


def run_vm(*cmd, opts=(), env=None, input=None, backend="microvm"):
    args = [AGENTD, "run", "--backend", backend, "--json", *opts]
    if input is not None:
        args.append("-i")
    rc, out, err = sh([*args, "--", *cmd], env=env, input=input)
    return rc, (json.loads(out) if out.startswith(b"{") else None), err


def qemu_pids_of(sid):
    """QEMU processes in sandbox sid's cgroup (any hierarchy), found from the host."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cgroup") as f:
                cg = f.read()
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if f"/agentd/{sid}" in cg and comm.startswith("qemu"):
            found.append(int(p))
    return found


def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


# ------------------------------------------------------------------ the probe's verdict

def test_probe_verdict_is_honest(caps):
    feats = caps["platform_features"]
    accel = [f for f in feats if f.startswith("accelerator-")]
    assert len(accel) == 1, feats
    if os.path.isdir("/sys/module/kvm_pvm"):
        assert "kvm-pvm" in feats
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        # no device: never KVM, and the cost of TCG is stated, measured
        assert accel == ["accelerator-tcg"]
        warn = " ".join(caps["warnings"])
        assert "TCG" in warn and "/dev/kvm" in warn and "ms measured" in warn, warn
    assert "cpu_time" in caps["enforces"] and "seccomp" in caps["enforces"]


def test_unavailable_without_guest_names_the_missing_file(tmp_path):
    c = probe_caps(env={"AGENTD_GUEST_DIR": str(tmp_path)})
    assert not c["available"]
    assert str(tmp_path) in c["reason"] and "missing" in c["reason"]


def test_auto_keeps_preferring_container(caps):
    rc, out, err = sh([AGENTD, "run", "--json", "--", "/bin/true"])
    assert rc == 0, err
    assert json.loads(out)["backend"] == "container"


# ------------------------------------------------------------------ the CLI

def test_cli_exit_code_and_streams_through_an_alias(caps):
    rc, res, err = run_vm("sh", "-c", "echo out; echo err >&2; exit 3", backend="firecracker")
    assert res is not None, err
    assert res["exit_code"] == 3 and rc == 3
    assert res["stdout"] == "out\n" and res["stderr"] == "err\n"
    assert res["backend"] == "microvm"


def test_cli_env_is_cleared_like_container(caps):
    rc, res, err = run_vm("env", opts=["--env", "GIVEN=1"],
                          env={"AGENTD_TEST_LEAK": "host-secret"})
    assert res is not None, err
    names = {line.split("=", 1)[0] for line in res["stdout"].splitlines() if "=" in line}
    assert "AGENTD_TEST_LEAK" not in names and "GIVEN" in names
    assert {"PATH", "HOME", "TMPDIR", "LANG"} <= names, names


def test_cli_cpu_time_counts_the_commands_not_the_boot(caps):
    # QEMU spends seconds of CPU booting the guest: the policy's budget is the commands'
    rc, res, err = run_vm("sh", "-c", "while :; do :; done", opts=["--cpu-time", "2s"])
    assert res is not None, err
    assert res["limit_hit"] == "cpu" and res["term_signal"] in (signal.SIGXCPU, signal.SIGKILL), res
    assert 1500 <= res["resource_usage"]["cpu_time_ms"] < 10000, res


def test_cli_host_paths_are_refused_not_dropped(caps):
    # without virtiofsd (file sharing) a host path is refused, never dropped
    rc, res, err = run_vm("true", opts=["--ro", "/etc"],
                          env={"AGENTD_VIRTIOFSD": "/nonexistent/virtiofsd"})
    assert rc == 125 and res is None
    assert b"allowed_paths_ro" in err, err


# ------------------------------------------------------------------ a daemon, one VM

class EnvDaemon(Daemon):
    """A daemon whose environment names a guest initramfs."""

    def __init__(self, env):
        super().__init__()
        self.env = {**BASE_ENV, **env}

    def start(self):
        old = subprocess.Popen

        def popen(*a, **kw):
            kw["env"] = {**kw.get("env", {}), **self.env}
            return old(*a, **kw)
        subprocess.Popen = popen
        try:
            return super().start()
        finally:
            subprocess.Popen = old


@pytest.fixture(scope="module")
def daemon(caps):
    d = EnvDaemon({}).start()
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def vm(daemon):
    spec = {"limits": {"max_memory_bytes": 128 << 20, "max_processes": 32,
                       "max_output_bytes": 4096, "max_wall_time_ms": 60000}}
    r = daemon.post("/v1/sandboxes", {"backend": "microvm", "spec": spec}, )
    assert r.status == 201, r
    return r.json["id"]


def ex(daemon, sid, argv, **kw):
    kw.setdefault("timeout_ms", 45000)  # within the client's 60 s: TCG on a loaded host
    try:
        r = daemon.exec(sid, argv, **kw)
    except OSError:
        daemon.conn = None  # the next test gets a fresh connection
        raise
    assert r.status == 200, r
    return r.json


def test_daemon_execs_twice_in_one_vm(daemon, vm):
    a = ex(daemon, vm, ["sh", "-c", "echo first > /tmp/mark; echo one"])
    b = ex(daemon, vm, ["cat", "/tmp/mark"])
    assert a["exit_code"] == 0 and a["stdout"] == "one\n"
    assert b["exit_code"] == 0 and b["stdout"] == "first\n"   # the same VM, persistent


def test_streaming_order(daemon, vm):
    r = ex(daemon, vm, ["sh", "-c", "for i in $(seq 1 300); do echo $i; done"])
    assert r["stdout"] == "".join(f"{i}\n" for i in range(1, 301))[:4096] or \
        r["output_truncated"], r


def test_large_output_flows_with_credit_and_is_capped(daemon, vm):
    # 2 MiB through the port: more than the initial credit, so it flows only if the host
    # returns credit; the sandbox's cap keeps 4 KiB
    r = ex(daemon, vm, ["sh", "-c", "head -c 2097152 /dev/zero | tr '\\0' a; echo; echo done"])
    assert r["output_truncated"] is True
    assert len(r["stdout"]) <= 4096 + 200


def test_stdin(daemon, vm):
    data = bytes(range(256)) * 1200  # 307200 bytes: beyond the guest's initial credit
    r = ex(daemon, vm, ["sh", "-c", "cat | md5sum"], stdin=base64.b64encode(data).decode())
    assert r["exit_code"] == 0 and r["stdout"].split()[0] == hashlib.md5(data).hexdigest(), r
    r = ex(daemon, vm, ["sh", "-c", "cat | wc -c"], stdin=base64.b64encode(data).decode())
    assert r["exit_code"] == 0 and r["stdout"].strip() == str(len(data)), r


def test_wall_timeout_then_vm_healthy(daemon, vm):
    t0 = time.monotonic()
    r = ex(daemon, vm, ["sleep", "100"], timeout_ms=2000)
    assert r["timed_out"] is True and r["exit_code"] == 124, r
    assert time.monotonic() - t0 < 30
    ok = ex(daemon, vm, ["echo", "alive"])
    assert ok["stdout"] == "alive\n"


def test_memory_limit_hit(daemon, vm):
    # one 160 MiB buffer, filled at once: over the 128 MiB limit, within the guest's RAM
    # (the limit + 96 MiB), fast even under TCG
    r = ex(daemon, vm, ["dd", "if=/dev/zero", "of=/dev/null", "bs=160M", "count=1"])
    assert r["exit_code"] != 0 and r["limit_hit"] == "memory", r
    assert ex(daemon, vm, ["echo", "ok"])["stdout"] == "ok\n"


def test_pids_limit_hit(daemon, vm):
    r = ex(daemon, vm, ["sh", "-c", "for i in $(seq 1 100); do sleep 30 & done; wait"],
           timeout_ms=20000)
    assert r["limit_hit"] == "pids", r
    assert ex(daemon, vm, ["echo", "ok"])["stdout"] == "ok\n"


def test_network_none_only_lo(daemon, vm):
    r = ex(daemon, vm, ["cat", "/proc/net/dev"])
    names = [l.split(":")[0].strip() for l in r["stdout"].splitlines()[2:]]
    assert names == ["lo"], r


def test_qemu_is_jailed(daemon, vm):
    pids = qemu_pids_of(vm)
    assert len(pids) == 1, pids
    st = status_of(pids[0])
    assert st["Seccomp"] == "2", st
    for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(st[cap], 16) == 0, st
    assert st["NoNewPrivs"] == "1"
    for ns in ("net", "mnt", "pid", "user", "ipc", "uts"):
        assert os.readlink(f"/proc/{pids[0]}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    # nothing connectable on a filesystem: its only sockets are inherited socketpairs
    with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
        cmd = f.read().split(b"\0")
    assert any(a.startswith(b"socket,id=agent,fd=") for a in cmd)
    # the vhost-user socket of file sharing is bound in the jail's private directory and its
    # name removed once QEMU is connected: nothing is left to connect to
    for a in cmd:
        if b"path=" in a:
            path = a.split(b"path=", 1)[1].split(b",")[0].decode()
            assert not os.path.lexists(f"/proc/{pids[0]}/root{path}"), (path, cmd)
    assert "-sandbox" in [a.decode() for a in cmd]


def test_destroy_leaves_nothing(daemon, caps):
    sid = daemon.create("microvm")
    assert ex(daemon, sid, ["true"])["exit_code"] == 0
    pids = qemu_pids_of(sid)
    assert pids and sid in agentd_cgroups()
    r = daemon.delete(f"/v1/sandboxes/{sid}")
    assert r.status in (200, 204), r
    assert wait_until(lambda: not qemu_pids_of(sid), timeout=20)
    for p in pids:
        assert not os.path.exists(f"/proc/{p}") or status_of(p).get("State", "").startswith("Z")
    assert sid not in agentd_cgroups()
    assert not any(sid in n for n in os.listdir(daemon.state_dir) if True)


# ------------------------------------------------------------------ a hostile guest

@pytest.fixture(scope="module")
def hostile(caps):
    real = os.path.join(GUEST_DIR, "initramfs.cpio.gz")
    d = tempfile.mkdtemp(prefix="agentd-hostile-", dir="/var/tmp")
    os.chmod(d, 0o755)  # QEMU's jail reads it as the sandbox's own uid
    out = {}
    for name, mode in (("hostile", ""), ("nohello", "nohello")):
        path = os.path.join(d, name + ".cpio.gz")
        rc, o, e = sh(["bash", PACK, real, HOSTILE_INIT, path, mode], timeout=60)
        assert rc == 0, e
        out[name] = path
    yield out
    for p in out.values():
        os.unlink(p)
    os.rmdir(d)


@pytest.mark.parametrize("mode,why", [
    # without end: beyond its credit when the host falls behind, else until the host's
    # deadline and the kill it does not obey
    ("flood", (b"beyond the credit", b"did not end a timed-out command")),
    ("oversize", b"protocol error from the guest: a malformed frame header"),
    ("malformed", b"does not accept (EXIT)"),
    ("badchan", b"not open"),
    ("spam", b"answer to no request"),
])
def test_hostile_guest_fails_only_its_sandbox(caps, hostile, mode, why):
    t0 = time.monotonic()
    rc, res, err = run_vm(mode, opts=["--timeout", "5s"],
                          env={"AGENTD_GUEST_INITRD": hostile["hostile"]})
    assert rc == 125 and res is None, err
    whys = why if isinstance(why, tuple) else (why,)
    assert any(w in err for w in whys), err
    assert time.monotonic() - t0 < 120


def test_guest_that_stops_reading_its_port_is_broken_at_the_first_timed_out_write(
        caps, hostile):
    # the guest never reads again while the host has to answer it (a refusal per stream it
    # opens): the host's first write that cannot finish within its send timeout breaks the
    # VM — not one timeout per frame for as long as the guest keeps the host answering,
    # with the command's own deadline far away
    t0 = time.monotonic()
    rc, res, err = run_vm("deaf", opts=["--timeout", "600s"],
                          env={"AGENTD_GUEST_INITRD": hostile["hostile"]})
    assert rc == 125 and res is None, err
    assert b"stopped reading its port" in err, err
    assert time.monotonic() - t0 < 200  # a boot, then one send timeout (10 s)


def test_guest_that_never_says_hello(caps, hostile):
    # the probe boots the guest: one that never answers is no backend, said with why,
    # within the boot deadline (and its QEMU gone)
    t0 = time.monotonic()
    c = probe_caps(env={"AGENTD_GUEST_INITRD": hostile["nohello"],
                        "AGENTD_MICROVM_NO_CACHE": "1"})
    assert not c["available"] and "did not say HELLO" in c["reason"], c
    assert time.monotonic() - t0 < 150


def test_hostile_guest_does_not_hurt_the_daemon_or_its_neighbour(caps, hostile):
    d = EnvDaemon({"AGENTD_GUEST_INITRD": hostile["hostile"]}).start()
    try:
        bad = d.create("microvm")
        good = d.create("microvm")
        r = d.exec(bad, ["oversize"])
        assert r.status >= 400 and "protocol error" in r.body.decode(), r
        # the broken VM is gone at once: its QEMU killed
        assert wait_until(lambda: not qemu_pids_of(bad), timeout=20)
        assert d.exec(bad, ["ok", "x"]).status >= 400
        ok = d.exec(good, ["ok", "neighbour"])
        assert ok.status == 200 and ok.json["stdout"] == "neighbour", ok
        assert d.get("/v1/health").status == 200
    finally:
        d.cleanup()


def test_daemon_crash_leaves_no_vm(caps):
    d = EnvDaemon({}).start()
    try:
        sid = d.create("microvm")
        assert d.exec(sid, ["true"]).status == 200
        assert qemu_pids_of(sid)
        d.kill9()
        # the jail's init ends with its owner (its control socket's EOF), QEMU with its pid
        # namespace; the janitor removes the cgroup
        assert wait_until(lambda: not qemu_pids_of(sid), timeout=30)
        assert wait_until(lambda: sid not in agentd_cgroups(), timeout=30)
    finally:
        d.cleanup()
