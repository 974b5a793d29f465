"""issue 16 (rt-egress): io.agentd.policy's egress allowlist under agentd's OCI runtime.

The container gets a network namespace with only lo, agentd's egress proxy listening in it
at 127.0.0.1:3128 (served by a helper process create starts: host network namespace, the
container's cgroup, uid 65534 without capabilities, none of the engine's fds) and the proxy
variables in the environment of its init and of every exec. Checked from inside a raw
agentd-runc container, a podman container (--network none plus the annotation) and a
containerd one: an allowed loopback target of the host works through the proxy, another gets
a 403 and an audit line (egress.log in the state dir, and --log), a direct connection has no
route, raw sockets and reconfiguring lo fail; engines still get the container's exit code;
after delete no helper, no namespace is left; an engine network namespace with an interface
is refused. Only loopback and network namespaces the test creates are used."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

from oci_engines import (AGENTD_RUNC, CTR_IMAGE, IMAGE, PROBE, alive, procs_naming,
                         runtime_path, wait_gone)
from ocirt_util import RUNTIME, become_subreaper, cgroup_dirs, wait_for
# the fixtures of the runtime's and the engines' tests, and the container backend's loopback
# servers (two: "loopback PORT PATH"), shared
from test_network import loopback  # noqa: F401
from test_oci_runtime_cli import container as cli_container  # noqa: F401
from test_oci_runtime_engines import (containerd, ctr, podman, podman_engine,  # noqa: F401
                                      rootfs_tar)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(RUNTIME)
                                or RUNTIME != AGENTD_RUNC,
                                reason="root and the built agentd-runc needed (the annotation "
                                       "is agentd's)")


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    """As conmon and the shim: the runtime's processes end up ours. The tests' parent cgroup
    goes when no other run of the runtime's tests uses it."""
    become_subreaper()
    yield
    for d in cgroup_dirs("/ocirt-test"):
        try:
            os.rmdir(d)
        except OSError:
            pass


@pytest.fixture
def container(cli_container):
    """test_oci_runtime_cli's containers, with the attack program in their rootfs."""
    def make(*a, **kw):
        c = cli_container(*a, **kw)
        shutil.copy(PROBE, os.path.join(c.bundle, "rootfs", "sbxprobe"))
        return c
    return make


def policy(port, labels=None):
    p = {"network": {"mode": "allowlist", "allow": [f"127.0.0.1:{port}"]}}
    if labels:
        p["labels"] = labels
    return json.dumps(p)


def annotate(text):
    def edit(cfg):
        cfg["annotations"] = {"io.agentd.policy": text}
    return edit


def probe_script(allowed, denied):
    """What a container tries; one "name-rc=N" line per attempt, then "probe-done"."""
    return f"""
echo "env=$HTTP_PROXY|$https_proxy|$NO_PROXY|"
wget -q -O - http://127.0.0.1:{allowed}/a 2>&1; echo "allowed-rc=$?"
wget -q -O - http://127.0.0.1:{denied}/d 2>&1; echo "denied-rc=$?"
wget -q -Y off -T 5 -O - http://127.0.0.1:{allowed}/direct 2>&1; echo "direct-rc=$?"
nc -w 3 192.0.2.1 80 </dev/null 2>&1; echo "route-rc=$?"
ping -c 1 -W 2 192.0.2.1 2>&1; echo "ping-rc=$?"
/sbxprobe socket raw 2>&1; echo "raw-rc=$?"
/sbxprobe socket packet 2>&1; echo "packet-rc=$?"
ip link set lo down 2>&1; echo "lo-down-rc=$?"
ip link add d9 type dummy 2>&1; echo "link-add-rc=$?"
echo "links=$(ip -o link | wc -l)"
echo probe-done
"""


def check_probe(out, allowed, denied):
    """The probe's output: what may pass passed, nothing else did."""
    lines = dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln and " " not in
                 ln.split("=", 1)[0])
    u = "http://127.0.0.1:3128"
    assert lines["env"] == f"{u}|{u}||", out
    assert f"loopback {allowed} /a" in out and lines["allowed-rc"] == "0", out
    assert "403" in out and lines["denied-rc"] != "0", out
    assert f"loopback {allowed} /direct" not in out and lines["direct-rc"] != "0", out
    assert "unreachable" in out.lower() and lines["route-rc"] != "0", out
    assert lines["ping-rc"] != "0", out
    assert lines["raw-rc"] == "1" and lines["packet-rc"] == "1", out	# BLOCKED
    assert lines["lo-down-rc"] != "0" and lines["link-add-rc"] != "0", out
    assert lines["links"] == "1", out	# lo only


def audit_records(path):
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def net_inode(pid):
    return os.readlink(f"/proc/{pid}/ns/net")


def holders_of(ns):
    """pids with ns (a "net:[N]" link) as their namespace or an open fd."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{p}/ns/net") == ns:
                out.append(int(p))
                continue
            for fd in os.listdir(f"/proc/{p}/fd"):
                if os.readlink(f"/proc/{p}/fd/{fd}") == ns:
                    out.append(int(p))
                    break
        except OSError:
            pass
    return out


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)


def test_raw_container_reaches_only_what_the_allowlist_lists(container, loopback):
    allowed, denied = loopback
    c = container(["sh", "-c", probe_script(allowed, denied) + "exec sleep 1000"],
                  config_edit=annotate(policy(allowed, {"team": "blue"})))
    c.create()
    c.rt.ok("start", c.id)
    wait_for(lambda: b"probe-done" in c.output(), timeout=120, what="the probe")
    out = c.output().decode(errors="replace")
    check_probe(out, allowed, denied)

    # the proxy helper: recorded, not the init, the container's cgroup, nothing of root's
    with open(os.path.join(c.rt.root, c.id, "state.json")) as f:
        st = json.load(f)
    helper = st["agentd_proxy_pid"]
    assert helper != c.pid and alive(helper) and st["agentd_proxy_start_time"] > 0
    with open(f"/proc/{helper}/cgroup") as f:
        assert c.cgroup in f.read()
    s = proc_status(helper)
    assert s["Uid"].split()[0] == "65534" and s["CapEff"] == "0000000000000000", s
    assert s["CapPrm"] == "0000000000000000" and s["NoNewPrivs"] == "1", s
    fds = {fd: os.readlink(f"/proc/{helper}/fd/{fd}") for fd in os.listdir(f"/proc/{helper}/fd")}
    assert all(fds[fd] == "/dev/null" for fd in ("0", "1", "2")), fds
    # its own files only: not the engine's (the container's stdio file here)
    files = {t for t in fds.values() if t.startswith("/")}
    assert files <= {"/dev/null", os.path.join(c.rt.root, c.id, "egress.log"), c.rt.log}, fds
    assert net_inode(helper) == net_inode(os.getpid()), "the helper runs in the host's netns"
    container_ns = net_inode(c.pid)
    assert container_ns != net_inode(os.getpid())
    # `ps` lists the container's processes, not the helper
    ps = json.loads(c.rt.ok("ps", "--format", "json", c.id).stdout)
    assert c.pid in ps and helper not in ps, ps

    # every exec gets the variables too: flags, and process.json as podman passes it
    e = c.rt("exec", c.id, "sh", "-c", "echo $HTTP_PROXY $http_proxy")
    assert e.returncode == 0 and e.stdout.split() == [b"http://127.0.0.1:3128"] * 2, e
    proc = os.path.join(c.base, "process.json")
    with open(proc, "w") as f:
        json.dump({"args": ["sh", "-c", f"wget -q -O - http://127.0.0.1:{allowed}/exec"],
                   "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, f)
    e = c.rt("exec", "--process", proc, c.id)
    assert e.returncode == 0 and f"loopback {allowed} /exec".encode() in e.stdout, e

    # the audit: JSON lines in the state dir, with the labels; a line on --log
    recs = audit_records(os.path.join(c.rt.root, c.id, "egress.log"))
    assert any(r["event"] == "allowed" and r["port"] == allowed and r["host"] == "127.0.0.1"
               and r["labels"] == {"team": "blue"} and r["container"] == c.id for r in recs), recs
    assert any(r["event"] == "denied" and r["port"] == denied and
               "not in the allowlist" in r["reason"] for r in recs), recs
    log = c.log().decode(errors="replace")
    assert f"egress denied: GET 127.0.0.1:{denied}" in log, log

    c.rt.ok("delete", "--force", c.id)
    c.assert_no_trace()
    assert not wait_gone([helper], timeout=10), "the proxy helper outlived delete"
    wait_for(lambda: not holders_of(container_ns), what="the namespace released")
    assert not procs_naming(c.id)


def test_the_proxy_ends_with_the_init(container, loopback):
    """conmon waits for every child of its own (the helper is one) before it reports the
    container's exit: the helper must not outlive the init."""
    allowed, _ = loopback
    c = container(["sh", "-c", f"wget -q -O - http://127.0.0.1:{allowed}/x; exit 3"],
                  config_edit=annotate(policy(allowed)))
    c.create()
    helper = json.load(open(os.path.join(c.rt.root, c.id, "state.json")))["agentd_proxy_pid"]
    c.rt.ok("start", c.id)
    status = c.reap()
    assert status is not None and os.WEXITSTATUS(status) == 3
    assert f"loopback {allowed} /x".encode() in c.output()
    assert c.rt.state(c.id)["status"] == "stopped"
    assert not wait_gone([helper], timeout=20), "the helper outlived the init"
    c.rt.ok("delete", c.id)
    c.assert_no_trace()


def test_engine_netns_with_an_interface_is_refused(container, loopback):
    """A network namespace the test makes stands for an engine's: with an interface besides lo
    the allowlist would be bypassed (refused, nothing left); with only lo (podman's
    --network none) it is used."""
    allowed, _ = loopback
    ns = "agentd-eg-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "v0", "type", "veth", "peer",
                        "name", "v1"], check=True)

        def edit(cfg):
            annotate(policy(allowed))(cfg)
            cfg["linux"]["namespaces"] = [
                {"type": t} if t != "network" else {"type": t, "path": f"/run/netns/{ns}"}
                for t in ("pid", "network", "ipc", "uts", "mount")]
        c = container(["true"], config_edit=edit)
        p = c.rt("create", "--bundle", c.bundle, c.id)
        err = p.stderr.decode()
        assert p.returncode != 0
        assert 'annotations["io.agentd.policy"].network' in err and "v0" in err, err
        assert "--network none" in err, err
        assert not os.path.exists(os.path.join(c.rt.root, c.id))
        assert cgroup_dirs(c.cgroup) == [] and not procs_naming(c.id)

        subprocess.run(["ip", "-n", ns, "link", "del", "v0"], check=True)
        d = container(["sh", "-c", f"wget -q -O - http://127.0.0.1:{allowed}/ns"],
                      config_edit=edit)
        d.create()
        d.rt.ok("start", d.id)
        assert d.reap() is not None
        assert f"loopback {allowed} /ns".encode() in d.output(), d.output()
        d.rt.ok("delete", d.id)
        d.assert_no_trace()
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def test_a_failed_create_leaves_no_proxy(container, loopback):
    """create fails after the helper started (a namespace path that cannot be joined): the
    helper, its cgroup and the state dir are gone."""
    allowed, _ = loopback

    def edit(cfg):
        annotate(policy(allowed))(cfg)
        cfg["linux"]["namespaces"] = [
            {"type": t} if t != "ipc" else {"type": t, "path": "/nonexistent/ipc"}
            for t in ("pid", "network", "ipc", "uts", "mount")]
    c = container(["true"], config_edit=edit)
    p = c.rt("create", "--bundle", c.bundle, c.id)
    err = p.stderr.decode()
    assert p.returncode != 0 and "/nonexistent/ipc" in err, err
    assert not os.path.exists(os.path.join(c.rt.root, c.id))
    assert cgroup_dirs(c.cgroup) == []
    assert not wait_gone(procs_naming(c.id), timeout=10)


# ------------------------------------------------------------------ engines
def csv_quoted(s):
    """podman's --annotation is a list flag read as CSV: a value with commas is quoted."""
    return '"' + s.replace('"', '""') + '"'


def test_podman_network_none_with_the_allowlist(podman, loopback):
    allowed, denied = loopback
    rt = runtime_path("agentd-runc")
    ann = csv_quoted("io.agentd.policy=" + policy(allowed))
    r = podman.cli(rt, "run", "--rm", *podman.run_opts(), "--annotation", ann, IMAGE,
                   "sh", "-c", probe_script(allowed, denied) + "exit 7")
    assert r.returncode == 7, r
    check_probe(r.stdout, allowed, denied)
    # detached: exec gets the proxy too; rm leaves no helper
    cid = podman.cli(rt, "run", "-d", *podman.run_opts(), "--annotation", ann, IMAGE,
                     "sleep", "1000", check=True).stdout.strip()
    e = podman.cli(rt, "exec", cid, "sh", "-c",
                   f"echo $HTTPS_PROXY; wget -q -O - http://127.0.0.1:{allowed}/exec")
    assert e.returncode == 0, e
    assert e.stdout == f"http://127.0.0.1:3128\nloopback {allowed} /exec\n", e
    podman.cli(rt, "rm", "-f", "--time=0", cid, check=True)
    assert not wait_gone(procs_naming(cid), timeout=20)


def test_ctr_run_with_the_allowlist_keeps_the_exit_code(ctr, loopback):
    allowed, denied = loopback
    rt = runtime_path("agentd-runc")
    cid = "eg-" + uuid.uuid4().hex[:10]
    r = ctr.ctr(*ctr.run_argv(rt, "--rm", "--annotation", "io.agentd.policy=" + policy(allowed),
                              CTR_IMAGE, cid, "sh", "-c",
                              probe_script(allowed, denied) + "exit 5")[len(ctr.base):])
    assert r.returncode == 5, r
    check_probe(r.stdout, allowed, denied)
    assert ctr.containers() == []
    assert not wait_gone(procs_naming(cid), timeout=20)
