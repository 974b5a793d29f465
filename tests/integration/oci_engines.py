"""The engines that call an OCI runtime, as the runtime's tests drive them: podman (its own
storage root, cgroupfs, the runtime by path), containerd from Debian started on a private
socket, root and state (the runc v2 shim with --runc-binary, as a Kubernetes RuntimeClass
handler runs it) and a private dockerd (--add-runtime). Images are built here from
busybox-static (and the project's static sbxprobe) and imported: nothing is pulled.

Every engine's state lives in a directory of its own with a cgroup parent of its own; the
fixtures' teardown removes containers, stops the engine and asserts that nothing is left:
no process naming the directory, no mount below it, no cgroup below the parent.

The runtimes: runc (the reference) and build/agentd-runc (agentd's runc-compatible command
line); a test parametrized by RUNTIMES runs against both."""
import glob
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid

import pytest

from ocirt_util import wait_for as poll  # noqa: F401 (the engine tests' too)

BUILD = os.path.abspath(os.environ.get("AGENTD_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
PROBE = os.path.join(BUILD, "tests", "sbxprobe")
AGENTD_RUNC = os.path.join(BUILD, "agentd-runc")
RUNC = shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/runc"
RUNTIMES = ["runc", "agentd-runc"]
BUSYBOX = shutil.which("busybox", path="/usr/bin:/bin") or "/bin/busybox"
APPLETS = ["sh", "sleep", "cat", "echo", "true", "false", "ls", "id", "ps", "kill", "touch",
           "tty", "stty", "timeout", "env", "mkdir", "rm", "grep", "head", "wc", "test",
           "wget", "nc", "ping", "ip"]  # issue 16: rt-egress
IMAGE = "localhost/agentd-rt/busybox:1"       # podman, docker
CTR_IMAGE = "docker.io/agentd-rt/busybox:1"   # containerd (a normalized reference)
PATH_ENV = "/usr/sbin:/usr/bin:/sbin:/bin"
CG_ROOT = "/sys/fs/cgroup"


def runtime_path(name):
    """The runtime binary for a RUNTIMES name; skips (with the reason) when it is absent."""
    if os.geteuid() != 0:
        pytest.skip("the engines run as root here")
    if name == "runc":
        if not os.access(RUNC, os.X_OK):
            pytest.skip("runc is not installed (scripts/install-deps.sh installs it)")
        return RUNC
    if not os.access(AGENTD_RUNC, os.X_OK):
        pytest.skip(f"{AGENTD_RUNC} is not built")
    return AGENTD_RUNC


# ------------------------------------------------------------------ images
def make_rootfs(root):
    """A busybox-static root with /sbxprobe (the security suite's attack program)."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", a))
    if os.path.exists(PROBE):
        shutil.copy(PROBE, os.path.join(root, "sbxprobe"))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return root


def make_rootfs_tar(tmp):
    root = make_rootfs(os.path.join(tmp, "rootfs"))
    tar = os.path.join(tmp, "rootfs.tar")
    subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", tar, "."], check=True)
    return tar


def make_oci_layout_tar(rootfs_tar, out, ref):
    """An OCI image layout (one uncompressed layer: the rootfs tar) in a tar, for
    `ctr images import`; ref names it (org.opencontainers.image.ref.name)."""
    d = out + ".d"
    os.makedirs(os.path.join(d, "blobs", "sha256"))

    def blob(data):
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(d, "blobs", "sha256", h), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + h, "size": len(data)}

    with open(rootfs_tar, "rb") as f:
        layer = blob(f.read())
    config = blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=" + PATH_ENV], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
    manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]}).encode())
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
            "annotations": {"org.opencontainers.image.ref.name": ref,
                            "io.containerd.image.name": ref}}]}, f)
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with tarfile.open(out, "w") as t:
        for n in ("oci-layout", "index.json", "blobs"):
            t.add(os.path.join(d, n), n)
    shutil.rmtree(d)
    return out


# ------------------------------------------------------------ leaving no trace
def procs_naming(token):
    """pids whose command line names token (an engine's private directory)."""
    out = []
    for p in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(p, "rb") as f:
                if token.encode() in f.read():
                    out.append(int(p.split("/")[2]))
        except OSError:
            pass
    return [p for p in out if p != os.getpid()]


def mounts_below(d):
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(d)]


def cgroups_of(parent):
    """The directories of the cgroup parent (a name below the root of every hierarchy)."""
    return glob.glob(os.path.join(CG_ROOT, "*", parent)) + \
        glob.glob(os.path.join(CG_ROOT, "*", "*", parent))


def remove_cgroups(parent):
    for top in cgroups_of(parent):
        for dirpath, dirs, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def unmount_below(d):
    for m in sorted(mounts_below(d), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


def alive(pid):
    """pid runs (not a zombie). A runtime may make the container's processes the caller's
    children (agentd-runc's CLONE_PARENT, as conmon and the shim want): reap ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in pids if alive(p)]
        if not pids:
            return []
        time.sleep(0.1)
    return pids


def stop_daemon(proc, log, d, cgparent, timeout=60):
    """Stop an engine daemon (SIGTERM, then SIGKILL), then remove what it may have left:
    a process naming its directory (a shim that outlived it), mounts, cgroups, the
    directory."""
    if proc is not None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        for p in wait_gone(procs_naming(d), timeout=10):
            os.kill(p, signal.SIGKILL)
    unmount_below(d)
    remove_cgroups(cgparent)
    shutil.rmtree(d, ignore_errors=True)


def assert_no_trace(d, cgparent):
    """Nothing of an engine's run is left: processes, mounts, cgroups, the directory."""
    left = wait_gone(procs_naming(d))
    assert not left, f"processes naming {d} are left: {left}"
    assert not mounts_below(d), f"mounts below {d} are left: {mounts_below(d)}"
    assert not cgroups_of(cgparent), f"cgroups are left: {cgroups_of(cgparent)}"
    assert not os.path.exists(d), f"{d} is left"


def private_engine(cls, rootfs_tar):
    """A module fixture's body: the engine, then its teardown and the no-trace check."""
    e = cls(rootfs_tar)
    yield e
    e.close()
    assert_no_trace(e.dir, e.cgparent)


def clean_after(engine):
    """A test fixture's body: the engine, then no container of the test may be left."""
    yield engine
    left = engine.containers()
    engine.remove_all()
    assert not left, f"a test left containers: {left}"


# ------------------------------------------------------------------ a terminal
def on_terminal(argv, send=b"", timeout=60, env=None, settle=0.0):
    """Run argv on a fresh pty (the engine's client sees a terminal); write send after
    settle seconds; returns (exit status, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env or os.environ)
        finally:
            os._exit(127)
    buf = b""
    deadline = time.monotonic() + timeout
    sent = not send
    t0 = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if not sent and time.monotonic() - t0 >= settle:
                os.write(fd, send)
                sent = True
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    b = os.read(fd, 4096)
                except OSError:
                    break
                if not b:
                    break
                buf += b
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), buf.decode(errors="replace")


# ------------------------------------------------------------------ podman
class Podman:
    """podman with storage under d, cgroupfs below its own cgroup parent, and the runtime
    given by path (podman needs --runtime here: crun refuses the cgroup v1 layout)."""

    def __init__(self, rootfs_tar):
        self.token = "agentd-rt-" + uuid.uuid4().hex[:10]
        self.dir = tempfile.mkdtemp(prefix=self.token + "-", dir="/var/tmp")
        self.cgparent = self.token
        self.base = ["podman", "--root", os.path.join(self.dir, "root"),
                     "--runroot", os.path.join(self.dir, "run"),
                     "--tmpdir", os.path.join(self.dir, "tmp"),
                     "--cgroup-manager", "cgroupfs",
                     # the runtime's state in the private directory, not its default root
                     "--runtime-flag", "root=" + os.path.join(self.dir, "runtime-root")]
        self.env = {"PATH": PATH_ENV, "HOME": self.dir, "XDG_RUNTIME_DIR":
                    os.path.join(self.dir, "xdg"), "TERM": "xterm"}
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700)
        self.cli(RUNC, "import", rootfs_tar, IMAGE, check=True)

    def argv(self, runtime, *args):
        return [*self.base, "--runtime", runtime, *args]

    def cli(self, runtime, *args, check=False, timeout=120, input=None):
        return subprocess.run(self.argv(runtime, *args), capture_output=True, text=True,
                              env=self.env, check=check, timeout=timeout, input=input)

    def run_opts(self):
        """what every container gets: no network, explicit ulimits (root without
        CAP_SYS_RESOURCE here cannot raise the hard limits podman would set), the
        cgroup parent the teardown checks"""
        return ["--network=none", "--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024",
                f"--cgroup-parent=/{self.cgparent}"]

    def containers(self):
        r = self.cli(RUNC, "ps", "-a", "-q", check=True)
        return r.stdout.split()

    def remove_all(self):
        self.cli(RUNC, "rm", "-a", "-f", "--time=0")

    def close(self):
        self.remove_all()
        self.cli(RUNC, "system", "reset", "--force")
        unmount_below(self.dir)
        remove_cgroups(self.cgparent)
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ containerd
class Containerd:
    """containerd from Debian on a private socket, root and state (no CRI plugin), one
    namespace of its own (which is also the containers' cgroup parent)."""

    def __init__(self, rootfs_tar):
        self.token = "agentd-rt-" + uuid.uuid4().hex[:10]
        self.dir = tempfile.mkdtemp(prefix=self.token + "-", dir="/var/tmp")
        self.ns = self.cgparent = self.token
        self.sock = os.path.join(self.dir, "containerd.sock")
        cfg = os.path.join(self.dir, "config.toml")
        with open(cfg, "w") as f:
            f.write(f"""version = 2
root = "{self.dir}/root"
state = "{self.dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
""")
        self.log = open(os.path.join(self.dir, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", cfg], stdout=self.log,
                                     stderr=self.log, env={"PATH": PATH_ENV})
        self.base = ["ctr", "--address", self.sock, "--namespace", self.ns]
        try:
            poll(lambda: self.proc.poll() is not None or
                 subprocess.run([*self.base, "version"], capture_output=True).returncode == 0,
                 timeout=60, what="containerd's socket")
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited: " + self.log_tail())
            oci = make_oci_layout_tar(rootfs_tar, os.path.join(self.dir, "image.tar"),
                                      CTR_IMAGE)
            self.imported = self.ctr("images", "import", oci, check=True).stdout
        except BaseException:
            self.close()
            raise

    def log_tail(self):
        with open(os.path.join(self.dir, "containerd.log"), "rb") as f:
            return " | ".join(f.read().decode(errors="replace").splitlines()[-3:])

    def ctr(self, *args, check=False, timeout=120, input=None):
        return subprocess.run([*self.base, *args], capture_output=True, text=True,
                              check=check, timeout=timeout, input=input,
                              env={"PATH": PATH_ENV})

    def run_argv(self, runtime, *args):
        """`ctr run` through the runc v2 shim with the runtime by path and its state below
        the private directory (without --runc-root the shim uses /run/containerd/runc)."""
        return [*self.base, "run", "--runc-binary", runtime,
                "--runc-root", os.path.join(self.dir, "runc-root"), *args]

    def tasks(self):
        return self.ctr("tasks", "ls", "-q", check=True).stdout.split()

    def containers(self):
        return self.ctr("containers", "ls", "-q", check=True).stdout.split()

    def remove_all(self):
        for t in self.tasks():
            self.ctr("tasks", "kill", "-s", "SIGKILL", t)
            poll(lambda: self.ctr("tasks", "delete", t).returncode == 0 or
                 t not in self.tasks(), what=f"task {t} deleted")
        for c in self.containers():
            self.ctr("containers", "rm", c)

    def close(self):
        try:
            if self.proc.poll() is None:
                self.remove_all()
        finally:
            # the shims exit with their last task; one that did not is this run's
            stop_daemon(self.proc, self.log, self.dir, self.cgparent)


# ------------------------------------------------------------------ dockerd
class Dockerd:
    """dockerd on a private socket, data and exec root, with no bridge and no iptables
    change, both runtimes registered (--add-runtime); its containers below a cgroup parent
    of their own."""

    def __init__(self, rootfs_tar):
        self.token = "agentd-rt-" + uuid.uuid4().hex[:10]
        self.dir = tempfile.mkdtemp(prefix=self.token + "-", dir="/var/tmp")
        self.cgparent = self.token
        self.proc = None
        if not shutil.which("dockerd") or not shutil.which("docker"):
            self.why = "dockerd or the docker CLI is not installed"
            return
        self.sock = os.path.join(self.dir, "docker.sock")
        self.env = {"PATH": PATH_ENV, "DOCKER_HOST": "unix://" + self.sock,
                    "HOME": self.dir, "DOCKER_CONFIG": os.path.join(self.dir, "cli")}
        self.log = open(os.path.join(self.dir, "dockerd.log"), "wb")
        runtimes = [f"--add-runtime=agentd-runc={AGENTD_RUNC}"] if \
            os.access(AGENTD_RUNC, os.X_OK) else []
        # dockerd gives every container a prestart hook (libnetwork-setkey, even with
        # --network none): agentd's floor refuses hooks unless the operator allows them, as
        # an operator registering agentd-runc with docker does (the operator file, which
        # dockerd's containerd and shim pass down to the runtime in the environment)
        operator = os.path.join(self.dir, "oci-runtime.json")
        with open(operator, "w") as f:
            json.dump({"allow": {"hooks": True}}, f)
        self.proc = subprocess.Popen(
            ["dockerd", "--host", "unix://" + self.sock,
             "--data-root", os.path.join(self.dir, "data"),
             "--exec-root", os.path.join(self.dir, "exec"),
             "--pidfile", os.path.join(self.dir, "dockerd.pid"),
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--cgroup-parent", "/" + self.cgparent,
             "--containerd-namespace", self.token,
             "--containerd-plugins-namespace", self.token + "-plugins",
             "--add-runtime", f"rt-runc={RUNC}", *runtimes],
            stdout=self.log, stderr=self.log,
            env={"PATH": PATH_ENV, "AGENTD_RUNTIME_CONFIG": operator})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.docker("info").returncode == 0:
                self.why = None
                self.docker("import", rootfs_tar, IMAGE, check=True)
                return
            time.sleep(0.5)
        with open(os.path.join(self.dir, "dockerd.log"), "rb") as f:
            tail = f.read().decode(errors="replace").strip().splitlines()[-3:]
        self.why = "dockerd did not start: " + " | ".join(tail)

    def docker(self, *args, check=False, timeout=120):
        return subprocess.run(["docker", *args], capture_output=True, text=True,
                              env=self.env, check=check, timeout=timeout)

    def close(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                ids = self.docker("ps", "-a", "-q").stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids)
        finally:
            stop_daemon(self.proc, getattr(self, "log", None), self.dir, self.cgparent)
