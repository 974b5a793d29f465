"""What linux-native enforces (Landlock, seccomp, socket filter), each tried from inside
the sandbox; host-direct is run alongside to prove the test would catch a missing wall."""
import os
import socket
import threading

import pytest

from conftest import hostdir, probe, run  # noqa: F401


def test_landlock_blocks_reading_outside_policy(hostdir):
    secret = os.path.join(hostdir, "secret.txt")
    _, verdict, line = probe("linux-native", "read", secret)
    assert verdict == "BLOCKED", line
    _, verdict, line = probe("host-direct", "read", secret)
    assert verdict == "ALLOWED", "test is vacuous: host-direct should read it: " + line


def test_landlock_ro_path_is_readable_not_writable(hostdir):
    secret = os.path.join(hostdir, "secret.txt")
    _, verdict, line = probe("linux-native", "read", secret, opts=["--ro", hostdir])
    assert verdict == "ALLOWED", line
    _, verdict, line = probe("linux-native", "write", secret, opts=["--ro", hostdir])
    assert verdict == "BLOCKED", line
    assert open(secret).read() == "TOP-SECRET\n"


def test_landlock_blocks_writing_outside_policy(hostdir):
    target = os.path.join(hostdir, "planted")
    _, verdict, line = probe("linux-native", "write", target)
    assert verdict == "BLOCKED", line
    assert not os.path.exists(target)
    _, verdict, line = probe("host-direct", "write", target)
    assert verdict == "ALLOWED", "test is vacuous: " + line


def test_landlock_rw_path_is_writable(hostdir):
    target = os.path.join(hostdir, "written")
    _, verdict, line = probe("linux-native", "write", target, opts=["--rw", hostdir])
    assert verdict == "ALLOWED", line
    assert os.path.exists(target)


@pytest.mark.parametrize("path", ["/etc/shadow", "/etc/gshadow", "/root", "/etc/sudoers",
                                  "/var/lib/agentd"])
def test_secrets_unreadable(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} absent on this host")
    cmd = "listdir" if os.path.isdir(path) else "read"
    _, verdict, line = probe("linux-native", cmd, path, opts=["--user", "0"])
    assert verdict == "BLOCKED", line


def test_system_runtime_usable():
    r = run("linux-native", "/usr/bin/python3", "-c",
            "import json, ssl, hashlib; print(json.dumps({'ok': 1}))")
    assert r.rc == 0, r
    assert r.json["stdout"] == '{"ok": 1}\n'


def test_workspace_persists_within_sandbox_and_is_private():
    r = run("linux-native", "/bin/sh", "-c",
            'pwd; echo data > f; cat f; echo t > "$TMPDIR/x"; cat "$TMPDIR/x"; ls /tmp')
    lines = r.json["stdout"].splitlines()
    assert lines[1:3] == ["data", "t"], r
    # the host's shared /tmp is not part of the sandbox: TMPDIR is its private scratch
    assert r.rc != 0 and "/tmp" in r.json["stderr"]


def test_write_usr_and_etc_blocked():
    for target in ("/usr/agentd-planted", "/etc/agentd-planted"):
        _, verdict, line = probe("linux-native", "write", target, opts=["--user", "0"])
        assert verdict == "BLOCKED", line
        assert not os.path.exists(target)


@pytest.mark.parametrize("attack", [
    ["unshare", "user"], ["unshare", "mount"], ["unshare", "net"], ["clone-newuser"],
    ["clone3"], ["mount"], ["keyctl"], ["bpf"], ["perf-event-open"], ["userfaultfd"],
    ["io-uring"], ["init-module"], ["finit-module"], ["tiocsti"], ["socket", "vsock"],
    ["socket", "alg"], ["ptrace", "1"], ["process-vm-readv", "1"], ["settime"],
    ["reboot"], ["open-tree", "/"], ["fsopen"], ["chroot", "/"], ["swapon"],
])
def test_seccomp_denies(attack):
    _, verdict, line = probe("linux-native", *attack, opts=["--user", "0"])
    assert verdict == "BLOCKED", f"{attack}: {line}"


@pytest.mark.parametrize("abi", ["x32-getpid", "i386-getpid"])
def test_foreign_syscall_abis_denied(abi):
    r, verdict, line = probe("linux-native", abi)
    assert verdict != "ALLOWED", line
    assert r.rc != 0


def test_seccomp_none_profile_is_honoured():
    # With the filter off, unshare of a user namespace is up to the kernel again: the
    # result differs from the default profile's EPERM only in where the denial comes from,
    # so check the filter status the kernel reports instead.
    # Network "none" keeps its socket rules as the only filter (test_network_process.py),
    # so the profile is seen alone on the host network.
    r = run("linux-native", "/bin/grep", "Seccomp:", "/proc/self/status",
            opts=["--profile", "permissive", "--seccomp", "none"])
    assert r.json["stdout"].split()[1] == "0", r
    r = run("linux-native", "/bin/grep", "Seccomp:", "/proc/self/status",
            opts=["--profile", "permissive"])
    assert r.json["stdout"].split()[1] == "2", r


@pytest.fixture
def tcp_listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    stop = threading.Event()

    def accept():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield s.getsockname()[1]
    stop.set()
    t.join()
    s.close()


def test_network_none_blocks_loopback_tcp(tcp_listener):
    _, verdict, line = probe("linux-native", "connect-tcp", "127.0.0.1", str(tcp_listener))
    assert verdict == "BLOCKED", line
    _, verdict, line = probe("host-direct", "connect-tcp", "127.0.0.1", str(tcp_listener))
    assert verdict == "ALLOWED", "test is vacuous: " + line


def test_network_none_blocks_udp_and_raw():
    for attack in (["connect-udp", "127.0.0.1", "53"], ["socket", "inet6"],
                   ["socket", "packet"], ["socket", "raw"], ["socket", "netlink"]):
        _, verdict, line = probe("linux-native", *attack)
        assert verdict == "BLOCKED", f"{attack}: {line}"


def test_network_host_allows_loopback(tcp_listener):
    _, verdict, line = probe("linux-native", "connect-tcp", "127.0.0.1", str(tcp_listener),
                             opts=["--net", "host", "--profile", "permissive"])
    assert verdict == "ALLOWED", line


def test_abstract_unix_socket_to_host_blocked():
    name = "agentd-test-%d" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(1)
    try:
        _, verdict, line = probe("linux-native", "connect-abstract", name)
        assert verdict == "BLOCKED", line
        _, verdict, line = probe("host-direct", "connect-abstract", name)
        assert verdict == "ALLOWED", "test is vacuous: " + line
    finally:
        s.close()


def test_cannot_signal_host_processes():
    import subprocess
    victim = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: os.setresuid(65534, 65534, 65534))
    try:
        _, verdict, line = probe("linux-native", "kill", str(victim.pid), "9")
        assert verdict == "BLOCKED", line
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("workdir", ["/proc/self/cwd", "/proc/self/root", "/", "/tmp/agentd-x",
                                     "/etc"])
def test_host_workdir_must_be_granted(workdir):
    r = run("linux-native", "/bin/true", opts=["--workdir", workdir, "--user", "0"])
    assert r.rc == 125, r
    assert b"workdir" in r.stderr


def test_workdir_inside_an_rw_path_is_created_for_the_sandbox(hostdir):
    wd = os.path.join(hostdir, "sub", "dir")
    r = run("linux-native", "/bin/sh", "-c", "pwd; echo ok > f",
            opts=["--rw", hostdir, "--workdir", wd])
    assert r.rc == 0, r
    assert r.json["stdout"] == wd + "\n"
    assert open(os.path.join(wd, "f")).read() == "ok\n"


@pytest.mark.parametrize("flag,path", [("--rw", "/proc/self/cwd"), ("--ro", "/proc/1/root"),
                                       ("--rw", "/sys/fs/cgroup")])
def test_kernel_interfaces_are_not_grantable(flag, path):
    r = run("linux-native", "/bin/true", opts=[flag, path])
    assert r.rc == 125, r
