"""Each container whose user namespace agentd-runc adds (a config without one, as podman and
ctr give as root) has host ids of its own (issue 16: rt-ids): a slot of 65536 ids leased
from the range (/run/agentd/runc-ids, one lease file per slot naming <--root>/<id>), kept
while the container's state exists (created, running, stopped), reused after delete, never
given twice to concurrent creates, reclaimed from a create killed half-way once nothing of it
is left. So two containers share no per-user kernel budget and cannot signal each other; and
their volumes (the config's binds, idmapped) keep the container's ids on disk, root's files
as uid 0, usable by the next container whatever its slot."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

from oci_engines import IMAGE, Podman, clean_after, make_rootfs_tar, private_engine, runtime_path
from ocirt_util import RUNTIME, new_base, wait_for
from test_oci_runtime_cli import container, subreaper  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(RUNTIME),
                                reason="root and the built agentd-runc needed")

LEASES = "/run/agentd/runc-ids"
SLOT = 65536
SLEEP = ["sleep", "1000"]


def host_uids(pid):
    """The real, effective, saved and fs uids of pid as the host sees them."""
    with open(f"/proc/{pid}/status") as f:
        return [int(x) for x in next(ln for ln in f if ln.startswith("Uid:")).split()[1:]]


def slot_of(pid):
    """The host uid container root maps to in pid's user namespace (uid_map's first line)."""
    with open(f"/proc/{pid}/uid_map") as f:
        inside, outside, count = (int(x) for x in f.read().split()[:3])
    assert inside == 0 and count == SLOT
    return outside


def started(c):
    c.create()
    c.rt.ok("start", c.id)
    return c


def with_applets(c, *names):
    """Busybox applets the shared bundle lacks, linked in c's rootfs."""
    for n in names:
        link = os.path.join(c.bundle, "rootfs", "bin", n)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    return c


def bind(source, destination, *options):
    def edit(cfg):
        cfg["mounts"].append({"destination": destination, "type": "bind", "source": source,
                              "options": ["rbind", *options]})
    return edit


def test_two_containers_inits_have_distinct_unprivileged_host_uids(container):
    a, b = started(container(SLEEP)), started(container(SLEEP))
    ua, ub = host_uids(a.pid), host_uids(b.pid)
    assert 0 not in ua and 0 not in ub, (ua, ub)
    assert set(ua).isdisjoint(ub), ("two containers share host uids", ua, ub)
    sa, sb = slot_of(a.pid), slot_of(b.pid)
    assert abs(sa - sb) >= SLOT, ("their id ranges overlap", sa, sb)
    # the state records the slot (the lease outlives the create process)
    with open(os.path.join(a.rt.root, a.id, "state.json")) as f:
        assert json.load(f)["agentd_userns_uid"] == sa


def test_a_container_cannot_signal_another_in_the_pid_namespace_it_joined(container):
    """B joins A's pid namespace (as a pod shares one) but has a user namespace and host ids
    of its own: its root may not signal A's processes, which it sees (the pid through a
    shared bind)."""
    shared = new_base()
    os.chmod(shared, 0o777)
    a = started(container(["sh", "-c", "sleep 1000 & echo $! > /shared/pid; wait"],
                          config_edit=bind(shared, "/shared")))
    victim_ns = int(wait_for(lambda: open(os.path.join(shared, "pid")).read().strip()
                             if os.path.exists(os.path.join(shared, "pid")) else None,
                             what="A's sleep"))

    def join_a(cfg):
        bind(shared, "/shared")(cfg)
        # no /proc of its own: that pid namespace's proc is A's user namespace's to mount
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "proc"]
        cfg["linux"]["maskedPaths"] = cfg["linux"]["readonlyPaths"] = []
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{a.pid}/ns/pid"
    b = started(container(["sh", "-c", f"kill -9 {victim_ns}; echo $? > /shared/rc"],
                          config_edit=join_a))
    rc = wait_for(lambda: open(os.path.join(shared, "rc")).read().strip()
                  if os.path.exists(os.path.join(shared, "rc")) else None, what="B's kill")
    assert b.reap() is not None
    assert rc != "0", "a process of one container signalled another container's"
    # A's sleep lives on: find it on the host by its pid namespace pid
    ps = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    alive = []
    for p in ps:
        try:
            with open(f"/proc/{p}/status") as f:
                nspid = next(ln for ln in f if ln.startswith("NSpid:")).split()[1:]
        except (OSError, StopIteration):
            continue
        if len(nspid) == 2 and int(nspid[1]) == victim_ns and \
                os.readlink(f"/proc/{p}/ns/pid") == os.readlink(f"/proc/{a.pid}/ns/pid"):
            alive.append(p)
    assert alive, "A's process was killed from B"
    shutil.rmtree(shared, ignore_errors=True)


def test_a_slot_is_kept_while_the_container_exists_and_reused_after_delete(container):
    a = container(SLEEP)
    a.create()			# created, not started
    sa = slot_of(a.pid)
    b = container(["true"])
    b.create()
    sb = slot_of(b.pid)
    b.rt.ok("start", b.id)
    assert b.reap() is not None	# stopped, not deleted
    assert slot_of_state(b) == sb
    c = container(SLEEP)
    c.create()
    sc = slot_of(c.pid)
    assert len({sa, sb, sc}) == 3, ("a slot given twice", sa, sb, sc)
    # the stopped container's slot is still its own
    d = container(SLEEP)
    d.create()
    assert slot_of(d.pid) not in (sa, sb, sc)
    b.rt.ok("delete", b.id)
    assert not os.path.exists(os.path.join(LEASES, str(sb))), "delete left the lease"
    e = container(SLEEP)
    e.create()
    se = slot_of(e.pid)
    if se < sb:
        # a lower slot freed meanwhile by a process outside these containers (a runtime
        # of another build on the same ids): the next free one is the deleted container's
        f = container(SLEEP)
        f.create()
        se = slot_of(f.pid)
    assert se == sb, "the deleted container's slot (the lowest free) not reused"


def slot_of_state(c):
    with open(os.path.join(c.rt.root, c.id, "state.json")) as f:
        return json.load(f)["agentd_userns_uid"]


def test_concurrent_creates_get_distinct_slots(container):
    cs = [container(SLEEP) for _ in range(6)]
    procs = []
    for c in cs:
        c.out = os.path.join(c.base, "out")
        with open(c.out, "ab") as out:
            procs.append(subprocess.Popen(
                c.rt.argv("create", "--bundle", c.bundle, "--pid-file", c.pid_file, c.id),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out))
    for c, p in zip(cs, procs):
        assert p.wait(timeout=120) == 0, (c.output(), c.log())
        c.pid = int(open(c.pid_file).read())
    slots = [slot_of(c.pid) for c in cs]
    assert len(set(slots)) == 6, ("concurrent creates got the same slot", slots)


def set_lease(uid, holder):
    """A lease file as a runtime killed after leasing leaves it: naming its holder."""
    path = os.path.join(LEASES, str(uid))
    with open(path, "w"):
        pass
    os.setxattr(path, "trusted.agentd.sandbox", holder.encode())


def test_a_slot_left_by_a_killed_create_is_reclaimed_once_nothing_of_it_is_left(container):
    a = container(SLEEP)
    a.create()
    s = slot_of(a.pid)
    a.rt.ok("delete", "--force", a.id)
    a.reap()
    # a create killed half-way: its state dir without state.json, the lease naming it
    half = os.path.join(a.rt.root, "half-" + uuid.uuid4().hex[:8])
    os.makedirs(half)
    set_lease(s, half)
    b = container(SLEEP)
    b.create()
    assert slot_of(b.pid) != s, "a slot given while its container's state dir exists"
    # delete --force of it removes the state dir: the slot is free again
    a.rt.ok("delete", "--force", os.path.basename(half))
    c = container(SLEEP)
    c.create()
    assert slot_of(c.pid) == s, "a killed create's slot not reclaimed"
    # but not while a process still runs with one of its ids (an init left behind)
    c.rt.ok("delete", "--force", c.id)
    c.reap()
    left = subprocess.Popen(["setpriv", f"--reuid={s + 5}", f"--regid={s + 5}",
                             "--clear-groups", "sleep", "1000"])
    try:
        set_lease(s, os.path.join(a.rt.root, "gone-" + uuid.uuid4().hex[:8]))
        d = container(SLEEP)
        d.create()
        assert slot_of(d.pid) != s, "a slot given while a process has one of its uids"
    finally:
        left.kill()
        left.wait()


def test_a_delete_sweeps_the_leases_nothing_is_left_of(container):
    """A delete that had to leave its lease (the slot's processes still on their way out)
    or a holder whose root was removed (an engine test's private --root) must not leave the
    file in /run for good: the next delete removes every lease whose holder left nothing,
    and keeps those of live containers."""
    a = container(SLEEP)
    a.create()
    sa = slot_of(a.pid)
    stale = sa + 50 * SLOT
    stale_path = os.path.join(LEASES, str(stale))
    set_lease(stale, os.path.join(a.rt.root, "removed-root-" + uuid.uuid4().hex[:8], "x"))
    try:
        b = container(["true"])
        b.create()
        b.rt.ok("start", b.id)
        b.reap()
        b.rt.ok("delete", b.id)
        assert not os.path.exists(stale_path), "a lease nothing is left of stayed after delete"
        assert os.path.exists(os.path.join(LEASES, str(sa))), "a live container's lease swept"
    finally:
        if os.path.exists(stale_path):
            os.unlink(stale_path)


def test_exhausting_the_range_names_it_and_how_to_widen_it(container, tmp_path):
    """With a range of one slot in /etc/subuid and /etc/subgid (entries the test adds and
    removes), the second container is refused with the range and the fix in the error."""
    saved = {}
    for f in ("/etc/subuid", "/etc/subgid"):
        saved[f] = open(f).read() if os.path.exists(f) else None
    base = 1500000000
    try:
        for f in saved:
            with open(f, "w") as out:
                out.write(f"agentd-runc:{base}:{SLOT}\n" + (saved[f] or ""))
        a = container(SLEEP)
        a.create()
        assert slot_of(a.pid) == base
        b = container(SLEEP)
        with open(os.path.join(b.base, "err"), "w+b") as out:
            p = b.rt("create", "--bundle", b.bundle, b.id, stdin=subprocess.DEVNULL,
                     stdout=out, stderr=out)
            out.seek(0)
            err = out.read().decode()
        assert p.returncode != 0 and f"{base}..{base + SLOT - 1}" in err, err
        assert "/etc/subuid" in err and "agentd-runc:START:COUNT" in err, err
        assert not os.path.exists(os.path.join(b.rt.root, b.id)), "a refused create's state"
    finally:
        for f, text in saved.items():
            if text is None:
                os.unlink(f)
            else:
                with open(f, "w") as out:
                    out.write(text)


def test_a_volume_keeps_the_containers_ids_on_disk_whatever_slot_writes_it(container):
    vol = new_base()		# root's, 0755: only (container) root may write it
    first = container(["sh", "-c", "echo one > /data/f && mkdir /data/d && "
                       "touch /data/d/g && chmod 600 /data/f"], config_edit=bind(vol, "/data"))
    with_applets(first, "mkdir", "chmod").create()
    s1 = slot_of(first.pid)	# kept once stopped (not deleted): the next has another slot
    first.rt.ok("start", first.id)
    assert first.reap() == 0, (first.output(), first.log())
    second = container(["sh", "-c", "cat /data/f && echo two >> /data/f && "
                        "touch /data/d/h && stat -c %u:%g /data/f"],
                       config_edit=bind(vol, "/data"))
    second.create()
    assert slot_of(second.pid) != s1
    second.rt.ok("start", second.id)
    assert second.reap() == 0, (second.output(), second.log())
    out = second.output().decode()
    assert "one" in out and "0:0" in out, out
    for rel in ("f", "d", "d/g", "d/h"):
        st = os.stat(os.path.join(vol, rel))
        assert (st.st_uid, st.st_gid) == (0, 0), (rel, st.st_uid, st.st_gid)
    with open(os.path.join(vol, "f")) as f:
        assert f.read() == "one\ntwo\n"
    # a read-only bind stays read-only
    ro = container(["sh", "-c", "touch /data/x; echo rc=$?"],
                   config_edit=bind(vol, "/data", "ro"))
    started(ro)
    ro.reap()
    assert "rc=0" not in ro.output().decode() and not os.path.exists(os.path.join(vol, "x"))
    shutil.rmtree(vol, ignore_errors=True)


# ------------------------------------------------------------------ under podman
@pytest.fixture(scope="module")
def podman_engine(tmp_path_factory):
    yield from private_engine(Podman, make_rootfs_tar(str(tmp_path_factory.mktemp("rt-ids"))))


@pytest.fixture
def podman(podman_engine):
    yield from clean_after(podman_engine)


def test_podman_containers_have_host_ids_of_their_own_and_share_a_volume(podman):
    """podman as root gives configs without a user namespace: the floor's, a slot each; a
    volume (-v) written by one is root's on disk and the other's to read and write."""
    rt = runtime_path("agentd-runc")
    vol = new_base()
    ids = []
    try:
        for _ in range(2):
            ids.append(podman.cli(rt, "run", "-d", *podman.run_opts(), "-v", f"{vol}:/data",
                                  IMAGE, "sleep", "1000", check=True).stdout.strip())
        pids = [int(podman.cli(rt, "inspect", "--format", "{{.State.Pid}}", c,
                               check=True).stdout.strip()) for c in ids]
        uids = [host_uids(p) for p in pids]
        assert 0 not in uids[0] + uids[1] and set(uids[0]).isdisjoint(uids[1]), uids
        r = podman.cli(rt, "exec", ids[0], "sh", "-c", "echo one > /data/f && mkdir /data/d")
        assert r.returncode == 0, r
        r = podman.cli(rt, "exec", ids[1], "sh", "-c",
                       "cat /data/f && echo two >> /data/f && touch /data/d/g")
        assert r.returncode == 0 and r.stdout == "one\n", r
        for rel in ("f", "d", "d/g"):
            st = os.stat(os.path.join(vol, rel))
            assert (st.st_uid, st.st_gid) == (0, 0), (rel, st.st_uid, st.st_gid)
    finally:
        podman.cli(rt, "rm", "-f", "--time=0", *ids)
        shutil.rmtree(vol, ignore_errors=True)
