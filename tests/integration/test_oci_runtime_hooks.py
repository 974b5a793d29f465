"""What dockerd's configs need of agentd-runc beyond podman's and containerd's (issue 16:
rt-fix): the prestart hook every docker container has (libnetwork-setkey), run only where
the operator allows hooks, with the state on stdin; a failing hook fails the create and
leaves nothing; and docker's net.ipv4.ping_group_range "0 2147483647" (every group), which
in the container's user namespace must be the groups its map has."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

import ocirt_util
from ocirt_util import RUNTIME, make_bundle

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(RUNTIME),
                                reason="root and the built agentd-runc needed")
_bases = []


def new_base():
    """ocirt_util's, removed after the test (issue 16: rt-gaps: each test left its dir)."""
    _bases.append(ocirt_util.new_base())
    return _bases[-1]


@pytest.fixture(autouse=True)
def _remove_bases():
    yield
    while _bases:
        shutil.rmtree(_bases.pop(), ignore_errors=True)


def run(base, bundle, allow_hooks):
    operator = os.path.join(base, "oci-runtime.json")
    with open(operator, "w") as f:
        json.dump({"allow": {"hooks": allow_hooks}}, f)
    os.chmod(base, 0o700)
    env = dict(os.environ, AGENTD_RUNTIME_CONFIG=operator)
    cid = "h-" + uuid.uuid4().hex[:10]
    p = subprocess.run([RUNTIME, "--root", os.path.join(base, "state"), "run", "--bundle",
                        bundle, cid], capture_output=True, text=True, env=env, timeout=120,
                       stdin=subprocess.DEVNULL)
    return cid, p


def with_hook(script):
    def edit(cfg):
        cfg["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script],
                                      "env": ["PATH=/usr/bin:/bin"], "timeout": 30}]}
    return edit


def test_prestart_hook_runs_with_the_state_where_the_operator_allows_it():
    base = new_base()
    out = os.path.join(base, "hook-state.json")
    bundle = make_bundle(base, ["true"], config_edit=with_hook(f"cat > {out}"))
    cid, p = run(base, bundle, allow_hooks=False)
    assert p.returncode != 0 and "hooks" in p.stderr, p
    assert not os.path.exists(out)
    cid, p = run(base, bundle, allow_hooks=True)
    assert p.returncode == 0, p
    with open(out) as f:
        st = json.load(f)
    assert st["id"] == cid and st["pid"] > 0 and st["bundle"] == bundle, st
    assert os.listdir(os.path.join(base, "state")) == []


def test_a_failing_prestart_hook_fails_the_create_and_leaves_nothing():
    base = new_base()
    bundle = make_bundle(base, ["true"], config_edit=with_hook("exit 3"))
    cid, p = run(base, bundle, allow_hooks=True)
    assert p.returncode != 0 and "hooks.prestart[0]" in p.stderr and "3" in p.stderr, p
    assert os.listdir(os.path.join(base, "state")) == []


def test_docker_ping_group_range_is_the_mapped_groups():
    base = new_base()

    def edit(cfg):
        cfg["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 2147483647"}
    bundle = make_bundle(base, ["cat", "/proc/sys/net/ipv4/ping_group_range"],
                         config_edit=edit)
    cid, p = run(base, bundle, allow_hooks=False)
    assert p.returncode == 0, p
    assert p.stdout.split() == ["0", "65535"], p


def test_oom_score_adj_is_set():
    """docker gives every process an oomScoreAdj: the container's root cannot write its own
    /proc/self/oom_score_adj (host root's file there): the runtime sets it, inherited."""
    base = new_base()

    def edit(cfg):
        cfg["process"]["oomScoreAdj"] = 123
    bundle = make_bundle(base, ["cat", "/proc/self/oom_score_adj"], config_edit=edit)
    cid, p = run(base, bundle, allow_hooks=False)
    assert p.returncode == 0, p
    assert p.stdout.strip() == "123", p


def test_a_shared_rootfs_mount_receives_no_container_mount():
    """dockerd's data root is a shared mount: the rootfs the runtime attaches is a clone in
    its peer group. Made private first, the container's /proc, /dev... never appear on the
    host's rootfs (and pivot_root, which refuses a shared new root, works)."""
    base = new_base()
    bundle = make_bundle(base, ["true"])
    rootfs = os.path.join(bundle, "rootfs")
    subprocess.run(["mount", "--bind", rootfs, rootfs], check=True)
    try:
        subprocess.run(["mount", "--make-shared", rootfs], check=True)
        cid, p = run(base, bundle, allow_hooks=False)
        with open("/proc/self/mountinfo") as f:
            below = [ln.split()[4] for ln in f if ln.split()[4].startswith(rootfs + "/")]
        assert below == [], f"container mounts propagated to the host: {below}"
        assert p.returncode == 0, p
    finally:
        subprocess.run(["umount", "-R", rootfs], check=False)
