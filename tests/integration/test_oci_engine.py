"""The oci backend's engine driver end to end, through podman (--runtime runc, its storage
under a temporary root) and docker (a dockerd the test starts on a private socket, data
root and exec root, with no bridge and no iptables change; skipped, with the reason, when
it cannot start). Both engines get their image from a rootfs tar the test makes (busybox)
with `import`: nothing is pulled."""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import AGENTD, PROBE, PROBE_DIR, agentd
from daemon_util import Daemon

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
APPLETS = ["sh", "sleep", "cat", "echo", "true", "false", "ls", "id", "ps", "kill", "touch",
           "head", "dd", "grep", "rm", "mkdir", "wc", "env"]
IMAGE = "agentd-test/busybox:1"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def make_rootfs_tar(tmp):
    root = os.path.join(tmp, "rootfs")
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev"):
        os.makedirs(os.path.join(root, d))
    os.chmod(os.path.join(root, "tmp"), 0o1777)  # as in every image (runc keeps its mode)
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", a))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    tar = os.path.join(tmp, "rootfs.tar")
    subprocess.run(["tar", "-C", root, "-cf", tar, "."], check=True)
    return tar


class Engine:
    """One engine as the tests use it: the backend name, the environment that points agentd
    (and the engine's CLI) at the test's engine, and the CLI for checks."""

    def __init__(self, name, env, cli):
        self.name = name
        self.env = env
        self.cli = cli

    def run(self, *cmd, opts=(), policy=None, json_out=True, timeout=120, input=None):
        pol = {"image": self.image_ref}
        pol.update(policy or {})
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(pol, f)
        try:
            args = ["run", "--backend", self.name, "--policy", path, "--ro", PROBE_DIR]
            if json_out:
                args.append("--json")
            if input is not None:
                args.append("-i")
            return agentd(*args, *opts, "--", *cmd, env=self.env, timeout=timeout, input=input)
        finally:
            os.unlink(path)

    def container_of(self, sid):
        out = subprocess.run([*self.cli, "ps", "-a", "-q", "--no-trunc", "--filter",
                              f"label=agentd.sandbox={sid}"], capture_output=True, text=True,
                             env={**os.environ, **self.env}, check=True).stdout
        return out.strip()

    def containers(self):
        """Every container (running or not) that carries agentd's sandbox label."""
        out = subprocess.run([*self.cli, "ps", "-a", "--filter", "label=agentd.sandbox",
                              "--format", "{{.ID}}"], capture_output=True, text=True,
                             env={**os.environ, **self.env}, check=True).stdout
        return out.split()


def cgroup_dirs(ctr_id):
    """The cgroups the engine's runtime made for a container (below agentd/)."""
    return glob.glob(f"/sys/fs/cgroup/*/agentd/*{ctr_id}")


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory):
    return make_rootfs_tar(str(tmp_path_factory.mktemp("oci-rootfs")))


@pytest.fixture(scope="module")
def podman(rootfs_tar):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (scripts/install-deps.sh installs it)")
    d = tempfile.mkdtemp(prefix="agentd-podman-", dir="/var/tmp")
    env = {"AGENTD_PODMAN_ROOT": os.path.join(d, "root"),
           "AGENTD_PODMAN_RUNROOT": os.path.join(d, "runroot")}
    cli = ["podman", "--root", env["AGENTD_PODMAN_ROOT"], "--runroot",
           env["AGENTD_PODMAN_RUNROOT"], "--runtime", "runc"]
    subprocess.run([*cli, "import", rootfs_tar, IMAGE], check=True, capture_output=True)
    e = Engine("podman", env, cli)
    e.image_ref = "localhost/" + IMAGE
    yield e
    subprocess.run([*cli, "rm", "-a", "-f", "--time=0"], capture_output=True)
    subprocess.run([*cli, "system", "reset", "--force"], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def start_dockerd(d):
    """dockerd on a private socket, data and exec root, with no bridge and no iptables or
    masquerading change: (process, socket) or (None, why)."""
    if not shutil.which("dockerd") or not shutil.which("docker"):
        return None, "dockerd or the docker CLI is not installed"
    sock = os.path.join(d, "docker.sock")
    log = open(os.path.join(d, "dockerd.log"), "wb")
    p = subprocess.Popen(["dockerd", "--host", "unix://" + sock,
                          "--data-root", os.path.join(d, "data"),
                          "--exec-root", os.path.join(d, "exec"),
                          "--pidfile", os.path.join(d, "dockerd.pid"),
                          "--bridge=none", "--iptables=false", "--ip6tables=false",
                          "--ip-masq=false", "--containerd-namespace", "agentd-test",
                          "--containerd-plugins-namespace", "agentd-test-plugins"],
                         stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    env = {**os.environ, "DOCKER_HOST": "unix://" + sock}
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        if subprocess.run(["docker", "info"], env=env, capture_output=True).returncode == 0:
            return p, sock
        time.sleep(0.5)
    p.terminate()
    p.wait(timeout=30)
    with open(os.path.join(d, "dockerd.log"), "rb") as f:
        tail = f.read().decode(errors="replace").strip().splitlines()[-3:]
    return None, "dockerd did not start: " + " | ".join(tail)


@pytest.fixture(scope="module")
def docker(rootfs_tar):
    d = tempfile.mkdtemp(prefix="agentd-dockerd-", dir="/var/tmp")
    p, sock = start_dockerd(d)
    if p is None:
        shutil.rmtree(d, ignore_errors=True)
        pytest.skip(sock)
    env = {"DOCKER_HOST": "unix://" + sock}
    cli = ["docker"]
    subprocess.run([*cli, "import", rootfs_tar, IMAGE], check=True, capture_output=True,
                   env={**os.environ, **env})
    e = Engine("docker", env, cli)
    e.image_ref = IMAGE
    yield e
    p.terminate()
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    subprocess.run(["umount", "-R", "-l", os.path.join(d, "data")], capture_output=True)
    subprocess.run(["umount", "-R", "-l", os.path.join(d, "exec")], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["podman", "docker"])
def engine(request):
    e = request.getfixturevalue(request.param)
    before = set(e.containers())
    yield e
    # no test leaves a container of agentd's behind
    assert set(e.containers()) <= before


def test_run_output_and_exit_code(engine):
    r = engine.run("/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.rc == 3, r
    assert r.json["stdout"] == "out\n" and r.json["stderr"] == "err\n", r
    assert r.json["backend"] == "oci"
    assert not engine.container_of(r.json["sandbox_id"])


def test_killed_by_a_signal_is_128_plus_n(engine):
    r = engine.run("/bin/sh", "-c", "kill -9 $$")
    assert r.rc == 137, r


def test_not_found(engine):
    r = engine.run("/no/such/program")
    # podman says 127; docker's CLI says 126 for any exec failure
    assert r.rc in (126, 127), r


def test_hardening_inside(engine):
    """No capability (CapEff 0), no_new_privs, a seccomp filter, the policy's user, a
    read-only root, no network but loopback, writable workdir and /tmp."""
    r = engine.run("/bin/sh", "-c",
                   "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
                   "id -u; id -g; touch /x 2>/dev/null && echo ROOT-WRITABLE; "
                   "cat /proc/net/dev | tail -n +3 | cut -d: -f1; touch f && echo WD-OK; "
                   "touch /tmp/t && echo TMP-OK; pwd")
    assert r.rc == 0, r
    out = r.json["stdout"]
    assert "CapEff:\t0000000000000000" in out, out
    assert "CapPrm:\t0000000000000000" in out and "CapBnd:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out
    assert "Seccomp:\t2" in out
    lines = out.split()
    assert "65534" in lines
    assert "ROOT-WRITABLE" not in out
    ifaces = [l.strip() for l in out.splitlines() if l.strip() in ("lo", "eth0")]
    assert ifaces == ["lo"], out
    assert "WD-OK" in out and "TMP-OK" in out
    assert out.strip().endswith("/workspace")


def test_network_none_blocks_egress(engine):
    r = engine.run(PROBE, "connect-tcp", "1.1.1.1", "53")
    assert r.json["stdout"].startswith("BLOCKED"), r


def test_environment_and_run_as(engine):
    r = engine.run("/bin/sh", "-c", "echo $FOO; id -u", policy={
        "environment": {"FOO": "bar baz"}, "run_as": {"uid": 1234, "gid": 1234}})
    assert r.rc == 0, r
    assert r.json["stdout"] == "bar baz\n1234\n", r


def test_wall_timeout_kills_the_tree(engine):
    t0 = time.monotonic()
    r = engine.run("/bin/sh", "-c", "sleep 300 & sleep 300 & sleep 300", opts=["--timeout", "2s"])
    assert r.rc == 124 and r.json["timed_out"] is True, r
    assert time.monotonic() - t0 < 60


def test_memory_limit_hit(engine):
    r = engine.run(PROBE, "mem-bomb", str(512 << 20), opts=["--memory", "32M"])
    assert r.json["stdout"].startswith("BLOCKED"), r
    assert r.json["limit_hit"] == "memory", r
    assert r.json["resource_limited"] is True


def test_pids_limit_hit(engine):
    r = engine.run(PROBE, "fork-bomb", "5", "200", opts=["--pids", "16"])
    assert r.json["stdout"].startswith("BLOCKED"), r
    assert r.json["limit_hit"] == "pids", r


def test_output_streams_as_it_comes(engine):
    """Without --json the command's output reaches agentd's stdout while it runs."""
    pol = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"image": engine.image_ref}, pol)
    pol.close()
    p = subprocess.Popen([AGENTD, "run", "--backend", engine.name, "--policy", pol.name, "--",
                          "/bin/sh", "-c", "echo first; sleep 4; echo second"],
                         stdout=subprocess.PIPE, env={"PATH": PATH_ENV, **engine.env})
    try:
        first = p.stdout.readline()
        t_first = time.monotonic()
        rest = p.stdout.read()
        t_end = time.monotonic()
        assert p.wait(timeout=60) == 0
    finally:
        os.unlink(pol.name)
    assert first == b"first\n" and rest == b"second\n"
    assert t_end - t_first > 2.5, "the first line came only with the end"


def test_allowlist_is_refused_not_dropped(engine):
    r = engine.run("/bin/true", policy={"network": {"mode": "allowlist",
                                                    "allow": ["127.0.0.1:80"]}})
    assert r.rc == 125, r
    assert b"allowlist" in r.stderr and b"--network=none" in r.stderr, r


def test_no_image_is_an_error(engine):
    r = agentd("run", "--backend", engine.name, "--", "/bin/true", env=engine.env)
    assert r.rc == 125 and b"image" in r.stderr, r


def test_session_through_the_daemon(engine):
    """Execs share the workdir; suspend pauses (exec is a conflict), resume; destroy leaves
    no container and no cgroup."""
    d = Daemon(prefix=["env", *[f"{k}={v}" for k, v in engine.env.items()]]).start()
    try:
        sid = d.create(engine.name, spec={"image": engine.image_ref})
        r = d.exec(sid, ["/bin/sh", "-c", "echo kept > f"])
        assert r.status == 200 and r.json["exit_code"] == 0, r
        r = d.exec(sid, ["/bin/cat", "f"])
        assert r.json["stdout"] == "kept\n", r
        assert r.json["resource_usage"]["peak_memory_bytes"] > 0
        assert d.post(f"/v1/sandboxes/{sid}/suspend").status == 200
        assert d.exec(sid, ["/bin/true"]).status == 409
        assert d.post(f"/v1/sandboxes/{sid}/resume").status == 200
        r = d.exec(sid, ["/bin/cat", "f"])
        assert r.json["stdout"] == "kept\n", r
        ctr = engine.container_of(sid)
        assert ctr and cgroup_dirs(ctr)
        assert d.delete(f"/v1/sandboxes/{sid}").status in (200, 204)
        assert not engine.container_of(sid)
        assert not cgroup_dirs(ctr), cgroup_dirs(ctr)
        # podman's conmon stays out of agentd's cgroups (its agentd/conmon outlived all)
        assert not glob.glob("/sys/fs/cgroup/*/agentd/conmon")
    finally:
        d.cleanup()


def test_leftovers_of_a_dead_owner_are_removed(engine):
    """A container whose agentd died (its owner label names a dead process) is removed, with
    its cgroups, by the next agentd that uses the engine."""
    d = Daemon(prefix=["env", *[f"{k}={v}" for k, v in engine.env.items()]], durable=True)
    d.start()
    try:
        sid = d.create(engine.name, spec={"image": engine.image_ref})
        ctr = engine.container_of(sid)
        d.kill9()
        assert ctr in engine.containers() or ctr[:12] in engine.containers()
        r = engine.run("/bin/true")
        assert r.rc == 0, r
        assert not engine.container_of(sid)
        assert not cgroup_dirs(ctr)
    finally:
        d.durable = False
        d.cleanup()
