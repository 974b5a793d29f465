"""agentd image build (issue 13, docs/images.md#building-templates): a template bootstrapped
from Debian packages with mmdebstrap through the host's apt sources, extended with commands
run inside a sandbox of it (never on the host), cached by its inputs' hash.

The one Debian bootstrap of this file is cached between test runs: its store is a fixed
directory (CACHE), and a build whose inputs' hash matches an image there returns it at once,
so only the first `make check` on a machine pays for it (docs/images.md says how long)."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import AGENTD
from daemon_util import Daemon, UnixHTTPConnection

# The state dir whose images/ is the store: the CLI builds into it (--state-dir), `run
# --image` reads it ($AGENTD_IMAGE_DIR) and the daemon of the route's test serves it.
STATE = os.environ.get("AGENTD_TEST_IMAGE_STATE", "/var/cache/agentd-tests/state")
CACHE = os.path.join(STATE, "images")
TEMPLATE = "agentd-test-template:1"
PACKAGES = "busybox"  # not in minbase: its program proves the packages went in
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AGENTD_IMAGE_DIR": CACHE}
BUILD_TIMEOUT = 1200  # the first bootstrap on a loaded machine; cached ones take seconds

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mmdebstrap"),
    reason="image builds need root and mmdebstrap (scripts/install-deps.sh)")


def cli(*args, env=None, timeout=BUILD_TIMEOUT):
    e = dict(ENV)
    e.update(env or {})
    return subprocess.run([AGENTD, *args], capture_output=True, timeout=timeout, env=e)


def build(*args, **kw):
    return cli("image", "build", "--state-dir", STATE, *args, **kw)


def tmp_entries():
    d = os.path.join(CACHE, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


@pytest.fixture(scope="module")
def template():
    """The test template (built once per machine, then taken from the cache)."""
    os.makedirs(STATE, mode=0o700, exist_ok=True)
    t0 = time.monotonic()
    r = build("--from", "debian:bookworm", "--packages", PACKAGES, "--tag", TEMPLATE,
              "--progress", "--json")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    out = json.loads(r.stdout)
    out["seconds"] = time.monotonic() - t0
    out["progress"] = r.stderr.decode()
    return out


def inspect(ref):
    r = cli("image", "inspect", ref, "--json", "--state-dir", STATE)
    return json.loads(r.stdout) if r.returncode == 0 else None


def run_in(image, *cmd, writable=False):
    args = ["run", "--image", image, "--json"] + (["--writable-root"] if writable else [])
    r = cli(*args, "--", *cmd, timeout=120)
    assert r.stdout.startswith(b"{"), r
    return json.loads(r.stdout)


def test_a_template_built_from_debian_packages_runs_its_program_in_a_sandbox(template):
    assert template["id"].startswith("sha256:") and TEMPLATE in template["tags"]
    # a line per stage with its elapsed time, on stderr (forced: --progress)
    if not template["cached"]:
        assert "bootstrap bookworm: 1 package" in template["progress"], template
        assert "commit layer" in template["progress"]
    assert "resolve debian:bookworm" in template["progress"]
    assert "tag " + TEMPLATE in template["progress"]
    out = run_in(TEMPLATE, "busybox", "printf", "%s-%s", "from", "busybox")
    assert out["exit_code"] == 0, out
    assert out["stdout"] == "from-busybox", out
    # the template's apt caches and docs are trimmed, and the host's resolver is not in it
    out = run_in(TEMPLATE, "/bin/sh", "-c",
                 "ls /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages "
                 "/usr/share/man/man1 2>/dev/null | wc -l")
    assert out["stdout"].split() == ["0"], out
    layer = os.path.join(CACHE, "layers", inspect(TEMPLATE)["layers"][-1].split(":")[1])
    assert os.path.getsize(os.path.join(layer, "etc/resolv.conf")) == 0  # (a sandbox sees
    with open(os.path.join(layer, "etc/hostname")) as f:                # its own ones)
        assert f.read() == "agentd\n"


def test_the_same_inputs_come_from_the_cache_at_once_and_quietly_off_a_terminal(template):
    t0 = time.monotonic()
    r = build("--from", "debian:bookworm", "--packages", PACKAGES, "--tag", TEMPLATE, "--json")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["cached"] is True and out["id"] == template["id"], out
    assert took < 30, f"a cached build took {took:.1f}s"
    assert r.stderr == b"", r.stderr   # no terminal, no --progress: quiet
    # --no-cache would build again: the hash is of the inputs, so a different package list
    # is another image (checked without building it: the hash differs, nothing cached)
    info = inspect(TEMPLATE)
    labels = info["config"].get("labels") or info["config"].get("Labels") or {}
    assert labels.get("org.agentd.build.inputs", "").startswith("sha256:"), info


def test_from_image_run_adds_a_layer_holding_what_the_command_made(template):
    tag = "agentd-test-extended:%d" % os.getpid()
    marker = "/etc/agentd-build-marker"
    r = build("--from", TEMPLATE, "--run", f"echo made-inside > {marker}; id -u >> {marker}",
              "--run", "rm -f /etc/issue.net", "--tag", tag, "--no-cache", "--json",
              "--progress")
    try:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        err = r.stderr.decode()
        assert "run 1/2: echo made-inside" in err and "run 2/2: rm -f" in err, err
        new, base = inspect(tag), inspect(TEMPLATE)
        assert new["layers"][:-1] == base["layers"] and len(new["layers"]) == len(base["layers"]) + 1
        out = run_in(tag, "cat", marker)
        assert out["stdout"] == "made-inside\n0\n", out   # root of the sandbox's namespace
        assert run_in(tag, "test", "-e", "/etc/issue.net")["exit_code"] == 1  # a whiteout
        assert run_in(TEMPLATE, "test", "-e", marker)["exit_code"] == 1
        assert run_in(TEMPLATE, "test", "-e", "/etc/issue.net")["exit_code"] == 0
        assert not os.path.exists(marker)  # never on the host
    finally:
        cli("image", "rm", tag, "--state-dir", STATE)


def test_a_failing_command_fails_the_build_with_its_output_and_leaves_nothing(template):
    tag = "agentd-test-failing:%d" % os.getpid()
    before = tmp_entries()
    r = build("--from", TEMPLATE, "--run", "true", "--run",
              "echo out-of-the-failing-command; echo its-stderr >&2; exit 3", "--tag", tag)
    assert r.returncode == 125, r
    err = r.stderr.decode()
    assert "run 2/2" in err and "exited with 3" in err, err
    assert "out-of-the-failing-command" in err and "its-stderr" in err, err
    assert inspect(tag) is None
    assert tmp_entries() == before == [], tmp_entries()


def test_bad_inputs_are_refused_before_anything_runs():
    r = build("--from", "debian:bookworm", "--packages", "busybox,-oAPT::Get::x=1", "--tag", "x")
    assert r.returncode == 125 and b"-oAPT::Get::x=1: not a Debian package name" in r.stderr, r
    r = build("--from", "debian:no-such-suite", "--tag", "x")
    assert r.returncode == 125, r
    assert b"no apt source of /etc/apt/sources.list* lists suite no-such-suite" in r.stderr, r
    r = build("--from", "debian:bookworm", "--tag", "x", "--mirror", "ftp://example/debian")
    assert r.returncode == 125 and b"expected an http:// or https:// URL" in r.stderr, r
    r = build("--from", "debian:bookworm", "--packages", "busybox")
    assert r.returncode == 125 and b"--tag: required" in r.stderr, r


def test_the_daemon_route_streams_a_line_per_stage_then_the_image(template):
    d = Daemon(state_dir=STATE).start()
    try:
        conn = UnixHTTPConnection(d.socket, timeout=BUILD_TIMEOUT)
        body = {"from": "debian:bookworm", "packages": [PACKAGES], "tag": TEMPLATE}
        conn.request("POST", "/v1/images/build", body=json.dumps(body))
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Type") == "application/x-ndjson"
        lines = [json.loads(l) for l in r.read().splitlines()]
        conn.close()
        progress = [l["progress"] for l in lines[:-1]]
        assert progress and all("s] " in p for p in progress), lines
        assert progress[0].endswith("resolve debian:bookworm"), progress
        assert "image" in lines[-1], lines[-1]
        assert TEMPLATE in lines[-1]["image"]["tags"], lines[-1]
        r = d.post("/v1/images/build", {"from": "debian:bookworm", "tag": "x",
                                        "packages": ["-bad"]})
        last = [json.loads(l) for l in r.body.splitlines()][-1]
        assert "not a Debian package name" in last["error"]["message"], last
        r = d.post("/v1/images/build", {"from": "debian:bookworm", "tag": "x", "nope": 1})
        assert r.status == 400, r
    finally:
        d.cleanup()
