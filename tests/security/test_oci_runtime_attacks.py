"""Attacks from inside a container agentd-runc runs (driven as an engine drives it): the
container's root cannot read host files outside its rootfs, cannot mount, cannot see or
ptrace the runtime's processes, holds no capability beyond the config's (clamped by the
floor), runs under seccomp with no_new_privs, inherits none of the runtime's fds (the exec
fifo, its fd dir of the host's /proc, the sync socket), and a symlink in the rootfs at a
mount target does not redirect a bind onto the host."""
import os
import shutil
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from ocirt_util import (RUNTIME, Runtime, become_subreaper, cmdline, make_bundle,  # noqa: E402
                        new_base, read_pid_file, reap, wait_for)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(RUNTIME),
                                reason="root and the built agentd-runc needed")

LOOP = ["sh", "-c", "while :; do sleep 0.1; done"]
ALLOWED = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_SETUID": 7,
           "CAP_SETGID": 6, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3}


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    become_subreaper()


@pytest.fixture
def running():
    """A started container: (runtime, id, init pid, base dir)."""
    made = []

    def start(args=LOOP, config_edit=None, setup=None):
        base = new_base()
        cid = "a-" + uuid.uuid4().hex[:12]
        bundle = make_bundle(base, args, config_edit=config_edit and (
            lambda cfg: config_edit(cfg, base)))
        if setup:
            setup(base, bundle)
        rt = Runtime(base)
        pid_file = os.path.join(base, "init.pid")
        made.append((rt, cid, base, pid_file))
        # an engine's own fd, open across the create (as conmon's sync pipes are)
        engine_r, engine_w = os.pipe()
        with open(os.path.join(base, "out"), "ab") as out:
            p = rt("create", "--bundle", bundle, "--pid-file", pid_file, cid,
                   stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(engine_w,))
        os.close(engine_r)
        os.close(engine_w)
        if p.returncode != 0:
            with open(rt.log, "rb") as f:
                return rt, cid, None, base, f.read()
        pid = read_pid_file(pid_file)
        rt.ok("start", cid)
        wait_for(lambda: cmdline(pid)[:1] == [args[0].encode()], what="start")
        return rt, cid, pid, base, b""
    yield start
    for rt, cid, base, pid_file in made:
        rt("delete", "--force", cid)
        if os.path.exists(pid_file):
            reap(read_pid_file(pid_file), timeout=5)
        shutil.rmtree(base, ignore_errors=True)


def inside(rt, cid, script):
    return rt("exec", cid, "sh", "-c", script, timeout=60)


def test_host_files_outside_the_rootfs_are_unreachable(running):
    marker = f"/ocirt-marker-{uuid.uuid4().hex[:8]}"
    with open(marker, "w") as f:
        f.write("host secret\n")
    try:
        rt, cid, pid, base, _ = running()
        for path in (marker, "/.." + marker, "/proc/1/root" + marker,
                     "/proc/self/cwd/../.." + marker, base + "/bundle/config.json"):
            p = inside(rt, cid, f"cat {path}")
            assert p.returncode != 0 and b"host secret" not in p.stdout, (path, p)
    finally:
        os.unlink(marker)


def test_the_containers_root_cannot_mount(running):
    rt, cid, pid, base, _ = running()
    for cmd in ("mount -t tmpfs none /mnt", "mount --bind / /mnt", "mount -t proc proc /mnt"):
        p = inside(rt, cid, cmd + " && echo MOUNTED")
        assert p.returncode != 0 and b"MOUNTED" not in p.stdout, (cmd, p)


def test_the_runtime_is_invisible_and_cannot_be_ptraced(running):
    rt, cid, pid, base, _ = running()
    # every process visible inside is the container's: no agentd-runc (the exec verb waiting
    # for this very process is in the host's pid namespace)
    p = inside(rt, cid, "for d in /proc/[0-9]*; do echo \"${d#/proc/} $(cat $d/cmdline | "
                        "tr '\\0' ' ')\"; done")
    assert p.returncode == 0, p
    assert b"agentd" not in p.stdout and b"runc" not in p.stdout, p.stdout
    pids = [int(ln.split()[0]) for ln in p.stdout.decode().splitlines() if ln.strip()]
    assert 1 in pids and max(pids) < 1000, pids
    # the runtime's own pid, as seen from the host, is no process inside
    p = inside(rt, cid, f"cat /proc/{os.getpid()}/status; ls /proc/{os.getpid()}/root/")
    assert b"Name:" not in p.stdout or b"pytest" not in p.stdout


def test_capabilities_stay_within_the_configs_set(running):
    rt, cid, pid, base, _ = running()
    mask = sum(1 << b for b in ALLOWED.values())
    with open(f"/proc/{pid}/status") as f:
        status = dict(ln.split(":", 1) for ln in f if ":" in ln)
    for field in ("CapBnd", "CapEff", "CapPrm"):
        v = int(status[field].strip(), 16)
        assert v & ~mask == 0, (field, hex(v))
        assert not v & (1 << 21), f"{field} holds CAP_SYS_ADMIN"
    p = inside(rt, cid, "grep -E '^Cap(Bnd|Eff|Prm|Amb)' /proc/self/status")
    for line in p.stdout.decode().splitlines():
        name, val = line.split(":")
        assert int(val.strip(), 16) & ~mask == 0, line


def test_seccomp_and_no_new_privs_hold_in_the_init_and_in_exec(running):
    rt, cid, pid, base, _ = running()
    with open(f"/proc/{pid}/status") as f:
        status = dict(ln.split(":", 1) for ln in f if ":" in ln)
    assert status["Seccomp"].strip() == "2" and status["NoNewPrivs"].strip() == "1"
    p = inside(rt, cid, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    got = dict(ln.split(":") for ln in p.stdout.decode().splitlines())
    assert got["Seccomp"].strip() == "2" and got["NoNewPrivs"].strip() == "1", p


def test_no_runtime_fd_reaches_the_container(running):
    """The init held the exec fifo, an fd dir of the host's /proc, the sync socket: none may
    survive into the user's process (a /proc fd dir of the host is a way out of the root)."""
    rt, cid, pid, base, _ = running()
    fds = sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
    assert fds == [0, 1, 2], [(n, os.readlink(f"/proc/{pid}/fd/{n}")) for n in fds]
    p = inside(rt, cid, "ls /proc/self/fd")
    assert sorted(int(n) for n in p.stdout.split()) in ([0, 1, 2], [0, 1, 2, 3]), p


def test_a_symlink_at_a_mount_target_does_not_redirect_the_bind_to_the_host(running):
    hostdir = new_base()		# a host dir outside the rootfs, the symlink's aim
    try:
        def setup(base, bundle):
            src = os.path.join(base, "src")
            os.makedirs(src)
            with open(os.path.join(src, "payload"), "w") as f:
                f.write("payload\n")
            os.symlink(hostdir, os.path.join(bundle, "rootfs", "data"))

        def edit(cfg, base):
            cfg["mounts"].append({"destination": "/data", "type": "bind",
                                  "source": os.path.join(base, "src"),
                                  "options": ["rbind", "ro"]})

        rt, cid, pid, base, log = running(config_edit=edit, setup=setup)
        with open("/proc/self/mountinfo") as f:
            assert hostdir not in f.read(), "a bind landed on the host's path"
        assert os.listdir(hostdir) == []
        if pid is None:
            assert log, "a refused create says why"
            return
        # inside, the symlink resolved within the rootfs: the bind is there, not on the host
        p = inside(rt, cid, f"cat /data/payload; cat {hostdir}/payload")
        assert b"payload" in p.stdout, p
        with open(f"/proc/{pid}/mountinfo") as f:
            targets = [ln.split()[4] for ln in f]
        assert all(not t.startswith(base) for t in targets), targets
    finally:
        shutil.rmtree(hostdir, ignore_errors=True)


def test_mount_points_the_image_lacks_are_not_made_through_its_symlinks(running):
    """The runtime makes an image's missing mount points as host root (rt-fix): a link of
    the image on the way (/data -> a host dir, a bind at /data/sub/f) must not make the
    runtime create anything outside the rootfs; the missing points it does make are in
    the rootfs (/etc/made-by-runtime)."""
    hostdir = new_base()
    try:
        def setup(base, bundle):
            os.symlink(hostdir, os.path.join(bundle, "rootfs", "data"))
            with open(os.path.join(base, "payload"), "w") as f:
                f.write("payload\n")

        def edit(cfg, base):
            for dest in ("/data/sub/f", "/etc/made-by-runtime"):
                cfg["mounts"].append({"destination": dest, "type": "bind",
                                      "source": os.path.join(base, "payload"),
                                      "options": ["bind", "ro"]})

        rt, cid, pid, base, log = running(config_edit=edit, setup=setup)
        assert os.listdir(hostdir) == [], "the runtime created through the image's symlink"
        assert pid is None and b"/data" in log, log   # refused: a symlink on a mount's path
        assert os.path.isfile(os.path.join(base, "bundle", "rootfs", "etc", "made-by-runtime"))
    finally:
        shutil.rmtree(hostdir, ignore_errors=True)



def test_device_nodes_of_the_image_cannot_be_opened(running):
    """An image may carry device nodes (an engine unpacks its layers as host root, and the
    rootfs's superblock, even rebuilt from idmapped layers, is the host's): a world-writable
    node in the rootfs must not open. The node here has /dev/null's numbers, which every
    device list allows (and a config may ask for no device cgroup at all): what stops it is
    the rootfs mounted nodev, checked also in the container's mountinfo. Without it the
    write went through (a node of a host disk would have too, where no device filter is)."""
    def setup(base, bundle):
        node = os.path.join(bundle, "rootfs", "hostnull")
        os.mknod(node, 0o666 | __import__("stat").S_IFCHR, os.makedev(1, 3))
        os.chmod(node, 0o666)

    rt, cid, pid, base, log = running(setup=setup)
    assert pid, log
    p = inside(rt, cid, "echo x > /hostnull && echo OPENED; "
                        "awk '$5 == \"/\" {print $6}' /proc/self/mountinfo")
    out = p.stdout.decode()
    assert "OPENED" not in out, out
    root_opts = out.split()[-1].split(",") if out.split() else []
    assert "nodev" in root_opts, out


def test_the_device_cgroup_denies_all_but_the_default_nodes_without_the_configs_rule(running):
    """A config with no linux.resources.devices (a raw bundle, an engine that writes none)
    still gets the floor's device list on a cgroup v1 host: deny all, then only the default
    /dev's nodes."""
    def edit(cfg, base):
        cfg.get("linux", {}).get("resources", {}).pop("devices", None)

    rt, cid, pid, base, log = running(config_edit=edit)
    assert pid, log
    with open(f"/proc/{pid}/cgroup") as f:
        rel = [ln.split(":", 2)[2].strip() for ln in f if ln.split(":")[1] == "devices"]
    if not rel:
        pytest.skip("no cgroup v1 devices controller on this host")
    with open(f"/sys/fs/cgroup/devices{rel[0]}/devices.list") as f:
        rules = f.read().split("\n")
    assert "a *:* rwm" not in rules, rules
    assert "c 1:3 rwm" in rules, rules
# ------------------------------------------------------------------ issue 16: rt-gaps
def _run(rt, bundle, cid, base):
    """`run` (create, start, wait, delete) of the bundle: the exit status and the log."""
    with open(os.path.join(base, "out"), "ab") as out:
        p = rt("run", "--bundle", bundle, cid, stdin=subprocess.DEVNULL, stdout=out,
               stderr=out, timeout=120)
    try:
        with open(rt.log, "rb") as f:
            return p.returncode, f.read()
    except FileNotFoundError:	# nothing logged
        return p.returncode, b""


def test_tmpcopyup_copies_a_planted_link_as_a_link_and_a_deep_tree_fails(running):
    """A container writes links to host paths and a tree deeper than the copy's bound into
    its rootfs; the next run of the image mounts a tmpfs with tmpcopyup over them. The copy
    (made before the pivot, when the host's root is still the init's) must copy the links as
    links, never the host files they name, and refuse the deep tree rather than recurse
    without end."""
    hostdir = new_base()
    with open(os.path.join(hostdir, "secret"), "w") as f:
        f.write("HOSTSECRET\n")
    base = new_base()
    try:
        rt = Runtime(base)
        plant = (f"busybox mkdir -p /cu /deep && busybox ln -s {hostdir}/secret /cu/leak && "
                 f"busybox ln -s {hostdir} /cu/leakdir && busybox mkfifo /cu/fifo && "
                 "cd /deep && i=0; while [ $i -lt 80 ]; do busybox mkdir d && cd d; "
                 "i=$((i+1)); done")
        bundle = make_bundle(base, ["sh", "-c", plant])
        rc, log = _run(rt, bundle, "a-plant-" + uuid.uuid4().hex[:8], base)
        assert rc == 0, log
        rootfs = os.path.join(bundle, "rootfs")
        assert os.readlink(os.path.join(rootfs, "cu", "leak")) == f"{hostdir}/secret"

        def copyup(dest):
            return lambda cfg: cfg["mounts"].append(
                {"destination": dest, "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "nodev", "mode=755", "tmpcopyup"]})
        look = ("cat /cu/leak /cu/leakdir/secret > /tmp/r 2>&1; cat /tmp/r; "
                "readlink /cu/leak; readlink /cu/leakdir; test -p /cu/fifo && echo fifo-kept")
        bundle = make_bundle(base, ["sh", "-c", look], config_edit=copyup("/cu"))
        open(os.path.join(base, "out"), "w").close()
        rc, log = _run(rt, bundle, "a-look-" + uuid.uuid4().hex[:8], base)
        with open(os.path.join(base, "out"), "rb") as f:
            out = f.read()
        assert rc == 0, (out, log)
        assert b"HOSTSECRET" not in out, out
        assert f"{hostdir}/secret\n{hostdir}\nfifo-kept".encode() in out, out
        bundle = make_bundle(base, ["true"], config_edit=copyup("/deep"))
        rc, log = _run(rt, bundle, "a-deep-" + uuid.uuid4().hex[:8], base)
        assert rc != 0 and b"/deep" in log, log
        with open("/proc/self/mountinfo") as f:
            assert base not in f.read()
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(hostdir, ignore_errors=True)
