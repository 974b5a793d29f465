"""Host kernel state that a sandbox without the matching namespace would share: SysV IPC
(the process backends have no IPC namespace, so their filter refuses it) and netlink
families that broadcast or list host state (device uevents, socket diagnostics), refused
by every backend's filter while NETLINK_ROUTE stays usable."""
import ctypes
import ctypes.util
import os
import secrets

import pytest

from .secsuite import available_backends, check, probe

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
IPC_CREAT, IPC_RMID, IPC_PRIVATE = 0o1000, 0, 0


def net_opts(net):
    # "host" needs the permissive profile; the filter is the default one all the same
    return ("--net", "none") if net == "none" else ("--profile", "permissive", "--net", "host")


def ipc_keys(kind):
    """Keys of the host's SysV objects of kind shm, sem or msg (/proc/sysvipc)."""
    with open(f"/proc/sysvipc/{kind}") as f:
        next(f)
        return {int(line.split()[0]) for line in f}


@pytest.fixture
def host_segment():
    """A host shared memory segment readable by anyone (0644), as a careless host program
    leaves one, holding 'S'."""
    shmid = libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o644)
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    libc.shmat.restype = ctypes.c_void_p
    addr = libc.shmat(shmid, None, 0)
    ctypes.memset(addr, ord("S"), 1)
    libc.shmdt(ctypes.c_void_p(addr))
    yield shmid
    libc.shmctl(shmid, IPC_RMID, None)


@pytest.mark.parametrize("net", ["none", "host"])
def test_host_sysv_segment_cannot_be_attached(backend, host_segment, net):
    if backend == "container" and net == "host":
        pytest.skip("the container's IPC namespace does not depend on the network mode")
    if backend == "microvm" and net == "host":  # issue 15
        pytest.skip("a micro-VM refuses network host at create (its own kernel, no host "
                    "IPC either way; test_microvm_map checks the refusal)")
    r, verdict, line = probe(backend, "sysv-shm-attach", str(host_segment),
                             opts=net_opts(net))
    check("sysv-shm-host", backend, verdict, line)


@pytest.mark.parametrize("kind", ["shm", "sem", "msg"])
def test_sysv_objects_made_inside_are_not_left_on_the_host(backend, kind):
    key = 0x41000000 | secrets.randbelow(1 << 24)
    before = ipc_keys(kind)
    try:
        r, verdict, line = probe(backend, "sysv-create", kind, hex(key))
        left = key in ipc_keys(kind) - before
        if verdict == "ALLOWED" and not left:
            # made in the sandbox's own IPC namespace, gone with it: no trace on the host
            verdict, line = "BLOCKED", f"nothing left on the host ({line})"
        check("sysv-ipc-leftover", backend, verdict, line)
    finally:
        for k in ipc_keys(kind) - before:
            if k == key:
                get = {"shm": lambda: libc.shmget(key, 0, 0), "sem": lambda: libc.semget(key, 0, 0),
                       "msg": lambda: libc.msgget(key, 0)}[kind]
                ctl = {"shm": libc.shmctl, "sem": libc.semctl, "msg": libc.msgctl}[kind]
                ident = get()
                if ident >= 0:
                    ctl(ident, IPC_RMID, 0) if kind == "sem" else ctl(ident, IPC_RMID, None)


# NETLINK_KOBJECT_UEVENT (15) group 1: the host's device events; NETLINK_SOCK_DIAG (4):
# the sockets of the network namespace with their unix paths and inodes.
@pytest.mark.parametrize("attack,proto,groups", [("netlink-uevent", 15, 1),
                                                 ("netlink-sock-diag", 4, 0)])
@pytest.mark.parametrize("net", ["none", "host"])
def test_netlink_host_families_are_refused(backend, attack, proto, groups, net):
    r, verdict, line = probe(backend, "netlink-bind", str(proto), str(groups),
                             opts=net_opts(net))
    if verdict == "REFUSED" and net == "host":
        pytest.skip(f"{backend} does not run with --net host here: {line}")
    check(attack, backend, verdict, line)


@pytest.mark.parametrize("backend_name", ["container", "linux-native"])
def test_netlink_route_stays_usable(backend_name):
    """getaddrinfo(AI_ADDRCONFIG) and `ip addr` read NETLINK_ROUTE: not refused where the
    sandbox has a network (the container always has its own namespace)."""
    if backend_name not in available_backends():
        pytest.skip(f"{backend_name} not available here")
    opts = net_opts("host") if backend_name == "linux-native" else ()
    r, verdict, line = probe(backend_name, "netlink-bind", "0", "0", opts=opts)
    assert verdict == "ALLOWED", line


@pytest.fixture
def allow_all_profile(tmp_path):
    """An OCI seccomp profile that allows everything, including socket() and shmget()."""
    p = tmp_path / "allow-all.json"
    p.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ['
                 '{"names": ["socket", "shmget", "shmat"], "action": "SCMP_ACT_ALLOW"}]}')
    os.chmod(tmp_path, 0o755)
    os.chmod(p, 0o644)
    return str(p)


def test_a_json_profile_keeps_the_backend_floor(backend, allow_all_profile, host_segment):
    """What the backend's confinement needs (no host uevents; no host SysV IPC without an
    IPC namespace) is a filter of its own next to a user's profile, whatever it allows."""
    if backend == "host-direct":
        pytest.skip("host-direct installs no filter, a profile's or agentd's")
    opts = ("--profile", "permissive", "--net", "host", "--seccomp", allow_all_profile)
    r, verdict, line = probe(backend, "netlink-bind", "15", "1", opts=opts)
    if verdict == "REFUSED":
        pytest.skip(f"{backend} does not run with --net host here: {line}")
    check("netlink-uevent", backend, verdict, line)
    r, verdict, line = probe(backend, "sysv-shm-attach", str(host_segment), opts=opts)
    check("sysv-shm-host", backend, verdict, line)
