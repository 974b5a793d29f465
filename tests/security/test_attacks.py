"""Single-shot attacks: one sbxprobe attempt from inside a fresh sandbox, judged by its
verdict against the expectation table, and by the host afterwards (nothing created or
changed, hostname and clock as they were)."""
import os
import socket
import subprocess

import pytest

from .secsuite import AGENTD, EXPECT, HostState, check, first_block_device, probe

# attack -> (sbxprobe argv, host paths that must not appear). Templates: {hostdir},
# {token}, {agentd}, {blockdev}, {state} (the default state dir).
SIMPLE = {
    # filesystem: secrets, system and home directories, /proc magic links, symlinks
    "read-host-secret": (["read", "{hostdir}/secret.txt"], []),
    "read-etc-shadow": (["read", "/etc/shadow"], []),
    "write-usr": (["write", "/usr/agentd-sec-{token}"], ["/usr/agentd-sec-{token}"]),
    "write-etc": (["write", "/etc/agentd-sec-{token}"], ["/etc/agentd-sec-{token}"]),
    "write-home": (["write", "/root/agentd-sec-{token}"], ["/root/agentd-sec-{token}"]),
    "write-host-dir": (["write", "{hostdir}/planted-{token}"], ["{hostdir}/planted-{token}"]),
    "read-proc1-root": (["read", "/proc/1/root{hostdir}/secret.txt"], []),
    "listdir-proc1-root": (["listdir", "/proc/1/root{hostdir}"], []),
    "write-proc1-root": (["write", "/proc/1/root{hostdir}/planted-{token}"],
                         ["{hostdir}/planted-{token}"]),
    "proc-self-exe-write": (["proc-self-exe-write"], []),
    "proc-exe-write-all": (["proc-exe-write-all"], []),
    "write-agentd-binary": (["open-write", "{agentd}"], []),
    "symlink-read": (["via-symlink", "read", "{hostdir}/secret.txt"], []),
    "symlink-write": (["via-symlink", "write", "{hostdir}/writable.txt"], []),
    # privileges
    "no-new-privs": (["caps"], []),
    "setuid0": (["setuid0"], []),
    # devices
    "dev-kmsg": (["read", "/dev/kmsg"], []),
    "dev-mem": (["open-dev", "/dev/mem"], []),
    "block-device": (["open-dev", "{blockdev}"], []),
    "mknod-char": (["mknod-char", "agentd-sec-c-{token}"], []),
    "mknod-block": (["mknod-block", "agentd-sec-b-{token}"], []),
    # namespaces and mounts
    "unshare-user": (["unshare", "user"], []),
    "clone-newuser": (["clone-newuser"], []),
    "clone3-newuser": (["clone3"], []),
    "x32-unshare-user": (["x32-unshare-user"], []),
    "i386-unshare-user": (["i386-unshare-user"], []),
    "mount": (["mount"], []),
    "chroot": (["chroot", "/"], []),
    "pivot-root": (["pivot-root"], []),
    "setns-mnt": (["setns", "/proc/1/ns/mnt"], []),
    # kernel attack surface
    "init-module": (["init-module"], []),
    "finit-module": (["finit-module"], []),
    "keyctl": (["keyctl"], []),
    "bpf": (["bpf"], []),
    "perf-event-open": (["perf-event-open"], []),
    "userfaultfd": (["userfaultfd"], []),
    "io-uring": (["io-uring"], []),
    "sethostname": (["sethostname", "agentd-sec-{token}"], []),
    "settime": (["settime"], []),
    "adjtimex": (["adjtimex"], []),
    "write-proc-sys": (["write-proc-sys"], []),
    "sysrq": (["sysrq"], []),
    "kallsyms": (["kallsyms"], []),
    "cgroup-escape": (["cgroup-escape"], []),
    "cgroup-view": (["cgroup-view"], []),
    "mountinfo-state-dir": (["mountinfo-path", "{state}"], []),
    # network (the outside: TEST-NET-1, nothing answers; refused, not timed out)
    "egress": (["connect-egress", "192.0.2.1", "80", "1500"], []),
    "netdev-config": (["netdev-config"], []),
    "raw-socket": (["socket", "raw"], []),
    "packet-socket": (["socket", "packet"], []),
    "vsock-socket": (["socket", "vsock"], []),
    "alg-socket": (["socket", "alg"], []),
    # processes inside
    "ptrace-pid1": (["ptrace", "1"], []),
    "process-vm-readv-pid1": (["process-vm-readv", "1"], []),
}

assert set(SIMPLE) <= set(EXPECT), set(SIMPLE) - set(EXPECT)


@pytest.mark.parametrize("attack", list(SIMPLE))
def test_attack(attack, backend, hostdir, token):
    argv, host_paths = SIMPLE[attack]
    ctx = {"hostdir": hostdir, "token": token, "agentd": os.path.realpath(AGENTD),
           "blockdev": first_block_device(), "state": "/var/lib/agentd"}  # the suite is root
    if "{blockdev}" in " ".join(argv) and not ctx["blockdev"]:
        pytest.skip("no block device on this host")
    argv = [a.format(**ctx) for a in argv]
    host_paths = [p.format(**ctx) for p in host_paths]
    hostname = socket.gethostname()
    before = HostState(hostdir)
    try:
        r, verdict, line = probe(backend, *argv)
        if host_paths and verdict == "ALLOWED" and \
                not any(os.path.lexists(p) for p in host_paths):
            # The write succeeded, but into the sandbox's own root (a container's private
            # /root, say), not the host's: no escape.
            verdict, line = "BLOCKED", f"host unchanged ({line})"
        exp = check(attack, backend, verdict, line)
        after = HostState(hostdir)
        if exp.kind == "blocked":
            assert not before.diff(after), f"{attack} on {backend} changed the host: " \
                f"{before.diff(after)} ({line})"
            for p in host_paths:
                assert not os.path.lexists(p), f"{attack} on {backend} created {p}"
        if attack == "no-new-privs":
            assert "NoNewPrivs=1" in line, line
    finally:
        for p in host_paths:
            if os.path.lexists(p):
                os.unlink(p)
        if socket.gethostname() != hostname:
            subprocess.run(["hostname", hostname], check=False)
