"""agentd as an OCI runtime on an engine's overlayfs rootfs (podman's and containerd's): the
overlay cannot be idmapped, so the runtime rebuilds it from its layers idmapped through the
container's user namespace. The container's root then owns the image's files as under runc:
it appends to them, chowns them, creates in /etc; the writes land in the engine's upperdir
with the container's ids (root as 0 on disk, trusted.overlay.* xattrs as the engine's own
mount reads them), the lower layers stay as they were, another container of the image sees
the original files, and nothing is mounted on the host besides the engine's own overlay,
during the run or after a delete or a failed create.

The raw tests build the bundle as an engine does (layers, an upperdir and workdir, the overlay
mounted at the bundle's rootfs, lowerdir paths with a space and an escaped colon); the engine
tests run the same with podman (its --rm containers' overlays are volatile) and containerd's
overlayfs snapshotter, once with runc (the reference) and once with agentd-runc."""
import os
import shutil
import subprocess
import uuid

import pytest

from oci_engines import CTR_IMAGE, IMAGE, RUNC
from test_oci_runtime_engines import (containerd, ctr, podman, podman_engine,  # noqa: F401
                                      rootfs_tar, runtime)
from ocirt_util import RUNTIME, Runtime, become_subreaper, cgroup_dirs, make_bundle, new_base

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(RUNTIME),
                                reason="root and the built agentd-runc needed")

WRITE = ("echo appended >> /etc/passwd && chown 5:6 /etc/group && mkdir -p /etc/new && "
         "echo made > /etc/new/f && rm -r /etc/gone && mkdir /etc/gone && touch /etc/gone/y && "
         "stat -c %u:%g /etc/passwd /etc/group /etc/new/f")
CGPARENT = "/ocirt-overlay-test"


def overlay_lines(path):
    """The host's mountinfo lines that name path."""
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if path in l]


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    become_subreaper()
    yield
    for d in cgroup_dirs(CGPARENT):
        os.rmdir(d)


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """The image: a busybox layer (root-owned, as an engine unpacks it) below a layer of /etc
    files, in directories whose names need escaping in mountinfo and in lowerdir."""
    d = str(tmp_path_factory.mktemp("ovl-image"))
    os.chmod(d, 0o755)
    bottom = os.path.join(d, "layer 0")
    os.rename(os.path.join(make_bundle(os.path.join(d, "b"), ["true"]), "rootfs"), bottom)
    shutil.rmtree(os.path.join(d, "b"))
    for applet in ("chown", "mkdir", "rm"):
        os.symlink("busybox", os.path.join(bottom, "bin", applet))
    top = os.path.join(d, "layer:1")
    os.makedirs(os.path.join(top, "etc", "gone"))
    for name, text in (("passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("group", "root:x:0:\n"),
                       ("gone/x", "x\n")):
        with open(os.path.join(top, "etc", name), "w") as f:
            f.write(text)
    return [top, bottom]


class OverlayContainer:
    """A container on an overlay rootfs as an engine hands it over: upper and work below the
    container's own directory, the overlay mounted at the bundle's rootfs."""

    def __init__(self, layers, args, upper=None, config_edit=None):
        self.base = new_base()
        self.id = "ovl-" + uuid.uuid4().hex[:12]
        self.cgroup = f"{CGPARENT}/{self.id}"

        def edit(cfg):
            cfg["linux"]["cgroupsPath"] = self.cgroup
            if config_edit:
                config_edit(cfg)
        self.bundle = make_bundle(self.base, args, config_edit=edit)
        self.rootfs = os.path.join(self.bundle, "rootfs")
        shutil.rmtree(self.rootfs)
        os.mkdir(self.rootfs)
        self.ovl = upper or os.path.join(self.base, "ovl")
        self.upper = os.path.join(self.ovl, "diff")
        os.makedirs(self.upper, exist_ok=True)
        os.makedirs(os.path.join(self.ovl, "work"), exist_ok=True)
        self.lowerdir = ":".join(l.replace(":", "\\:") for l in layers)
        self.mount_engine_overlay()
        self.rt = Runtime(self.base)

    def mount_engine_overlay(self):
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.lowerdir},upperdir={self.upper},"
                        f"workdir={self.ovl}/work,index=off", self.rootfs], check=True)

    def run(self, *extra):
        return self.rt("run", "--bundle", self.bundle, *extra, self.id,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)

    def close(self):
        self.rt("delete", "--force", self.id)
        subprocess.run(["umount", "-l", self.rootfs], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def container(layers):
    made = []

    def make(*a, **kw):
        c = OverlayContainer(layers, *a, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def owner(path):
    st = os.lstat(path)
    return f"{st.st_uid}:{st.st_gid}"


def read(path):
    with open(path) as f:
        return f.read()


def test_container_root_writes_image_files_into_the_upperdir_as_id_0(container, layers):
    c = container(["sh", "-c", WRITE])
    p = c.run()
    assert p.returncode == 0, (p, read(c.rt.log))
    assert p.stdout == b"0:0\n5:6\n0:0\n", p
    # on the host: the engine's upperdir, with the container's ids as runc stores them
    assert read(os.path.join(c.upper, "etc", "passwd")).endswith("/bin/sh\nappended\n")
    assert owner(os.path.join(c.upper, "etc", "passwd")) == "0:0"
    assert owner(os.path.join(c.upper, "etc", "group")) == "5:6"
    assert owner(os.path.join(c.upper, "etc", "new", "f")) == "0:0"
    assert owner(os.path.join(c.upper, "etc", "new")) == "0:0"
    # the lower layers are untouched
    assert read(os.path.join(layers[0], "etc", "passwd")) == "root:x:0:0:root:/root:/bin/sh\n"
    assert owner(os.path.join(layers[0], "etc", "group")) == "0:0"
    assert os.listdir(os.path.join(layers[0], "etc", "gone")) == ["x"]
    assert not os.path.exists(os.path.join(layers[0], "etc", "new"))
    # the rootfs the runtime built lived in the container's mount namespace only: the host
    # has the engine's overlay and nothing else of the container
    assert len(overlay_lines(c.base)) == 1, overlay_lines(c.base)
    assert not os.path.exists(os.path.join(c.rt.root, c.id))


def test_the_engines_own_mount_reads_the_upperdir_as_the_container_left_it(container):
    """What `podman diff`, `commit` and a restart read: the upperdir through the engine's
    overlay (trusted.overlay.* whiteouts and opaque dirs the engine understands)."""
    c = container(["sh", "-c", WRITE])
    assert c.run().returncode == 0
    subprocess.run(["umount", c.rootfs], check=True)   # a fresh mount, no cached view
    c.mount_engine_overlay()
    etc = os.path.join(c.rootfs, "etc")
    assert read(os.path.join(etc, "passwd")).endswith("/bin/sh\nappended\n")
    assert owner(os.path.join(etc, "group")) == "5:6"
    assert read(os.path.join(etc, "new", "f")) == "made\n"
    assert os.listdir(os.path.join(etc, "gone")) == ["y"]     # opaque: the image's x hidden


def test_a_second_container_of_the_image_sees_the_original_files(container):
    first = container(["sh", "-c", WRITE])
    assert first.run().returncode == 0
    second = container(["sh", "-c", "cat /etc/passwd; stat -c %u:%g /etc/group; ls /etc/gone; "
                        "test -e /etc/new || echo no-new"])
    p = second.run()
    assert p.returncode == 0, p
    assert p.stdout == b"root:x:0:0:root:/root:/bin/sh\n0:0\nx\nno-new\n", p


def test_a_restart_on_the_same_upperdir_keeps_the_writes(container):
    first = container(["sh", "-c", WRITE])
    assert first.run().returncode == 0
    again = container(["sh", "-c", "cat /etc/passwd /etc/new/f; stat -c %u:%g /etc/group; "
                       "ls /etc/gone"], upper=first.ovl)
    p = again.run()
    assert p.returncode == 0, (p, read(again.rt.log))
    assert p.stdout == b"root:x:0:0:root:/root:/bin/sh\nappended\nmade\n5:6\ny\n", p


def test_a_failed_create_leaves_no_mount(container):
    def bad_mount(cfg):	# fails in the init, after the rootfs was rebuilt
        cfg["mounts"].append({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=not-a-size"]})
    c = container(["true"], config_edit=bad_mount)
    p = c.rt("create", "--bundle", c.bundle, c.id, stdin=subprocess.DEVNULL,
             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode != 0, p
    assert len(overlay_lines(c.base)) == 1, overlay_lines(c.base)
    assert not os.path.exists(os.path.join(c.rt.root, c.id))
    assert cgroup_dirs(c.cgroup) == []


# ------------------------------------------------------------------ podman, containerd
# the engine fixtures are test_oci_runtime_engines.py's (a private engine per module)
def upperdir(pm, ctr):
    return pm.cli(RUNC, "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", ctr,
                  check=True).stdout.strip()


def test_podman_container_root_owns_the_images_files(podman, runtime):
    """podman run IMG sh -c 'echo x >> /etc/passwd; chown ...': as under runc. The write in
    the container's upperdir as 0:0, `podman diff` and `commit` see it, another container of
    the image sees the original, nothing stays mounted after rm. (A restart on the same
    upperdir: the raw test above; `podman start` of an exited container here needs the
    cleanup conmon's exit command runs without this podman's private --root flags.)"""
    write = ("echo appended >> /etc/passwd && busybox chown 5:6 /etc/group && "
             "mkdir -p /etc/new && echo made > /etc/new/f && "
             "busybox stat -c %u:%g /etc/passwd /etc/group /etc/new/f")
    name = "ovl-" + uuid.uuid4().hex[:8]
    r = podman.cli(runtime, "run", "--name", name, *podman.run_opts(), IMAGE, "sh", "-c", write)
    assert r.returncode == 0, r
    assert r.stdout == "0:0\n5:6\n0:0\n", r
    upper = upperdir(podman, name)
    assert owner(os.path.join(upper, "etc", "passwd")) == "0:0"
    assert owner(os.path.join(upper, "etc", "group")) == "5:6"
    assert read(os.path.join(upper, "etc", "passwd")).endswith("appended\n")
    diff = podman.cli(runtime, "diff", name, check=True).stdout.split("\n")
    assert "C /etc/passwd" in diff and "A /etc/new/f" in diff, diff
    image = "localhost/agentd-rt/ovl-commit:" + name
    podman.cli(runtime, "commit", "-q", name, image, check=True)
    try:
        r = podman.cli(runtime, "run", "--rm", *podman.run_opts(), image, "sh", "-c",
                       "grep -c appended /etc/passwd; busybox stat -c %u:%g /etc/group")
        assert r.returncode == 0 and r.stdout == "1\n5:6\n", r
    finally:
        podman.cli(RUNC, "rmi", "-f", image)
    r = podman.cli(runtime, "run", "--rm", *podman.run_opts(), IMAGE, "sh", "-c",
                   "grep -c appended /etc/passwd; busybox stat -c %u:%g /etc/group; "
                   "test -e /etc/new")
    assert r.returncode == 1 and r.stdout == "0\n0:0\n", r
    podman.cli(runtime, "rm", name, check=True)
    assert overlay_lines(upper) == []


def test_containerd_container_root_owns_the_images_files(ctr, runtime):
    """The same through containerd's overlayfs snapshotter and the runc v2 shim."""
    r = ctr.ctr(*ctr.run_argv(runtime, "--rm", CTR_IMAGE, "t-ovl", "sh", "-c",
                              "echo appended >> /etc/passwd && busybox chown 5:6 /etc/group && "
                              "mkdir /etc/new && busybox stat -c %u:%g /etc/passwd /etc/new")
                [len(ctr.base):])
    assert r.returncode == 0, r
    assert r.stdout == "0:0\n0:0\n", r
    assert ctr.containers() == []
    assert overlay_lines(ctr.dir) == []
