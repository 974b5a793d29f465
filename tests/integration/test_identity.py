"""Who a container sandbox is on the host: its own uid/gid leased from the subordinate range
(/run/agentd/ids), freed after its cleanup and not before; a daemon whose state dir is below
a directory those uids cannot search; the daemon run as a normal user with a delegated
cgroup; and a server error's log line that says why."""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.parse

from conftest import BUILD
from daemon_util import CGROUP_DIRS, Daemon, wait_until
from test_unprivileged import NOBODY, as_nobody_in, delegated, userdir  # noqa: F401

IDS_DIR = "/run/agentd/ids"
ID_BASE = 1 << 30


def host_uid(d, sid):
    """The host uid the sandbox's user maps to (its uid_map, seen from inside)."""
    r = d.exec(sid, ["/bin/cat", "/proc/self/uid_map"])
    assert r.status == 200 and r.json["exit_code"] == 0, r
    return int(r.json["stdout"].split()[1])


def files_path(sid, p):
    return f"/v1/sandboxes/{sid}/files?path=" + urllib.parse.quote(p, safe="")


def exercise(d):
    """Create, exec, the files API, snapshot and restore, destroy: each must succeed."""
    sid = d.create()
    r = d.exec(sid, ["/bin/sh", "-c", "id -u; echo one > state.txt"])
    assert r.status == 200 and r.json["exit_code"] == 0 and r.json["stdout"] == "1000\n", r
    r = d.request("PUT", files_path(sid, "/workspace/up.txt"), raw=b"uploaded\n")
    assert r.status == 200, r
    r = d.get(files_path(sid, "/workspace/state.txt"))
    assert r.status == 200 and r.body == b"one\n", r
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "s"})
    assert r.status == 201, r
    snap = r.json["snapshot_id"]
    assert d.exec(sid, ["/bin/sh", "-c", "echo two > state.txt"]).json["exit_code"] == 0
    r = d.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap})
    assert r.status == 200, r
    r = d.exec(sid, ["/bin/cat", "state.txt", "up.txt"])
    assert r.json["stdout"] == "one\nuploaded\n", r
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200


def test_state_dir_below_a_directory_sandboxes_cannot_search():
    """mktemp -d is 0700: the mount sources are opened by the daemon and handed over."""
    top = tempfile.mkdtemp(prefix="agentd-0700-", dir="/var/tmp")
    assert os.stat(top).st_mode & 0o777 == 0o700
    d = Daemon(state_dir=os.path.join(top, "state"))
    try:
        d.start()
        exercise(d)
        # a one-shot run below it too
        r = subprocess.run([os.path.join(BUILD, "agentd"), "run", "--backend", "container",
                            "--", "/bin/cat", "/etc/hostname"], capture_output=True,
                           timeout=60, env={"PATH": "/usr/bin:/bin",
                                            "AGENTD_WORK_ROOT": os.path.join(top, "w", "s")})
        assert r.returncode == 0 and r.stdout == b"agentd\n", r
    finally:
        d.cleanup()
        shutil.rmtree(top, ignore_errors=True)


def test_a_server_error_is_logged_with_its_reason():
    closed = tempfile.mkdtemp(prefix="agentd-rootonly-", dir="/var/tmp")  # 0700, root's
    d = Daemon()
    try:
        d.start()
        r = d.post("/v1/sandboxes", {"backend": "container",
                                     "spec": {"allowed_paths_rw": [closed]}})
        assert r.status == 500, r
        why = r.error["message"]
        assert "not writable" in why, r
        log = d.read_log()
        line = [x for x in log.splitlines() if "status=500" in x]
        assert line and why in line[-1], log
    finally:
        d.cleanup()
        os.rmdir(closed)


LEASE_XATTR = "trusted.agentd.sandbox"


def lease_of(uid):
    """The sandbox a uid's lease names (its xattr); "" when free (the file is removed at
    cleanup)."""
    try:
        return os.getxattr(os.path.join(IDS_DIR, str(uid)), LEASE_XATTR).decode()
    except FileNotFoundError:
        return ""


def lease_up_to(d, uid):
    """Create sandboxes (kept) until one gets a host uid >= uid: ids are leased lowest
    free first, so that one is uid exactly when uid is free. (sandboxes, its uid)."""
    sids = []
    for _ in range(16):
        sids.append(d.create())
        got = host_uid(d, sids[-1])
        if got >= uid:
            return sids, got
    raise AssertionError(f"16 sandboxes and none at or above {uid}")


def cgroup_parents(sid=None):
    """The agentd/ dirs of every hierarchy now (CGROUP_DIRS was globbed when the session
    started, before agentd had set some of them up), or those holding sandbox sid's cgroup
    (real dirs: a hierarchy mounted at two names, cpu and cpuacct, counts once)."""
    found = glob.glob("/sys/fs/cgroup/*/agentd") + (
        ["/sys/fs/cgroup/agentd"] if os.path.isdir("/sys/fs/cgroup/agentd") else [])
    out, seen = [], set()
    for p in sorted(set(found) | set(CGROUP_DIRS)):
        if not os.path.isdir(p) or (sid and not os.path.isdir(os.path.join(p, sid))):
            continue
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def test_a_uid_is_reused_only_after_its_sandbox_is_cleaned_up():
    d = Daemon()
    try:
        d.start()
        sid = d.create()
        uid = host_uid(d, sid)
        assert uid >= ID_BASE and lease_of(uid) == sid
        # A second one at the same time never gets it.
        other = d.create()
        assert host_uid(d, other) != uid
        d.delete(f"/v1/sandboxes/{other}")
        # The owner is killed: the janitor removes the sandbox's cgroup (its processes die
        # with it), then its lease file, which named it until then.
        d.stop(signal.SIGKILL)
        assert wait_until(lambda: not any(os.path.isdir(os.path.join(p, sid))
                                          for p in cgroup_parents()), 20)
        assert wait_until(lambda: lease_of(uid) == "", 20), "the janitor left the lease"
        d.start()
        sids, got = lease_up_to(d, uid)
        assert got == uid, "the freed uid is leased again"
        assert lease_of(uid) == sids[-1]
        for x in sids:
            d.delete(f"/v1/sandboxes/{x}")
        assert lease_of(uid) == ""
    finally:
        d.cleanup()


def test_a_lease_naming_a_live_cgroup_is_not_reused():
    """A killed owner's sandbox whose cgroup is still there (processes may remain): its
    uid stays out of use until the cgroup is gone."""
    d = Daemon()
    fake = "f" * 32
    made = []
    holder = None
    try:
        d.start()
        sid = d.create()
        uid = host_uid(d, sid)
        parents = cgroup_parents(sid)   # the hierarchies a sandbox's cgroup spans
        assert parents
        d.delete(f"/v1/sandboxes/{sid}")
        assert lease_of(uid) == ""
        # uid is the lowest free one now: pretend a dead owner's sandbox still holds it,
        # a process still in its cgroup (an empty one is any agentd's to collect)
        holder = subprocess.Popen(["sleep", "600"])
        for p in parents:
            os.mkdir(os.path.join(p, fake))
            made.append(os.path.join(p, fake))
            with open(os.path.join(p, fake, "cgroup.procs"), "w") as f:
                f.write(str(holder.pid))
        lease = os.path.join(IDS_DIR, str(uid))
        open(lease, "w").close()
        os.setxattr(lease, LEASE_XATTR, fake.encode())
        sids, got = lease_up_to(d, uid)
        assert got > uid, "a uid whose last sandbox's cgroup remains was leased"
        for x in sids:
            d.delete(f"/v1/sandboxes/{x}")
        holder.kill()
        holder.wait()
        for m in made:
            os.rmdir(m)
        made = []
        sids, got = lease_up_to(d, uid)
        assert got == uid, "free again once the cgroup is gone"
        for x in sids:
            d.delete(f"/v1/sandboxes/{x}")
    finally:
        if holder:
            holder.kill()
            holder.wait()
        for m in made:
            if os.path.isdir(m):
                os.rmdir(m)
        d.cleanup()


def serve_as_nobody(userdir, delegated):  # noqa: F811
    shutil.copy(os.path.join(BUILD, "agentd-serve.so"), userdir)
    run = os.path.join(userdir, "run")
    d = Daemon(state_dir=os.path.join(run, "state"))
    d.socket = os.path.join(run, "agentd.sock")
    d.log = open(d.log_path, "ab")
    d.proc = subprocess.Popen(
        [os.path.join(userdir, "agentd"), "serve", "--socket", d.socket, "--state-dir",
         d.state_dir, "--drain", "1s", "--destroy-on-exit"], stdout=d.log, stderr=d.log, cwd=userdir,
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": run, "HOME": userdir},
        preexec_fn=as_nobody_in(delegated))

    def up():
        if d.proc.poll() is not None:
            return True
        try:
            return d.request("GET", "/v1/health", new_conn=True).status == 200
        except OSError:
            return False
    assert wait_until(up, 20)
    assert d.proc.poll() is None, d.read_log()
    return d


def test_unprivileged_daemon_serves_container_sandboxes(userdir, delegated):  # noqa: F811
    d = serve_as_nobody(userdir, delegated)
    try:
        exercise(d)
        sid = d.create()
        assert host_uid(d, sid) == NOBODY   # the daemon's own uid: it has no range
        assert d.delete(f"/v1/sandboxes/{sid}").status == 200
        assert "status=500" not in d.read_log()
    finally:
        d.cleanup()


def test_a_policy_path_is_reached_only_as_far_as_the_sandbox_user_could():
    """agentd opens the policy's bind sources with the sandbox's ids, not its own: a path
    below a directory that uid cannot search is refused, as a bind by path would be (a
    symlink another sandbox planted on the way gets no further than that sandbox could)."""
    top = tempfile.mkdtemp(prefix="agentd-0700-", dir="/var/tmp")
    try:
        sub = os.path.join(top, "sub")
        os.mkdir(sub, 0o755)
        with open(os.path.join(sub, "f"), "w") as f:
            f.write("behind a 0700 dir\n")
        r = subprocess.run([os.path.join(BUILD, "agentd"), "run", "--backend", "container",
                            "--ro", sub, "--", "/bin/cat", os.path.join(sub, "f")],
                           capture_output=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert r.returncode == 125, r
        assert f"bind {sub}: Permission denied".encode() in r.stderr, r
        assert b"behind" not in r.stdout
    finally:
        shutil.rmtree(top, ignore_errors=True)
