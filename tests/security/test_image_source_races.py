"""An image archive someone else can still write while it is imported (docs/images.md#hardening):
a path import of a file or an OCI layout directory in a sandbox's workdir, which the
sandbox keeps writing. What the store verifies and what it unpacks must be the same bytes
(else a layer is stored under the digest of content it does not hold, and every later
image with that digest shares the attacker's files), and a truncation must not fault the
importer (the daemon). The writer here is the test, standing in for the sandbox."""
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from .secsuite import AGENTD

BIG = 512 << 20  # long enough to hash that the writer acts in the middle of it


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="agentd-img-race-", dir="/var/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def header(name, size):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = 0o644
    return ti.tobuf(format=tarfile.GNU_FORMAT)


def rootfs_tar(path, flag):
    """flag (one block) first, then BIG zero bytes (a hole on disk), then the end."""
    with open(path, "wb") as f:
        f.write(header("flag", len(flag)) + flag)
        f.write(header("big", BIG))
        f.seek(BIG, os.SEEK_CUR)
        f.write(b"\0" * 1024)
    return path


def tar_digest(flag):
    h = hashlib.sha256()
    h.update(header("flag", len(flag)) + flag + header("big", BIG))
    zero = b"\0" * (1 << 20)
    for _ in range(BIG >> 20):
        h.update(zero)
    h.update(b"\0" * 1024)
    return h.hexdigest()


def start_import(work, path):
    return subprocess.Popen([AGENTD, "image", "import", path, "--tag", "race:1", "--state-dir",
                             os.path.join(work, "state")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                 "AGENTD_SOCKET": "/nonexistent.sock"})


def wait_open(proc, path, timeout=120):
    """Until the importer holds path open (mapped or copied from, either way reading it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            for fd in os.listdir("/proc/%d/fd" % proc.pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (proc.pid, fd)) == path:
                        return True
                except OSError:
                    pass
        except OSError:
            pass
        time.sleep(0.002)
    return False


def test_content_changed_mid_import_is_never_stored_under_the_old_digest(work):
    a, b = b"A" * 512, b"B" * 512
    path = rootfs_tar(os.path.join(work, "rootfs.tar"), a)
    proc = start_import(work, path)
    if wait_open(proc, path):
        time.sleep(0.03)  # the importer reads on; the flag's block is behind it
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b, 512)
        os.close(fd)
    out, errout = proc.communicate(timeout=600)
    assert proc.returncode == 0, errout
    layers = [x for x in os.listdir(os.path.join(work, "state", "images", "layers"))
              if not x.endswith(".json")]
    assert len(layers) == 1
    with open(os.path.join(work, "state", "images", "layers", layers[0], "flag"), "rb") as f:
        held = f.read()
    assert held in (a, b)
    assert layers[0] == tar_digest(held), \
        "the layer is stored under the digest of other content than it holds"


def test_an_archive_truncated_mid_import_does_not_fault_the_importer(work):
    path = rootfs_tar(os.path.join(work, "rootfs.tar"), b"A" * 512)
    proc = start_import(work, path)
    assert wait_open(proc, path), "the importer never opened the archive"
    time.sleep(0.03)
    os.truncate(path, 1024)
    out, errout = proc.communicate(timeout=600)
    assert proc.returncode >= 0, "the importer died of signal %d" % -proc.returncode
    if proc.returncode != 0:  # refused as a truncated tar, or imported from before the cut
        assert b"import" in errout, errout
    assert os.listdir(os.path.join(work, "state", "images", "tmp")) == []


def test_a_path_through_a_sandboxs_proc_root_is_refused(work):
    """A caller importing what a sandbox made as /proc/PID/root/workspace/img.tar: the
    sandbox made img.tar an absolute symlink to a host file, which the daemon (root) would
    follow on the host. Paths never go through a magic link."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "integration"))
    from daemon_util import Daemon, exec_in_background, wait_until  # noqa: E402
    from .secsuite import proc_matching
    secret = os.path.join(work, "secret.tar")
    with tarfile.open(secret, "w") as t:
        ti = tarfile.TarInfo("secret")
        ti.size = 11
        import io
        t.addfile(ti, io.BytesIO(b"host-secret"))
    os.chmod(secret, 0o600)
    d = Daemon().start()
    try:
        sid = d.create()
        r = d.exec(sid, ["/bin/sh", "-c", "ln -s %s /workspace/img.tar" % secret])
        assert r.status == 200 and r.json["exit_code"] == 0, r
        token = "3131.%d" % os.getpid()
        exec_in_background(d, sid, ["/bin/sleep", token])
        wait_until(lambda: proc_matching(token), 30)
        pid = proc_matching(token)[0]
        r = d.post("/v1/images/import", {"path": "/proc/%d/root/workspace/img.tar" % pid,
                                         "tag": "from-sandbox:1"})
        assert r.status == 400, r
        assert "magic link" in r.json["error"]["message"], r.json
        assert d.get("/v1/images/from-sandbox:1").status == 404
    finally:
        d.cleanup()


def test_an_images_huge_passwd_is_not_read_into_memory(work):
    """The image's User is a name: the host looks it up in the image's /etc/passwd. One of
    192 MiB (a layer of a few hundred KiB compressed) is refused by its size, never read
    whole into the creating process (the daemon, for a daemon's sandbox)."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "integration"))
    import image_util
    layer = image_util.TarBuilder().dir("etc").file("etc/passwd", b"\0" * (192 << 20)).bytes()
    cfg = image_util.image_config([image_util.sha256(layer)], user="ghost")
    img = image_util.write_oci_layout(os.path.join(work, "oci"), tag="huge/passwd:1",
                                      layers=[layer], config=cfg)
    state = os.path.join(work, "state")
    r = subprocess.run([AGENTD, "image", "import", img.path, "--state-dir", state],
                       capture_output=True, env={"AGENTD_SOCKET": "/nonexistent.sock"})
    assert r.returncode == 0, r
    probe = ("import resource, subprocess, sys\n"
             "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n"
             "sys.stderr.write(p.stderr.decode())\n")
    r = subprocess.run([sys.executable, "-c", probe, AGENTD, "run", "--backend", "container",
                        "--image", "huge/passwd:1", "--", "/bin/true"], capture_output=True,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "AGENTD_IMAGE_DIR": os.path.join(state, "images"),
                            "AGENTD_SOCKET": "/nonexistent.sock"}, timeout=300)
    maxrss_kib, rc = map(int, r.stdout.split())
    assert rc != 0 and b"ghost" in r.stderr, r.stderr
    assert maxrss_kib < 64 << 10, "the creating process peaked at %d KiB" % maxrss_kib


def test_concurrent_imports_of_one_image_and_a_prune_leave_one_whole_copy(work):
    """Four imports of the same layers at once, a prune among them: each succeeds (or the
    prune waits), the store holds each layer once, and nothing is left in tmp."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "integration"))
    import image_util
    img = image_util.write_oci_tar(os.path.join(work, "a.tar"))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AGENTD_SOCKET": "/nonexistent.sock"}
    state = os.path.join(work, "state")
    procs = [subprocess.Popen([AGENTD, "image", "import", img.path, "--state-dir", state],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(4)]
    procs.append(subprocess.Popen([AGENTD, "image", "prune", "--state-dir", state],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    layers = sorted(x for x in os.listdir(os.path.join(state, "images", "layers"))
                    if not x.endswith(".json"))
    assert layers == sorted(d.split(":", 1)[1] for d in img.diff_ids)
    assert os.listdir(os.path.join(state, "images", "tmp")) == []
    r = subprocess.run([AGENTD, "image", "inspect", img.tag, "--state-dir", state],
                       capture_output=True, env=env)
    assert r.returncode == 0 and img.id.encode() in r.stdout, r
