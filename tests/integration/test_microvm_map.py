"""issue 15 (vm-map): the policy mapped into a micro-VM, on the real guest under QEMU.

Files: the guest's execs see the tree its sandbox's virtiofsd serves (the host runtime
read-only at its own paths, the workdir on a scratch bounded by max_write_bytes, the
policy's ro/rw paths), read-only enforced by the host kernel; the files API works on the
fds the host held from before the guest ran. Network: no NIC at all; `allowlist` reaches
agentd's egress proxy through the guest's 127.0.0.1:3128, with the same rules and records
as a container. Servers are the test's own, on the host's loopback."""
import json
import os
import subprocess
import tempfile
import textwrap
import urllib.parse

import pytest

from conftest import AGENTD
from daemon_util import Daemon
from test_network import lines, loopback  # noqa: F401 (the module's servers, its parser)

PY = "/usr/bin/python3"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
BOOT = 180  # seconds for a boot and a command under TCG on a loaded machine


def run_vm(script, *flags, timeout=BOOT):
    p = subprocess.run([AGENTD, "run", "--backend", "microvm", "--json", *flags, "--",
                        PY, "-c", script],
                       capture_output=True, timeout=timeout, env=ENV)
    assert p.stdout.startswith(b"{"), (p.stdout, p.stderr)
    return json.loads(p.stdout), p.stderr.decode(errors="replace")


@pytest.fixture(scope="module", autouse=True)
def microvm_available():
    p = subprocess.run([AGENTD, "run", "--backend", "microvm", "--", "/bin/true"],
                       capture_output=True, timeout=BOOT, env=ENV)
    if p.returncode != 0:
        pytest.skip("microvm unavailable here: %s" % p.stderr.decode(errors="replace")[-300:])


TRY = r'''
import errno, os, socket
def report(name, f):
    try:
        print(name, "OK", f(), flush=True)
    except OSError as e:
        print(name, "ERR", errno.errorcode.get(e.errno, e.errno), flush=True)
def write(p, data=b"x"):
    with open(p, "wb") as f:
        f.write(data)
    return "written"
'''


# ----------------------------------------------------------------- files

def test_runtime_is_the_hosts_read_only_and_policy_paths_keep_their_meaning():
    with tempfile.TemporaryDirectory() as ro, tempfile.TemporaryDirectory() as rw:
        with open(os.path.join(ro, "data"), "w") as f:
            f.write("host data\n")
        # commands run as the sandbox's user (1000), as on container: the policy's paths
        # must be reachable by it (a root-only 0700 directory is not, on either backend)
        os.chmod(ro, 0o755)
        os.chmod(os.path.join(ro, "data"), 0o644)
        os.chown(rw, 1000, 1000)
        out, log = run_vm(TRY + textwrap.dedent(f"""
            import sys
            report("python", lambda: sys.executable + " " + open("{ro}/data").read().strip())
            report("ro", lambda: write("{ro}/data", b"guest"))
            report("ro-new", lambda: write("{ro}/new"))
            report("usr", lambda: write("/usr/bin/agentd-test"))
            report("rw", lambda: write("{rw}/from-guest", b"guest wrote"))
            report("workdir", lambda: write("/workspace/f") + " " + os.getcwd())
            report("tmp", lambda: write("/tmp/f"))
            report("shadow", lambda: open("/etc/shadow").read())
            report("root", lambda: write("/newfile"))
        """), "--ro", ro, "--rw", rw)
        r = lines(out)
        assert out["backend"] == "microvm", out
        assert r["python"] == "OK %s host data" % PY, (out, log)
        assert r["ro"] in ("ERR EROFS", "ERR EACCES"), r
        assert r["ro-new"] in ("ERR EROFS", "ERR EACCES"), r
        assert r["usr"] in ("ERR EROFS", "ERR EACCES"), r
        assert r["rw"] == "OK written", r
        assert r["workdir"] == "OK written /workspace", r
        assert r["tmp"] == "OK written", r
        assert r["shadow"] == "ERR ENOENT", r  # the /etc allowlist, not the host's /etc
        assert r["root"] in ("ERR EROFS", "ERR EACCES"), r
        with open(os.path.join(ro, "data")) as f:
            assert f.read() == "host data\n"
        assert sorted(os.listdir(ro)) == ["data"]
        with open(os.path.join(rw, "from-guest")) as f:
            assert f.read() == "guest wrote"


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def fpath(sid, p):
    return f"/v1/sandboxes/{sid}/files?path=" + urllib.parse.quote(p, safe="")


def sh(d, sid, script):
    r = d.exec(sid, ["/bin/sh", "-c", script])
    assert r.status == 200, r
    return r.json


def virtiofsds_under(pid):
    """virtiofsd processes descending from pid (the daemon)."""
    parent, name = {}, {}
    for e in os.listdir("/proc"):
        try:
            with open(f"/proc/{e}/stat") as f:
                st = f.read()
        except (OSError, ValueError):
            continue
        if not e.isdigit():
            continue
        name[int(e)] = st[st.index("(") + 1:st.rindex(")")]
        parent[int(e)] = int(st[st.rindex(")") + 2:].split()[1])
    found = []
    for p, n in name.items():
        q = p
        while q in parent and q != pid and q > 1:
            q = parent[q]
        if q == pid and n == "virtiofsd":
            found.append(p)
    return found


def test_files_both_ways_and_a_planted_symlink_is_not_followed(d):
    sid = d.create(backend="microvm")
    try:
        r = d.request("PUT", fpath(sid, "in.txt"), raw=b"from the host\n")
        assert r.status == 200, r
        # through the CLI: a connection (a daemon thread) of its own, the create's gone;
        # the sandbox's virtiofsd must not have died with the thread that started it
        p = d.cli("sandbox", "exec", "--timeout", "60s", sid, "--", "/bin/sh", "-c",
                  "cat in.txt; echo guest wrote > out.txt; "
                  "ln -s /etc/shadow leak; ln -s / rootlink; echo done", timeout=120)
        assert p.returncode == 0 and p.stdout == b"from the host\ndone\n", p
        r = d.get(fpath(sid, "out.txt"))
        assert r.status == 200 and r.body == b"guest wrote\n", r
        with open("/etc/shadow", "rb") as f:
            shadow = f.read()
        for p in ("leak", "rootlink/etc/shadow", "/workspace/leak"):
            r = d.get(fpath(sid, p))
            assert r.body != shadow, p
            assert r.status in (400, 403, 404), (p, r)
        # cp through the CLI too
        p = d.cli("sandbox", "cp", f"{sid}:out.txt", "-")
        assert p.returncode == 0 and p.stdout == b"guest wrote\n", p
        assert virtiofsds_under(d.proc.pid), "the sandbox's virtiofsd"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
    # destroyed: its virtiofsd with it
    assert virtiofsds_under(d.proc.pid) == []


def test_disk_bomb_in_the_guest_stops_at_max_write_bytes(d):
    limit = 16 << 20
    sid = d.create(backend="microvm", spec={"limits": {"max_write_bytes": limit}})
    try:
        # files of 4 MiB each (below RLIMIT_FSIZE): the scratch's size stops them, not the
        # rlimit
        out = sh(d, sid, "i=0; while [ $i -lt 16 ]; do "
                         "dd if=/dev/zero of=f$i bs=1M count=4 2>/dev/null || break; "
                         "i=$((i+1)); done; du -sk . | cut -f1; echo files $i")
        kb, files = out["stdout"].split("\n")[:2]
        assert int(kb) * 1024 <= limit + (1 << 20), out
        assert files.startswith("files ") and 2 <= int(files.split()[1]) < 16, out
        # the VM is healthy afterwards
        assert sh(d, sid, "rm -f f*; echo ok")["stdout"] == "ok\n"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


# ----------------------------------------------------------------- network

NET = TRY + r'''
import urllib.request, urllib.error
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=30).read().decode()
    except urllib.error.HTTPError as e:
        return "HTTP %d %s" % (e.code, e.read().decode().strip())
def connect(addr):
    s = socket.create_connection(addr, timeout=5)
    s.close()
    return "connected"
report("ifaces", lambda: sorted(n for _, n in socket.if_nameindex()))
'''


def test_network_none_has_only_lo_and_no_way_out(loopback):
    out, log = run_vm(NET + textwrap.dedent("""
        report("direct", lambda: connect(("127.0.0.1", %d)))
        report("outside", lambda: connect(("10.0.2.2", 80)))
        report("proxy", lambda: connect(("127.0.0.1", 3128)))
    """ % loopback[0]), "--net", "none")
    r = lines(out)
    assert r["ifaces"] == "OK ['lo']", (out, log)
    assert r["direct"] == "ERR ECONNREFUSED", r  # the guest's loopback, not the host's
    assert r["outside"] in ("ERR ENETUNREACH", "ERR EHOSTUNREACH"), r
    assert r["proxy"] == "ERR ECONNREFUSED", r


def test_allowlist_goes_through_the_proxy_and_a_denied_target_is_audited(loopback):
    allowed, other = loopback
    out, log = run_vm(NET + textwrap.dedent("""
        report("allowed", lambda: get("http://127.0.0.1:%d/x").strip())
        # 8 MiB down: many times the streams' initial credit both ways
        report("big", lambda: len(get("http://127.0.0.1:%d/big=8388608")))
        report("denied", lambda: get("http://127.0.0.1:%d/y"))
        report("direct", lambda: connect(("127.0.0.1", %d)))
        report("env", lambda: (os.environ["HTTP_PROXY"], os.environ["https_proxy"]))
    """ % (allowed, allowed, other, allowed)), "--net", "allow:127.0.0.1:%d" % allowed)
    r = lines(out)
    assert out["exit_code"] == 0, (out, log)
    assert r["ifaces"] == "OK ['lo']", r
    assert r["allowed"] == "OK loopback %d /x" % allowed, (r, log)
    assert r["big"] == "OK 8388608", r
    assert r["denied"].startswith("OK HTTP 403"), r
    assert "loopback address not in the allowlist" in r["denied"], r
    assert r["direct"] == "ERR ECONNREFUSED", r
    assert r["env"] == "OK ('http://127.0.0.1:3128', 'http://127.0.0.1:3128')", r
    # the proxy's records, as for a container sandbox
    assert "allowed GET 127.0.0.1:%d" % allowed in log, log
    assert "DENIED GET 127.0.0.1:%d" % other in log, log


def test_host_network_is_refused_with_the_reason():
    p = subprocess.run([AGENTD, "run", "--backend", "microvm", "--profile", "permissive",
                        "--net", "host", "--", "/bin/true"],
                       capture_output=True, timeout=60, env=ENV)
    assert p.returncode != 0
    assert b"network.mode: host" in p.stderr and b"no host network" in p.stderr, p.stderr
