"""issue 13: a container sandbox on a hostile image (docs/images.md#defaults). The image is
the caller's choice but its content may come from anywhere: its symlinks must never lead
agentd's set-up onto host paths, its /etc/passwd is read inside the image only, and a
set-uid file of it gives nothing."""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import image_util  # noqa: E402

from .secsuite import agentd  # noqa: E402

HOSTILE = "agentd-test/hostile:1"


def hostile_layer(host_dir, links):
    """Busybox with a set-uid root copy as /bin/id, and either (links) every path agentd
    mounts on or writes to a symlink out of the image to host_dir (/etc, /proc, /tmp, /dev,
    /workspace), or /etc/passwd an absolute symlink, to be resolved inside the image, to the
    image's own /lib/accounts/passwd."""
    with open(image_util.BUSYBOX, "rb") as f:
        busybox = f.read()
    t = image_util.TarBuilder()
    t.dir("./").dir("bin").dir("lib").dir("lib/accounts")
    t.file("bin/busybox", busybox, mode=0o755)
    for a in image_util.APPLETS:
        if a != "id":
            t.symlink("bin/" + a, "busybox")
    t.file("bin/id", busybox, mode=0o4755)  # set-uid root, as the image says
    t.file("lib/accounts/passwd", b"root:x:0:0::/:/bin/sh\nagent:x:1234:1234::/:/bin/sh\n")
    if links:
        for p in ("etc", "proc", "tmp", "dev", "workspace"):
            t.symlink(p, host_dir)
    else:
        t.dir("etc").symlink("etc/passwd", "/lib/accounts/passwd")
    return t.bytes()


def make_image(tmp_path, host_dir, links):
    store = str(tmp_path / "images")
    layer = hostile_layer(host_dir, links)
    cfg = image_util.image_config([image_util.sha256(layer)], user=None if links else "agent",
                                  workdir="/", env=["PATH=/bin"], cmd=["/bin/sh"])
    img = image_util.write_oci_layout(str(tmp_path / "oci"), tag=HOSTILE, layers=[layer],
                                      config=cfg)
    r = agentd("image", "import", "--state-dir", str(tmp_path), img.path)
    assert r.rc == 0, r
    return store


@pytest.fixture
def host_dir():
    d = tempfile.mkdtemp(prefix="agentd-img-host-", dir="/var/tmp")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_hostile(store, script, *opts):
    return agentd("run", "--backend", "container", "--image", HOSTILE, *opts, "--", "/bin/sh",
                  "-c", script, env={"AGENTD_IMAGE_DIR": store})


def test_symlinks_of_the_image_never_lead_the_setup_to_host_paths(tmp_path, host_dir):
    store = make_image(tmp_path, host_dir, links=True)
    r = run_hostile(store, "cat /etc/hostname; echo x > /tmp/t; ls /proc/self/ >/dev/null && "
                    "echo proc; pwd")
    # the set-up made its own /etc, /tmp, /proc and workdir over the image's links
    assert r.rc == 0 and r.stdout.split(b"\n")[:3] == [b"agentd", b"proc", b"/workspace"], r
    assert os.listdir(host_dir) == [], os.listdir(host_dir)


def test_the_image_passwd_is_read_inside_the_image_only(tmp_path, host_dir):
    # User "agent" is in /etc/passwd, an absolute symlink to /lib/accounts/passwd: the
    # image's file (uid 1234) when resolved inside the image; the host has no such file
    assert not os.path.exists("/lib/accounts/passwd")
    store = make_image(tmp_path, host_dir, links=False)
    r = run_hostile(store, "id -u")
    assert r.rc == 0 and r.stdout == b"1234\n", r


def test_a_setuid_file_of_the_image_gives_nothing(tmp_path, host_dir):
    store = make_image(tmp_path, host_dir, links=False)
    r = run_hostile(store, "ls -ln /bin/id; /bin/id -u; /bin/id -g")
    assert r.rc == 0, r
    assert r.stdout.split(b"\n")[1:3] == [b"1234", b"1234"], r
