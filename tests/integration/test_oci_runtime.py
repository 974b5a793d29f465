"""The oci backend through its runtime driver (runc): a sandbox is a runc container agentd
generated the bundle of (config.json checked against the OCI runtime-spec schema and rules by
tests/oci/validate), commands are `runc exec`s, and everything of the container backend's
contract holds: exit codes, streaming, wall timeouts that kill the exec's tree, limits read
back from the container's cgroup, network none and allowlist (through agentd's egress proxy),
suspend/resume, and a destroy (or failed create) that leaves nothing behind."""
import glob
import json
import os
import shutil
import subprocess
import textwrap
import time

import pytest

from conftest import AGENTD, BUILD, PROBE, PROBE_DIR, agentd, run
from daemon_util import Daemon
from test_network import loopback  # noqa: F401 (the fixture: two HTTP servers on lo)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
SCHEMA = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"
VALIDATOR_SRC = os.path.join(SOURCE, "tests", "oci", "validate")
PY = "/usr/bin/python3"


def runc_usable():
    if os.geteuid() != 0 or not shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin"):
        return False, "runc and root needed"
    r = agentd("probe", "--backend", "runc", "--json")
    if r.rc != 0:
        return False, r.stderr.decode()
    b = json.loads(r.stdout)["backends"][0]
    return b["available"], b.get("reason", "")


USABLE, WHY = runc_usable()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"oci/runc unavailable: {WHY}")


def oci(*cmd, opts=(), **kw):
    return run("runc", *cmd, opts=opts, **kw)


def leftovers(sid=None):
    """What of oci sandboxes (of sid, else of any) is on the host: cgroups, and the inits
    of runc containers (tini over sleep) in such a cgroup."""
    cg = glob.glob("/sys/fs/cgroup/*/agentd/oci-%s*" % (sid or ""))
    procs = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    c = f.read()
                with open(f"/proc/{d}/cgroup") as f:
                    cgroups = f.read()
            except OSError:
                continue
            if (c.endswith(b"-s\0--\0/bin/sleep\0002147483647\0") or
                    c.endswith(b"-s\0--\0sleep\0002147483647\0")) and \
                    "/agentd/oci-%s" % (sid or "") in cgroups:
                procs.append(int(d))
    return cg, procs


@pytest.fixture(scope="module")
def validator():
    """tests/oci/validate, built offline with Debian's Go toolchain, cached in the build
    dir (rebuilt when its source is newer)."""
    out = os.path.join(BUILD, "tests", "oci-validate")
    src = os.path.join(VALIDATOR_SRC, "main.go")
    if not shutil.which("go") or not os.path.isdir(SCHEMA):
        pytest.skip("golang-go and golang-github-opencontainers-runtime-tools-dev needed")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        env = {"PATH": "/usr/bin:/bin", "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
               "GOCACHE": os.path.join(BUILD, "tests", "go-cache"), "GOFLAGS": ""}
        p = subprocess.run(["go", "build", "-o", out, "."], cwd=VALIDATOR_SRC, env=env,
                           capture_output=True, timeout=600)
        assert p.returncode == 0, p.stderr.decode()
    return out


def validate(validator, config_json):
    """Errors of the validator for one config.json (a copy in a bundle of its own)."""
    d = os.path.join("/var/tmp", "oci-validate-%d" % os.getpid())
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "rootfs"))
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(config_json)
    p = subprocess.run([validator, SCHEMA, d], capture_output=True, timeout=60)
    shutil.rmtree(d, ignore_errors=True)
    return p.returncode, p.stdout.decode()


@pytest.fixture
def daemon():
    d = Daemon().start()
    yield d
    d.cleanup()


def bundle_config(d, sid):
    path = os.path.join(d.state_dir, "sandboxes", sid, "bundle", "config.json")
    if not os.path.exists(path):
        path = glob.glob(os.path.join(d.dir, "**", sid, "bundle", "config.json"),
                         recursive=True)[0]
    with open(path) as f:
        return f.read()


# ------------------------------------------------------------------ one-shot runs

def test_exit_codes_are_the_contracts():
    assert oci("sh", "-c", "exit 3").json["exit_code"] == 3
    r = oci("no-such-program")
    assert r.json["exit_code"] == 127, r
    r = oci("/etc/passwd")
    assert r.json["exit_code"] == 126, r
    r = oci("sh", "-c", "kill -9 $$")
    assert r.json["exit_code"] == 137, r


def test_output_streams_live_and_is_captured():
    p = subprocess.Popen([AGENTD, "run", "--backend", "runc", "--", "sh", "-c",
                          "echo first; sleep 3; echo second"], stdout=subprocess.PIPE,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    t0 = time.monotonic()
    first = p.stdout.readline()
    took = time.monotonic() - t0
    rest = p.stdout.read()
    assert p.wait(timeout=60) == 0
    assert first == b"first\n" and rest == b"second\n"
    assert took < 2.9, "the first line came only with the end (%.1fs): not streamed" % took
    r = oci("sh", "-c", "echo out; echo err >&2")
    assert (r.json["stdout"], r.json["stderr"]) == ("out\n", "err\n")


def test_no_capabilities_nobody_read_only_root():
    r = oci(PY, "-c", textwrap.dedent("""
        import os
        st = dict(l.split(":\\t") for l in open("/proc/self/status").read().splitlines()
                  if ":\\t" in l)
        print(os.getuid(), os.getgid(), st["CapEff"].strip(), st["CapBnd"].strip(),
              st["NoNewPrivs"].strip(), st["Seccomp"].strip())
        for p in ("/usr/x", "/x", "/etc/x"):
            try:
                open(p, "w")
                print("WROTE", p)
            except OSError as e:
                print("refused", p, e.errno)
        open("/tmp/t", "w").write("ok")
        open("./w", "w").write("ok")
        print("writable", os.getcwd())
    """))
    out = r.json["stdout"].splitlines()
    assert out[0] == "65534 65534 0000000000000000 0000000000000000 1 2", r
    assert not [l for l in out if l.startswith("WROTE")], r
    assert out[-1] == "writable /workspace", r


def test_writable_state_is_bounded_by_max_write_bytes():
    # files of 1 MiB each (RLIMIT_FSIZE bounds one file): the tmpfs fills up
    r = oci("sh", "-c", "for i in $(seq 12); do dd if=/dev/zero of=/tmp/f$i bs=1M count=1 "
                        "2>&1; dd if=/dev/zero of=./f$i bs=1M count=1 2>&1; done >&2; "
                        "df -k /tmp .",
            opts=["--policy", "/dev/stdin"],
            input=json.dumps({"limits": {"max_write_bytes": 8 << 20}}).encode())
    assert "No space left on device" in r.json["stderr"], r
    sizes = [l.split()[1] for l in r.json["stdout"].splitlines()[1:]]
    assert sizes == ["8192", "8192"], r


def test_wall_timeout_kills_the_exec_tree():
    marker = "oci-timeout-%d" % os.getpid()
    r = oci("sh", "-c", f"(sleep 300; echo {marker}) & sh -c 'sleep 301' & sleep 302",
            opts=["--timeout", "2s"])
    assert r.json["exit_code"] == 124 and r.json["timed_out"], r
    assert r.json["duration_ms"] < 15000
    cg, procs = leftovers(r.json["sandbox_id"])
    assert not procs and not cg, (cg, procs)


def test_memory_limit_is_read_back_from_the_container_cgroup():
    r = oci(PY, "-c", "x = bytearray(400 << 20); print(len(x))", opts=["--memory", "64M"])
    assert r.json["limit_hit"] == "memory" and r.json["resource_limited"], r
    assert r.json["exit_code"] == 137, r
    assert r.json["resource_usage"]["peak_memory_bytes"] >= 48 << 20, r


def test_pids_limit_hit():
    r = oci("sh", "-c", "for i in $(seq 64); do sleep 5 & done; wait", opts=["--pids", "16"])
    assert r.json["limit_hit"] == "pids", r


def test_network_none_has_only_loopback():
    r = oci(PY, "-c", textwrap.dedent("""
        import os, socket
        print(sorted(os.listdir("/sys/class/net")))
        try:
            socket.create_connection(("10.0.2.2", 80), timeout=3)
            print("connected")
        except OSError as e:
            print("refused", e.errno)
    """))
    out = r.json["stdout"].splitlines()
    assert out[0] == "['lo']", r
    assert out[1].startswith("refused"), r


def test_allowlist_goes_through_the_egress_proxy(loopback):
    allowed, other = loopback
    r = oci(PY, "-c", textwrap.dedent("""
        import os, urllib.request
        print(os.environ.get("HTTP_PROXY"))
        for port in (%d, %d):
            try:
                print(urllib.request.urlopen("http://127.0.0.1:%%d/" %% port,
                                             timeout=20).read().decode().strip())
            except Exception as e:
                print("denied", type(e).__name__, getattr(e, "code", ""))
    """ % (allowed, other)), opts=["--net", "allow:127.0.0.1:%d" % allowed])
    out = r.json["stdout"].splitlines()
    assert out[0].startswith("http://127.0.0.1:"), r
    assert out[1] == "loopback %d /" % allowed, r
    assert out[2].startswith("denied HTTPError 403"), r


def test_crun_is_refused_with_the_reason_of_a_real_attempt():
    if not shutil.which("crun", path="/usr/bin:/usr/sbin"):
        pytest.skip("no crun here")
    r = agentd("probe", "--backend", "crun", "--json")
    b = json.loads(r.stdout)["backends"][0]
    if b["available"]:
        return  # this host's cgroup layout suits crun
    assert "crun" in b["reason"] and "crun run" in b["reason"], b


def test_probe_lists_runtimes_and_auto_never_picks_oci():
    r = agentd("probe", "--backend", "oci", "--json")
    b = json.loads(r.stdout)["backends"][0]
    feats = " ".join(b["platform_features"])
    assert "oci-runtime:runc" in feats, b
    r = agentd("run", "--json", "--", "true")
    assert r.json["backend"] != "oci", r
    r = agentd("backends", "--json")
    names = {x["name"]: x for x in json.loads(r.stdout)}
    assert "oci" in names


# ------------------------------------------------------------------ daemon sandboxes

def test_sandbox_lifecycle_exec_suspend_resume_destroy(daemon, validator):
    sid = daemon.create("runc", spec={"limits": {"max_memory_bytes": 256 << 20,
                                                  "max_processes": 64}})
    rc, errs = validate(validator, bundle_config(daemon, sid))
    assert rc == 0, errs
    r = daemon.exec(sid, ["sh", "-c", "echo hi > note; cat note; echo $HOME"])
    assert r.status == 200 and r.json["stdout"] == "hi\n/workspace\n", r
    # streamed
    r = daemon.post(f"/v1/sandboxes/{sid}/exec",
                    {"argv": ["sh", "-c", "echo a; echo b >&2"], "stream": True})
    lines = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
    assert {"stream": "stdout", "data": "a\n"} in lines, lines
    # suspended: its processes frozen, new execs refused
    assert daemon.post(f"/v1/sandboxes/{sid}/suspend").status == 200
    cg = glob.glob(f"/sys/fs/cgroup/freezer/agentd/oci-{sid}/freezer.state")
    if cg:
        assert open(cg[0]).read().strip() == "FROZEN"
    assert daemon.exec(sid, ["true"]).status == 409
    assert daemon.post(f"/v1/sandboxes/{sid}/resume").status == 200
    assert daemon.exec(sid, ["cat", "note"]).json["stdout"] == "hi\n"
    u = daemon.get(f"/v1/sandboxes/{sid}/usage")
    assert u.status == 200, u
    assert daemon.delete(f"/v1/sandboxes/{sid}").status in (200, 204)
    cg, procs = leftovers(sid)
    assert not cg and not procs, (cg, procs)
    assert not glob.glob(os.path.join(daemon.dir, "**", sid), recursive=True)


def test_every_generated_config_is_valid(daemon, validator, loopback):
    specs = [
        {},
        {"network": {"mode": "allowlist", "allow": ["127.0.0.1:%d" % loopback[0]]}},
        {"limits": {"max_memory_bytes": 64 << 20, "max_processes": 10, "cpu_quota_pct": 50,
                    "cpu_weight": 200, "max_open_files": 128}},
        {"allowed_paths_ro": [PROBE_DIR], "run_as": {"uid": 0, "gid": 0}},
        {"seccomp_profile": "none", "workdir": "/tmp/work"},
    ]
    for spec in specs:
        body = {"backend": "runc", "spec": spec}
        r = daemon.post("/v1/sandboxes", body)
        assert r.status == 201, (spec, r)
        sid = r.json["id"]
        cfg = bundle_config(daemon, sid)
        rc, errs = validate(validator, cfg)
        assert rc == 0, (spec, errs)
        c = json.loads(cfg)
        assert all(v == [] for v in c["process"]["capabilities"].values()), c
        assert c["process"]["noNewPrivileges"] and c["root"]["readonly"]
        daemon.delete(f"/v1/sandboxes/{sid}")


def test_the_validator_refuses_a_broken_config(validator):
    rc, errs = validate(validator, json.dumps({"ociVersion": "1.0.2-dev",
                                               "process": {"user": {"uid": "x"}}}))
    assert rc == 1 and "uid" in errs, errs


def test_failed_create_leaves_nothing(daemon):
    before = leftovers()
    r = daemon.post("/v1/sandboxes", {"backend": "runc", "spec": {
        "bind_mounts": [{"source": "/nonexistent-oci-src", "target": "/data"}]}})
    assert r.status >= 400, r
    assert leftovers() == before
    assert not [p for p in glob.glob(os.path.join(daemon.state_dir, "sandboxes", "*"))]


def test_snapshot_and_restore_of_the_writable_state(daemon):
    sid = daemon.create("runc")
    assert daemon.exec(sid, ["sh", "-c", "echo one > w.txt; echo t1 > /tmp/t.txt; "
                                         "mkdir -p d; echo deep > d/x"]).status == 200
    r = daemon.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "first"})
    assert r.status == 201, r
    snap = r.json["id"]
    daemon.exec(sid, ["sh", "-c", "echo two > w.txt; rm /tmp/t.txt; echo new > n.txt"])
    r = daemon.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap})
    assert r.status == 200, r
    r = daemon.exec(sid, ["sh", "-c", "cat w.txt /tmp/t.txt d/x; ls"])
    assert r.json["stdout"] == "one\nt1\ndeep\nd\nw.txt\n", r
    # a new sandbox from the snapshot (the core creates, then restores)
    r = daemon.post("/v1/sandboxes", {"backend": "runc", "from_snapshot": snap})
    assert r.status == 201, r
    assert daemon.exec(r.json["id"], ["cat", "w.txt"]).json["stdout"] == "one\n"


# ------------------------------------------------------------------ image root

def test_image_root_with_its_layers_whiteouts_and_defaults(validator):
    import image_util
    d = "/var/tmp/oci-image-%d" % os.getpid()
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    try:
        img = image_util.write_oci_tar(os.path.join(d, "img.tar"))
        env = {"AGENTD_IMAGE_DIR": os.path.join(d, "images")}
        r = agentd("image", "import", os.path.join(d, "img.tar"), "--state-dir", d, env=env)
        assert r.rc == 0, r
        checks = "; ".join(
            [f"cat /{p}" for p in image_util.EXPECT_PRESENT] +
            [f"test -e /{p} && echo PRESENT {p}" for p in image_util.EXPECT_ABSENT] +
            ["id -u", "echo $IMAGE_VAR", "touch /etc/x 2>/dev/null && echo WROTE-ROOT",
             "echo ok > /tmp/t && cat /tmp/t", "grep -c /var/tmp /proc/self/mountinfo"])
        r = agentd("run", "--backend", "runc", "--json", "--policy", "/dev/stdin", "--",
                   "/bin/sh", "-c", checks + "; true",
                   input=json.dumps({"image": image_util.TAG}).encode(), env=env)
        assert r.json is not None and r.json["exit_code"] == 0, r
        out = r.json["stdout"]
        for content in image_util.EXPECT_PRESENT.values():
            assert content.decode() in out, r
        assert "PRESENT" not in out and "WROTE-ROOT" not in out, r
        lines = out.splitlines()
        assert lines[-4:] == ["1000", "from-image", "ok", "0"], r
        cg, procs = leftovers(r.json["sandbox_id"])
        assert not cg and not procs
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_writable_root_is_an_upper_layer_bounded_by_max_write_bytes(validator):
    """writable_root through runc: the overlay's upper layer on the private root's tmpfs,
    sized max_write_bytes; the store's layers never change. (Before: the root stayed
    read-only, the key silently ignored.)"""
    import image_util
    d = "/var/tmp/oci-wroot-%d" % os.getpid()
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    try:
        image_util.write_oci_tar(os.path.join(d, "img.tar"))
        env = {"AGENTD_IMAGE_DIR": os.path.join(d, "images")}
        r = agentd("image", "import", os.path.join(d, "img.tar"), "--state-dir", d, env=env)
        assert r.rc == 0, r
        layers = os.path.join(d, "images", "layers")
        before = sorted(os.path.join(p, f) for p, _, fs in os.walk(layers) for f in fs)
        policy = {"image": image_util.TAG, "writable_root": True,
                  "run_as": {"uid": 0, "gid": 0}, "limits": {"max_write_bytes": 8 << 20}}
        r = agentd("run", "--backend", "runc", "--json", "--policy", "/dev/stdin", "--",
                   "/bin/sh", "-c",
                   "echo mine > /etc/x && cat /etc/x; "
                   "head -c 33554432 /dev/zero > /big 2>/dev/null; echo big=$?; "
                   "df -k / | tail -1",
                   input=json.dumps(policy).encode(), env=env)
        assert r.json is not None and r.json["exit_code"] == 0, r
        out = r.json["stdout"].splitlines()
        assert out[0] == "mine", r
        assert out[1] == "big=1", r          # ENOSPC: 32 MiB does not fit in 8
        assert int(out[2].split()[1]) <= 8192, r
        after = sorted(os.path.join(p, f) for p, _, fs in os.walk(layers) for f in fs)
        assert after == before, "the image's layers changed"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_an_engine_refuses_writable_root_it_cannot_bound():
    r = agentd("run", "--backend", "podman", "--policy", "/dev/stdin", "--", "/bin/true",
               input=json.dumps({"image": "anything", "writable_root": True}).encode())
    if b"writable_root" not in r.stderr and r.rc == 125:
        pytest.skip(f"podman driver unusable here: {r.stderr.decode()[-200:]}")
    assert r.rc == 125, r
    assert b"cannot be bounded by limits.max_write_bytes" in r.stderr, r


def test_an_image_without_sleep_is_refused_with_the_reason():
    """The runc driver's init is tini over the image's own sleep: an image without one
    was a create that failed at random ("cannot exec in a stopped container")."""
    d = "/var/tmp/oci-nosleep-%d" % os.getpid()
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "tree"))
    try:
        with open(os.path.join(d, "tree", "target"), "w") as f:
            f.write("x\n")
        subprocess.run(["tar", "-C", os.path.join(d, "tree"), "-cf",
                        os.path.join(d, "r.tar"), "."], check=True)
        env = {"AGENTD_IMAGE_DIR": os.path.join(d, "images")}
        r = agentd("image", "import", os.path.join(d, "r.tar"), "--tag", "nosleep",
                   "--state-dir", d, env=env)
        assert r.rc == 0, r
        for _ in range(3):
            r = agentd("run", "--backend", "runc", "--policy", "/dev/stdin", "--", "/target",
                       input=json.dumps({"image": "nosleep"}).encode(), env=env)
            assert r.rc == 125, r
            assert b"image nosleep has no sleep" in r.stderr, r
    finally:
        shutil.rmtree(d, ignore_errors=True)
