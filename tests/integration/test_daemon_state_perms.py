"""The daemon's state dir is private whatever the umask: the database (every sandbox's policy,
the audit's argv) and its -wal/-shm are 0600, the dirs 0711 (search only, for the sandboxes'
uids), checked at start (a loose mode is fixed, another owner or a symlink refused); and a
sandbox's environment values reach neither the database nor the daemon's log."""
import os
import secrets
import stat
import subprocess

import pytest

from conftest import AGENTD
from daemon_util import Daemon

SECRET_FILES = ("lock", "agentd.db", "agentd.db-wal", "agentd.db-shm")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def start_with_umask(dm, mask):
    old = os.umask(mask)
    try:
        return dm.start()
    finally:
        os.umask(old)


def all_bytes_under(top):
    for root, _dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    yield p, fh.read()


@pytest.mark.parametrize("backend", ["linux-native", "container"])
@pytest.mark.parametrize("umask", [0, 0o077])
def test_state_files_are_0600_and_env_values_stay_out_of_db_and_log(backend, umask):
    """umask 0 would make SQLite's files 0644/0666: any local user would read the API keys
    a sandbox was given back from agentd.db. Under the unit's UMask=0077 the sandboxes
    still reach their dirs."""
    key = "sk-" + secrets.token_hex(16)
    dm = start_with_umask(Daemon(), umask)
    try:
        spec = {"environment": {"OPENAI_API_KEY": key}}
        sid = dm.create(backend=backend, spec=spec)
        # the values reach the command (its output is the caller's, never stored)
        r = dm.exec(sid, ["/bin/sh", "-c", 'printf "%s %s" "$OPENAI_API_KEY" "$X"'],
                    env={"X": key + "-exec"})
        assert r.status == 200 and r.json["stdout"] == f"{key} {key}-exec", r
        # a request that fails still names only the variable
        bad = dm.exec(sid, ["/bin/true"], env={"LD_PRELOAD": key})
        assert bad.status == 400 and key not in bad.body.decode(), bad
        got = dm.get(f"/v1/sandboxes/{sid}")
        assert got.json["spec"]["environment"]["OPENAI_API_KEY"] == key  # the caller's view
        assert dm.delete(f"/v1/sandboxes/{sid}").status in (200, 204)
        row = dm.get(f"/v1/sandboxes/{sid}")
        assert row.status == 200 and row.json["spec"]["environment"] == {
            "OPENAI_API_KEY": "(redacted)"}, row

        st = dm.state_dir
        assert mode(st) == 0o711 and mode(os.path.join(st, "sandboxes")) == 0o711
        for name in SECRET_FILES:
            p = os.path.join(st, name)
            if os.path.exists(p):
                assert mode(p) == 0o600, f"{name} is {oct(mode(p))}"
        assert os.path.exists(os.path.join(st, "agentd.db-wal"))
        for p, data in all_bytes_under(st):
            assert key.encode() not in data, f"{p} holds the sandbox's API key"
    finally:
        dm.stop()
        log = dm.read_log()
        dm.cleanup()
    assert key not in log, "the daemon's log holds an environment value"


def test_loose_modes_are_fixed_at_start():
    dm = Daemon()
    os.makedirs(os.path.join(dm.state_dir, "sandboxes"))
    os.makedirs(os.path.join(dm.state_dir, "snapshots"))
    os.chmod(dm.state_dir, 0o755)
    os.chmod(os.path.join(dm.state_dir, "sandboxes"), 0o777)
    os.chmod(os.path.join(dm.state_dir, "snapshots"), 0o755)
    dm.start()
    dm.stop()
    for name in ("agentd.db", "lock"):   # as an older agentd left them
        os.chmod(os.path.join(dm.state_dir, name), 0o644)
    try:
        start_with_umask(dm, 0)
        assert mode(dm.state_dir) == 0o711
        assert mode(os.path.join(dm.state_dir, "sandboxes")) == 0o711
        assert mode(os.path.join(dm.state_dir, "snapshots")) == 0o700
        for name in ("agentd.db", "lock"):
            assert mode(os.path.join(dm.state_dir, name)) == 0o600
        assert "state dir: mode fixed" in dm.read_log()
    finally:
        dm.cleanup()


def refused(dm):
    p = subprocess.run([AGENTD, "serve", "--socket", dm.socket, "--state-dir", dm.state_dir],
                       capture_output=True, timeout=30,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return p.returncode, p.stderr.decode()


def test_state_dir_of_another_uid_is_refused():
    dm = Daemon()
    try:
        os.makedirs(dm.state_dir, mode=0o700)
        os.chown(dm.state_dir, 65534, 65534)
        rc, err = refused(dm)
        assert rc == 125 and "owned by uid 65534" in err and "refusing" in err, err
        assert not os.path.exists(os.path.join(dm.state_dir, "agentd.db"))
    finally:
        dm.cleanup()


def test_a_symlink_in_place_of_the_database_is_refused():
    dm = Daemon()
    try:
        os.makedirs(dm.state_dir, mode=0o711)
        target = os.path.join(dm.dir, "elsewhere.db")
        os.symlink(target, os.path.join(dm.state_dir, "agentd.db"))
        rc, err = refused(dm)
        assert rc == 125 and "agentd.db" in err, err
        assert not os.path.exists(target)
    finally:
        dm.cleanup()


def host_mountinfo():
    with open("/proc/self/mountinfo") as f:
        return f.read()


def test_container_mountinfo_shows_no_state_dir_path():
    """A sandbox's /etc and /dev are directories of its tmpfs root, its /etc files copied
    from the rootfs cache: a bind from the cache would read <state dir>/rootfs-cache/... in
    the sandbox's mountinfo."""
    dm = Daemon().start()
    try:
        if "container" not in {b["name"] for b in dm.get("/v1/backends").json["backends"]
                               if b.get("available")}:
            pytest.skip("the container backend is not available here")
        sid = dm.create(backend="container")
        r = dm.exec(sid, ["/bin/cat", "/proc/self/mountinfo"])
        assert r.status == 200 and r.json["exit_code"] == 0, r
        inside = r.json["stdout"]
        points = [line.split()[4] for line in inside.splitlines()]
        assert "/" in points and "/etc" not in points and "/dev" not in points, inside
        for leak in (dm.state_dir, dm.dir, "/agentd-daemon-", "rootfs-cache", sid):
            assert leak not in inside, f"{leak!r} in the sandbox's mountinfo:\n{inside}"
        assert "rootfs cache stays on disk" not in dm.read_log()
        # the cache's tmpfs is the daemon's own: never in the host's mount table
        assert dm.state_dir not in host_mountinfo()
        dm.delete(f"/v1/sandboxes/{sid}")
    finally:
        dm.cleanup()
    assert dm.state_dir not in host_mountinfo()


def test_a_snapshot_store_of_another_uid_is_refused():
    """issue 12: snapshots. The store holds files with the sandboxes' ids: one another uid
    owns could be swapped or read."""
    dm = Daemon()
    try:
        os.makedirs(os.path.join(dm.state_dir, "snapshots"), mode=0o700)
        os.chmod(dm.state_dir, 0o711)
        os.chown(os.path.join(dm.state_dir, "snapshots"), 65534, 65534)
        rc, err = refused(dm)
        assert rc == 125 and "snapshots is owned by uid 65534" in err, err
    finally:
        dm.cleanup()
