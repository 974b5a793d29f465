"""issue 13: a container sandbox whose root is an image (docs/images.md#defaults): the
image's files, its whiteouts, a read-only root or a writable one bounded by
max_write_bytes, the image's defaults, durable sandboxes, snapshots and forks, the files
API. The image is the tests' own two-layer busybox (image_util.py), imported into a store of
the test's."""
import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

import image_util
from conftest import AGENTD, agentd
from daemon_util import Daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="an image root needs root")

TAG = image_util.TAG
SH = "/bin/sh"


def image_cli(store, *args):
    """agentd image ... on the store STATE/images (never a daemon's default socket)."""
    assert os.path.basename(store) == "images", store
    return agentd("image", args[0], "--state-dir", os.path.dirname(store), *args[1:])


def import_image(store):
    src = tempfile.mkdtemp(prefix="agentd-img-src-", dir="/var/tmp")
    try:
        img = image_util.write_oci_layout(os.path.join(src, "oci"))
        r = image_cli(store, "import", img.path)
        assert r.rc == 0, r
        return img
    finally:
        shutil.rmtree(src)


@pytest.fixture(scope="module")
def store():
    d = tempfile.mkdtemp(prefix="agentd-img-state-", dir="/var/tmp")
    img = import_image(os.path.join(d, "images"))
    yield os.path.join(d, "images"), img
    shutil.rmtree(d, ignore_errors=True)


def run_in(store, script, *opts, json_out=True, timeout=60):
    args = ["run", "--backend", "container", "--image", TAG, *opts]
    if json_out:
        args.append("--json")
    return agentd(*args, "--", SH, "-c", script, env={"AGENTD_IMAGE_DIR": store[0]},
                  timeout=timeout)


def out(r):
    assert r.json is not None, r
    return r.json["stdout"]


def layer_dirs(store_dir):
    base = os.path.join(store_dir, "layers")
    return [os.path.join(base, d) for d in os.listdir(base)]


def test_the_image_files_are_seen_and_its_whiteouts_hide_theirs(store):
    script = ("for f in " + " ".join("/" + p for p in image_util.EXPECT_PRESENT) +
              "; do cat $f; done; for f in " +
              " ".join("/" + p for p in image_util.EXPECT_ABSENT) +
              "; do test -e $f && echo PRESENT $f; done; true")
    r = run_in(store, script)
    assert r.rc == 0, r
    assert out(r) == "".join(v.decode() for v in image_util.EXPECT_PRESENT.values()), r


def test_the_host_runtime_is_not_visible(store):
    r = run_in(store, "ls /usr/bin; test -e /usr/lib && echo HOST-LIB; "
                      "test -e /usr/bin/python3 && echo HOST-PYTHON; "
                      "test -e /lib64 && echo HOST-LIB64; true")
    assert r.rc == 0, r
    assert "HOST" not in out(r), r
    assert out(r).strip() == "", r  # the image's /usr/bin is empty


def test_the_root_is_read_only_and_its_scratch_writable(store):
    r = run_in(store, "touch /etc/x 2>&1; touch /bin/y 2>&1; echo ok > f && cat f; "
                      "echo t > /tmp/t && cat /tmp/t")
    assert r.rc == 0, r
    assert "Read-only file system" in out(r) and "ok\nt\n" in out(r), r


def test_the_image_defaults_apply_under_the_policy(store):
    r = run_in(store, "id -u; pwd; echo $IMAGE_VAR; echo $PATH")
    assert r.rc == 0, r
    uid, wd, var, path = out(r).splitlines()
    assert (uid, wd, var, path) == ("1000", "/home/user", "from-image", "/bin:/usr/bin"), r
    # the policy's keys win over the image's
    r = run_in(store, "pwd; echo $IMAGE_VAR; id -u", "--workdir", "/work", "--env",
               "IMAGE_VAR=policy", "--user", "0")
    assert out(r).splitlines() == ["/work", "policy", "0"], r


def test_run_with_no_command_runs_the_image_cmd(store):
    r = agentd("run", "--backend", "container", "--image", TAG,
               env={"AGENTD_IMAGE_DIR": store[0]})
    assert r.rc == 0 and r.stdout == b"hello from the image\n", r


def test_a_missing_image_fails_the_create_clearly_and_leaves_nothing(store):
    before = open("/proc/self/mountinfo").read().count("\n")
    r = agentd("run", "--backend", "container", "--image", "no-such-image:1", "--", "/bin/true",
               env={"AGENTD_IMAGE_DIR": store[0]})
    assert r.rc == 125 and b"no-such-image" in r.stderr, r
    assert open("/proc/self/mountinfo").read().count("\n") == before


def test_setuid_in_the_image_gives_nothing(store):
    # the root is nosuid whatever the store kept of a mode: a set-id exec gains no id
    r = run_in(store, "grep ' / / ' /proc/self/mountinfo")
    assert r.rc == 0 and "nosuid" in out(r).split(" - ")[0], r


def test_the_store_path_is_not_in_mountinfo(store):
    r = run_in(store, "cat /proc/self/mountinfo", "--writable-root")
    assert r.rc == 0, r
    assert store[0] not in out(r) and "/layers/" not in out(r), out(r)


def test_writable_root_writes_stay_in_the_sandbox_and_never_reach_the_store(store):
    d = Daemon(state_dir=None)
    os.makedirs(d.state_dir, exist_ok=True)
    import_image(os.path.join(d.state_dir, "images"))
    d.start()
    try:
        # as the image's root (its User is 1000, who may not write /etc)
        spec = {"image": TAG, "writable_root": True, "run_as": {"uid": 0, "gid": 0}}
        a = d.create(spec=spec)
        r = d.exec(a, [SH, "-c", "echo planted > /etc/motd && echo new > /opt/new && "
                                 "rm /etc/kept.txt && cat /etc/motd"])
        assert r.status == 200 and r.json["exit_code"] == 0, r
        # the next exec of the same sandbox sees them
        r = d.exec(a, [SH, "-c", "cat /etc/motd /opt/new; test -e /etc/kept.txt || echo gone"])
        assert r.json["stdout"] == "planted\nnew\ngone\n", r
        # another sandbox of the image does not
        b = d.create(spec=spec)
        r = d.exec(b, [SH, "-c", "cat /etc/motd /etc/kept.txt; test -e /opt/new && echo LEAK; true"])
        assert r.json["stdout"] == (image_util.LAYER2_MOTD.decode() + "kept from layer one\n"), r
        # nor the store's layers
        for layer in layer_dirs(os.path.join(d.state_dir, "images")):
            assert not os.path.exists(os.path.join(layer, "opt/new"))
            motd = os.path.join(layer, "etc/motd")
            if os.path.isfile(motd):
                assert open(motd, "rb").read() != b"planted\n"
    finally:
        d.stop()


def test_writable_root_writes_are_bounded_by_max_write_bytes(store):
    # a disk bomb in a sandbox whose limit is proven: 8 MiB of scratch; files of 1 MiB each
    # (RLIMIT_FSIZE bounds one file only) written anywhere in the root until refused
    r = run_in(store, "i=0; while [ $i -lt 64 ]; do "
                      "e=$(dd if=/dev/zero of=/bomb$i bs=1M count=1 2>&1) || break; "
                      "i=$((i+1)); done; echo $i; echo \"$e\"",
               "--writable-root", "--user", "0", "--policy", write_policy(8 << 20),
               timeout=120)
    assert r.json is not None, r
    made, why = out(r).split("\n", 1)
    assert int(made) <= 9 and "No space left" in why, r


def write_policy(max_write):
    fd, path = tempfile.mkstemp(prefix="agentd-img-policy-", suffix=".json", dir="/var/tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"limits": {"max_write_bytes": max_write}}, f)
    return path


@pytest.fixture
def durable_daemon():
    made = []

    def make():
        d = Daemon(durable=True)
        os.makedirs(d.state_dir, exist_ok=True)
        import_image(os.path.join(d.state_dir, "images"))
        made.append(d)
        return d.start()
    yield make
    for d in made:
        d.cleanup()
        d.stop()


def test_a_durable_image_sandbox_survives_a_daemon_restart(durable_daemon):
    d = durable_daemon()
    sid = d.create(spec={"image": TAG, "writable_root": True})
    assert d.exec(sid, [SH, "-c", "echo kept > /etc/kept-root && echo w > f"]).json[
        "exit_code"] == 0
    d.kill9()
    # no daemon holds the image now, its sandbox's init does: rm refuses it
    rm = image_cli(os.path.join(d.state_dir, "images"), "rm", TAG)
    assert rm.rc != 0 and b"in use" in rm.stderr, rm
    d.start()
    r = d.exec(sid, [SH, "-c", "cat /etc/kept-root f; pwd; echo $IMAGE_VAR; cat /etc/motd"])
    assert r.status == 200 and r.json["stdout"] == (
        "kept\nw\n/home/user\nfrom-image\n" + image_util.LAYER2_MOTD.decode()), r
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200


def test_snapshot_restore_and_a_fork_keep_the_writable_state(durable_daemon):
    d = durable_daemon()
    spec = {"image": TAG}
    sid = d.create(spec=spec)
    assert d.exec(sid, [SH, "-c", "echo w > f && echo t > /tmp/t"]).json["exit_code"] == 0
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "s"})
    assert r.status == 201, r
    snap = r.json["snapshot_id"]
    assert d.exec(sid, [SH, "-c", "echo changed > f; rm /tmp/t"]).json["exit_code"] == 0
    assert d.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap}).status == 200
    r = d.exec(sid, [SH, "-c", "cat f /tmp/t"])
    assert r.json["stdout"] == "w\nt\n", r
    # a fork names the image, and the workdir the snapshot is of (the image's WorkingDir)
    r = d.post("/v1/sandboxes", {"backend": "container", "from_snapshot": snap,
                                 "spec": {**spec, "workdir": image_util.WORKDIR}})
    assert r.status == 201, r
    r = d.exec(r.json["id"], [SH, "-c", "cat f /tmp/t /etc/motd; id -u"])
    assert r.json["stdout"] == "w\nt\n" + image_util.LAYER2_MOTD.decode() + "1000\n", r


def test_the_files_api_works_on_an_image_sandbox(durable_daemon):
    d = durable_daemon()
    sid = d.create(spec={"image": TAG})
    r = d.request("PUT", f"/v1/sandboxes/{sid}/files?path=up.txt", raw=b"uploaded\n")
    assert r.status in (200, 201), r
    r = d.exec(sid, [SH, "-c", "cat /home/user/up.txt"])
    assert r.json["stdout"] == "uploaded\n", r
    r = d.get(f"/v1/sandboxes/{sid}/files?path=up.txt")
    assert r.status == 200 and r.body == b"uploaded\n", r


def test_a_missing_image_is_a_404_in_the_api(durable_daemon):
    d = durable_daemon()
    r = d.post("/v1/sandboxes", {"backend": "container", "spec": {"image": "no-such:1"}})
    assert r.status == 404 and "no-such" in r.error.get("message", ""), r
    assert d.get("/v1/sandboxes").json["sandboxes"] == []


def test_a_failed_create_leaves_its_image_unused(durable_daemon):
    # the image is leased, then the policy's bind fails the create: the daemon keeps no lock
    d = durable_daemon()
    r = d.post("/v1/sandboxes", {"backend": "container",
                                 "spec": {"image": TAG, "allowed_paths_ro": ["/no/such/dir"]}})
    assert r.status == 400, r
    rm = image_cli(os.path.join(d.state_dir, "images"), "rm", TAG)
    assert rm.rc == 0, rm


def test_sandbox_create_takes_image_and_writable_root_flags(durable_daemon):
    d = durable_daemon()
    r = d.cli("sandbox", "create", "--image", TAG, "--writable-root", "--json")
    assert r.returncode == 0, r
    sid = json.loads(r.stdout)["id"]
    r = d.cli("sandbox", "exec", sid, "--", SH, "-c", "cat /etc/motd; touch /new && echo w")
    assert r.returncode == 0 and r.stdout == image_util.LAYER2_MOTD + b"w\n", r
