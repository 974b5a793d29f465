"""agentd as an OCI runtime under real engines, each test once with runc (the reference the
tests were written against) and once with build/agentd-runc: podman (run --rm with the exit
code, run -d then exec, -it on a terminal, pause/unpause, stop/kill, rm -f, logs, top),
containerd's runc v2 shim through `ctr run --runc-binary` (the path a Kubernetes
RuntimeClass handler takes: import, run, exec, pause, kill, delete, a terminal) and a private
dockerd with the runtime registered by --add-runtime. Engine state is private to the test
module and torn down with a check that nothing is left (oci_engines.assert_no_trace)."""
import os
import re
import time

import pytest

from oci_engines import (CTR_IMAGE, IMAGE, RUNTIMES, Containerd, Dockerd, Podman, alive,
                         clean_after, make_rootfs_tar, on_terminal, poll, private_engine,
                         runtime_path)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the engines run as root here")


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory):
    return make_rootfs_tar(str(tmp_path_factory.mktemp("rt-rootfs")))


@pytest.fixture(params=RUNTIMES)
def runtime(request):
    return runtime_path(request.param)


@pytest.fixture(scope="module")
def podman_engine(rootfs_tar):
    yield from private_engine(Podman, rootfs_tar)


@pytest.fixture
def podman(podman_engine):
    yield from clean_after(podman_engine)


def init_pid(pm, rt, ctr):
    return int(pm.cli(rt, "inspect", "--format", "{{.State.Pid}}", ctr, check=True)
               .stdout.strip())


def status_of(pm, rt, ctr):
    return pm.cli(rt, "inspect", "--format", "{{.State.Status}}", ctr, check=True).stdout.strip()


# ------------------------------------------------------------------ podman
def test_podman_run_rm_exit_code(podman, runtime):
    r = podman.cli(runtime, "run", "--rm", *podman.run_opts(), IMAGE,
                   "sh", "-c", "echo out-$((6*7)); echo err >&2; exit 7")
    assert r.returncode == 7, r
    assert r.stdout == "out-42\n", r
    assert "err" in r.stderr
    assert podman.containers() == []


def test_podman_detach_exec_logs_top(podman, runtime):
    r = podman.cli(runtime, "run", "-d", *podman.run_opts(), IMAGE,
                   "sh", "-c", "echo hello-log; exec sleep 1000", check=True)
    ctr = r.stdout.strip()
    try:
        e = podman.cli(runtime, "exec", ctr, "sh", "-c", "echo in-exec $$; exit 3")
        assert e.returncode == 3 and e.stdout.startswith("in-exec "), e
        e = podman.cli(runtime, "exec", "-i", ctr, "cat", input="piped-in\n")
        assert e.returncode == 0 and e.stdout == "piped-in\n", e
        # the exec runs in the container's pid namespace: it sees the init as pid 1
        e = podman.cli(runtime, "exec", ctr, "cat", "/proc/1/cmdline", check=True)
        assert e.stdout.split("\0")[0] == "sleep", e
        poll(lambda: "hello-log" in podman.cli(runtime, "logs", ctr).stdout, what="logs")
        t = podman.cli(runtime, "top", ctr, "pid", "args", check=True).stdout
        assert re.search(r"^\s*1\s+sleep 1000", t, re.M), t
    finally:
        podman.cli(runtime, "rm", "-f", "--time=0", ctr)


def test_podman_terminal(podman, runtime):
    """-it: the container's stdio is a pty (the console socket's master), an interactive
    shell reads what is typed and its exit code comes back."""
    argv = podman.argv(runtime, "run", "--rm", "-it", *podman.run_opts(), IMAGE, "sh")
    rc, shown = on_terminal(argv, send=b"tty; echo mark-$((6*7)); exit 3\r", settle=3.0,
                            env=podman.env)
    assert rc == 3, shown
    assert "mark-42" in shown and re.search(r"/dev/pts/\d+", shown), shown


def test_podman_exec_terminal(podman, runtime):
    ctr = podman.cli(runtime, "run", "-d", *podman.run_opts(), IMAGE, "sleep", "1000",
                     check=True).stdout.strip()
    try:
        rc, shown = on_terminal(podman.argv(runtime, "exec", "-it", ctr, "sh", "-c",
                                            "tty; exit 4"), env=podman.env)
        assert rc == 4, shown
        assert re.search(r"/dev/pts/\d+", shown), shown
    finally:
        podman.cli(runtime, "rm", "-f", "--time=0", ctr)


def test_podman_pause_unpause(podman, runtime):
    ctr = podman.cli(runtime, "run", "-d", *podman.run_opts(), IMAGE, "sh", "-c",
                     "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
                     check=True).stdout.strip()
    try:
        pid = init_pid(podman, runtime, ctr)
        counter = f"/proc/{pid}/root/tmp/n"

        def count():
            try:
                with open(counter) as f:
                    return int(f.read().strip() or 0)
            except (OSError, ValueError):
                return 0

        poll(lambda: count() > 2, what="the container counting")
        podman.cli(runtime, "pause", ctr, check=True)
        assert status_of(podman, runtime, ctr) == "paused"
        time.sleep(0.3)
        frozen = count()
        time.sleep(1.0)
        assert count() == frozen, "the container ran while paused"
        podman.cli(runtime, "unpause", ctr, check=True)
        assert status_of(podman, runtime, ctr) == "running"
        poll(lambda: count() > frozen + 2, what="the container counting again")
    finally:
        podman.cli(runtime, "rm", "-f", "--time=0", ctr)


def test_podman_stop_kill(podman, runtime):
    # stop: SIGTERM (ignored by a pid 1 without a handler), then SIGKILL after the timeout
    ctr = podman.cli(runtime, "run", "-d", *podman.run_opts(), IMAGE, "sleep", "1000",
                     check=True).stdout.strip()
    try:
        pid = init_pid(podman, runtime, ctr)
        podman.cli(runtime, "stop", "--time=1", ctr, check=True)
        assert status_of(podman, runtime, ctr) == "exited"
        assert not alive(pid)
    finally:
        podman.cli(runtime, "rm", "-f", "--time=0", ctr)
    # kill with a signal the container handles: the exit code is the handler's
    ctr = podman.cli(runtime, "run", "-d", *podman.run_opts(), IMAGE, "sh", "-c",
                     "trap 'exit 42' USR1; echo ready; while :; do sleep 0.05; done",
                     check=True).stdout.strip()
    try:
        poll(lambda: "ready" in podman.cli(runtime, "logs", ctr).stdout, what="the trap")
        podman.cli(runtime, "kill", "--signal", "USR1", ctr, check=True)
        poll(lambda: status_of(podman, runtime, ctr) == "exited", what="exit after USR1")
        code = podman.cli(runtime, "inspect", "--format", "{{.State.ExitCode}}", ctr,
                          check=True).stdout.strip()
        assert code == "42"
    finally:
        podman.cli(runtime, "rm", "-f", "--time=0", ctr)


def test_podman_rm_force_running(podman, runtime):
    ctr = podman.cli(runtime, "run", "-d", *podman.run_opts(), IMAGE, "sleep", "1000",
                     check=True).stdout.strip()
    pid = init_pid(podman, runtime, ctr)
    r = podman.cli(runtime, "rm", ctr)
    assert r.returncode != 0, "rm of a running container without -f succeeded"
    podman.cli(runtime, "rm", "-f", "--time=0", ctr, check=True)
    assert ctr not in podman.containers()
    poll(lambda: not alive(pid), what="the init gone")


# ------------------------------------------------------------------ containerd
@pytest.fixture(scope="module")
def containerd(rootfs_tar):
    yield from private_engine(Containerd, rootfs_tar)


@pytest.fixture
def ctr(containerd):
    yield from clean_after(containerd)


def test_ctr_images_import(ctr):
    assert CTR_IMAGE in ctr.imported
    assert CTR_IMAGE in ctr.ctr("images", "ls", "-q", check=True).stdout.split()


def test_ctr_run_rm_exit_code(ctr, runtime):
    r = ctr.ctr(*ctr.run_argv(runtime, "--rm", CTR_IMAGE, "t-rm", "sh", "-c",
                              "echo out-$((6*7)); exit 5")[len(ctr.base):])
    assert r.returncode == 5, r
    assert r.stdout == "out-42\n", r
    assert ctr.containers() == []


def test_ctr_exec_pause_kill_delete(ctr, runtime):
    r = ctr.ctr(*ctr.run_argv(runtime, "-d", CTR_IMAGE, "t-long", "sleep", "1000")
                [len(ctr.base):])
    assert r.returncode == 0, r
    e = ctr.ctr("tasks", "exec", "--exec-id", "e1", "t-long", "sh", "-c",
                "echo in-exec; cat /proc/1/cmdline; exit 3")
    assert e.returncode == 3, e
    assert e.stdout.startswith("in-exec\nsleep\0"), e
    ps = ctr.ctr("tasks", "ps", "t-long", check=True).stdout
    pid = int(ctr.ctr("tasks", "ls", check=True).stdout.split("\n")[1].split()[1])
    assert str(pid) in ps, ps
    ctr.ctr("tasks", "pause", "t-long", check=True)
    assert "PAUSED" in ctr.ctr("tasks", "ls", check=True).stdout
    ctr.ctr("tasks", "resume", "t-long", check=True)
    assert "RUNNING" in ctr.ctr("tasks", "ls", check=True).stdout
    # a running task is not deleted without a kill
    assert ctr.ctr("tasks", "delete", "t-long").returncode != 0
    ctr.ctr("tasks", "kill", "-s", "SIGKILL", "t-long", check=True)
    poll(lambda: "STOPPED" in ctr.ctr("tasks", "ls").stdout, what="the task stopped")
    ctr.ctr("tasks", "delete", "t-long", check=True)
    ctr.ctr("containers", "rm", "t-long", check=True)
    assert not alive(pid)


def test_ctr_terminal(ctr, runtime):
    rc, shown = on_terminal(ctr.run_argv(runtime, "-t", "--rm", CTR_IMAGE, "t-tty", "sh",
                                         "-c", "tty; exit 4"), env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                                    "TERM": "xterm"})
    assert rc == 4, shown
    assert re.search(r"/dev/pts/\d+", shown), shown


# ------------------------------------------------------------------ docker
@pytest.fixture(scope="module")
def dockerd(rootfs_tar):
    yield from private_engine(Dockerd, rootfs_tar)


def docker_runtime(dockerd, runtime):
    if dockerd.why:
        pytest.skip(dockerd.why)
    return "rt-runc" if runtime.endswith("/runc") else "agentd-runc"


def test_docker_run_exec_rm(dockerd, runtime):
    name = docker_runtime(dockerd, runtime)
    r = dockerd.docker("run", "--rm", "--runtime", name, "--network", "none", IMAGE,
                       "sh", "-c", "echo out-$((6*7)); exit 6")
    assert r.returncode == 6 and r.stdout == "out-42\n", r
    c = dockerd.docker("run", "-d", "--runtime", name, "--network", "none", IMAGE,
                       "sleep", "1000", check=True).stdout.strip()
    try:
        e = dockerd.docker("exec", c, "sh", "-c", "echo in-exec; exit 3")
        assert e.returncode == 3 and e.stdout == "in-exec\n", e
        assert "sleep 1000" in dockerd.docker("top", c, check=True).stdout
    finally:
        dockerd.docker("rm", "-f", c, check=True)
    assert dockerd.docker("ps", "-a", "-q", check=True).stdout.strip() == ""


# ------------------------------------------------------------------ contrib/kubernetes
def test_contrib_kubernetes_registers_one_handler(tmp_path):
    """The RuntimeClass's handler is the runtime the containerd and CRI-O snippets
    register; containerd itself reads its snippet (config dump) with agentd-runc as the
    runc v2 shim's binary."""
    import subprocess
    import tomllib

    import yaml
    k8s = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                       "kubernetes")
    with open(os.path.join(k8s, "runtimeclass.yaml")) as f:
        rc = yaml.safe_load(f)
    assert rc["kind"] == "RuntimeClass" and rc["apiVersion"] == "node.k8s.io/v1"
    handler = rc["handler"]
    with open(os.path.join(k8s, "containerd-agentd.toml"), "rb") as f:
        snippet = f.read()
    rt = tomllib.loads(snippet.decode())["plugins"]["io.containerd.grpc.v1.cri"][
        "containerd"]["runtimes"][handler]
    assert rt["runtime_type"] == "io.containerd.runc.v2"
    assert rt["options"]["BinaryName"].endswith("/agentd-runc") and rt["options"]["Root"]
    with open(os.path.join(k8s, "crio-agentd.conf"), "rb") as f:
        crio = tomllib.load(f)["crio"]["runtime"]["runtimes"][handler]
    assert crio["runtime_path"].endswith("/agentd-runc") and crio["runtime_root"]
    assert "io.agentd.policy" in crio["allowed_annotations"]
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(b"version = 2\n" + snippet)
    r = subprocess.run(["containerd", "--config", str(cfg), "config", "dump"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f'runtimes.{handler}.options]' in r.stdout and "agentd-runc" in r.stdout, r.stdout


def test_podman_tmpfs_starts_with_the_images_content(podman, runtime):
    """issue 16: rt-gaps. podman's --tmpfs asks for tmpcopyup: the tmpfs over the image's
    /etc starts with its files (and podman's own binds land on it), writable."""
    r = podman.cli(runtime, "run", "--rm", "--tmpfs", "/etc:rw,size=1m", *podman.run_opts(),
                   IMAGE, "sh", "-c", "cat /etc/group; grep -c . /etc/hosts; "
                   "echo x > /etc/new && echo written; grep -c ' /etc tmpfs' /proc/mounts")
    assert r.returncode == 0, r
    lines = r.stdout.split("\n")
    assert lines[:2] == ["root:x:0:", "nogroup:x:65534:"], r.stdout
    assert "written" in lines and lines[-2] == "1", r.stdout
