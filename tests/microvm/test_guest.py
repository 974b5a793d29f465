"""The guest agent (agentd-guest, PID 1 of the micro-VM) on its own: QEMU booted directly
under TCG with build/guest/{vmlinux,initramfs.cpio.gz} (ninja -C build guest), spoken to over
the virtio-serial port by the protocol client of guestvm.py. Every wait has a deadline and
QEMU's process group is killed at the end of each VM.

One VM (module fixture) is set up like a sandbox: an ext4 disk with busybox mounted at "/"
(the execs' root), a tmpfs /tmp, the allowlist network mode and a seccomp program; the
tests then run execs in it. Boot time and power-off use VMs of their own."""
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import time

import pytest

from guestvm import (CREDIT, ERROR, EXIT, FILE_DATA, FILE_END, FILE_GET, FILE_LIST,
                     FILE_MKDIR, FILE_PUT, FILE_REMOVE, FILE_STAT, FREEZE, HELLO, INITIAL_CREDIT,
                     INITRAMFS, LIMIT, OK, PING, PONG, SETUP, SIGNAL, STARTED, STDIN, STDOUT,
                     STREAM_CLOSE, STREAM_DATA, STREAM_OPEN, THAW, VM, VMLINUX, field, fields,
                     u64)

pytestmark = pytest.mark.skipif(not shutil.which("qemu-system-x86_64"),
                                reason="qemu-system-x86 is not installed (scripts/install-deps.sh)")

ENV = ("PATH=/bin", "HOME=/", "LANG=C")
EPERM = 1


def setup_module(module):
    assert os.path.exists(VMLINUX) and os.path.exists(INITRAMFS), \
        "no guest artifacts: build them with `ninja -C build guest` (make guest)"


def seccomp_denying_uname():
    """struct sock_filter[]: uname(2) fails with EPERM, everything else is allowed."""
    insns = [(0x20, 0, 0, 4),                      # ld arch
             (0x15, 0, 3, 0xC000003E),             # jeq AUDIT_ARCH_X86_64, else allow
             (0x20, 0, 0, 0),                      # ld nr
             (0x15, 0, 1, 63),                     # jeq __NR_uname
             (0x06, 0, 0, 0x00050000 | EPERM),     # ret ERRNO(EPERM)
             (0x06, 0, 0, 0x7FFF0000)]             # ret ALLOW
    return b"".join(struct.pack("<HBBI", *i) for i in insns)


def make_rootfs(path):
    """An ext4 image whose root holds busybox and a symlink pointing out of it."""
    tree = path + ".d"
    os.makedirs(tree + "/bin")
    shutil.copy(shutil.which("busybox"), tree + "/bin/busybox")
    for applet in ("sh", "cat", "echo", "env", "head", "dd", "sleep", "yes", "seq", "nc",
                   "uname", "ls", "id", "wc", "hostname", "true", "printf", "ip", "stat", "stty",
                   "tty", "ulimit"):
        os.symlink("busybox", f"{tree}/bin/{applet}")
    for d in ("proc", "dev", "tmp", "data"):
        os.makedirs(f"{tree}/{d}")
    os.symlink("/../../../init", tree + "/escape")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", tree, path, "48M"], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(tree)


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    disk = str(tmp_path_factory.mktemp("disk") / "root.ext4")
    make_rootfs(disk)
    v = VM(mem_mb=384, drives=[disk])
    try:
        v.wait_hello(timeout=90)
        mount = lambda src, tgt, fs, ro=0: field(51, fields(("SOURCE", src), ("TARGET", tgt),
                                                             ("FSTYPE", fs), ("READONLY", ro)))
        payload = (fields(("HOSTNAME", "sbx"), ("NETWORK", 1),
                          ("CLOCK_NS", time.time_ns()), ("SEED", os.urandom(32)),
                          ("SECCOMP_BPF", seccomp_denying_uname()))
                   + mount("/dev/vda", "/", "ext4") + mount("tmpfs", "/tmp", "tmpfs"))
        v.send(SETUP, 0, payload)
        ok = v.recv(chan=0, timeout=60)
        assert ok.type == OK, ok
        yield v
    finally:
        v.close()


_chan = [0]


def chan():
    _chan[0] += 1
    return _chan[0]


def run(vm, argv, **kw):
    kw.setdefault("env", ENV)
    return vm.exec(chan(), argv, **kw)


def test_hello_names_the_protocol_version_and_capabilities(vm):
    assert vm.hello.type == HELLO
    assert vm.hello.u("VERSION") >> 16 == 1
    assert vm.hello.s("AGENT").startswith("agentd-guest ")
    assert vm.hello.u("CAPS") == 0x3F
    assert vm.hello.u("BOOT_MS") > 0


def test_exec_streams_stdout_and_stderr_and_reports_the_exit_code(vm):
    started, out, err, ex = run(vm, ["/bin/sh", "-c", "seq 1 20000; echo oops >&2; exit 7"])
    assert started.type == STARTED and started.u("PID") > 1
    assert out == b"".join(b"%d\n" % i for i in range(1, 20001))  # in order, nothing lost
    assert err == b"oops\n"
    assert ex.u("EXIT_CODE") == 7 and ex.u("LIMIT") == LIMIT["NONE"]
    assert ex.u("WALL_MS") is not None and ex.u("OUT_TRUNC") == 0


def test_the_environment_is_exactly_the_one_given_and_the_root_is_the_disk(vm):
    _, out, _, ex = run(vm, ["/bin/sh", "-c", "env; ls /; hostname"], env=("PATH=/bin", "A=1"))
    lines = out.decode().split("\n")
    assert ex.u("EXIT_CODE") == 0
    env = {l for l in lines if "=" in l and l.split("=")[0] in ("PATH", "A", "PWD", "SHLVL")}
    assert {"PATH=/bin", "A=1"} <= env
    assert not any(l.startswith(("HOME=", "TERM=", "LANG=")) for l in lines)
    assert "escape" in lines and "init" not in lines  # the disk, not the initramfs
    assert "sbx" in lines


def test_stdin_reaches_the_process_with_flow_control(vm):
    data = os.urandom(700 * 1024)  # more than the initial credit both ways
    _, out, _, ex = run(vm, ["/bin/cat"], stdin=data, timeout=120)
    assert ex.u("EXIT_CODE") == 0
    assert out == data


def test_stdin_a_process_never_reads_does_not_block_the_agent(vm):
    # more stdin than a pipe holds, to a process that never reads it: the agent keeps the
    # rest (it granted the credit) and goes on serving — the deadline still kills it
    t0 = time.monotonic()
    first, _, _, ex = run(vm, ["/bin/sleep", "600"], stdin=b"x" * (200 * 1024),
                          timeout_ms=3000, timeout=60)
    assert ex is not None and ex.u("LIMIT") == LIMIT["WALL_TIME"], (first, ex)
    assert time.monotonic() - t0 < 40
    pong = vm.request(PING, 0, ("SEQ", 81), timeout=20)
    assert pong.type == PONG


def test_output_stops_while_the_host_grants_no_credit(vm):
    c = chan()
    vm.send(33, c, fields(*[("ARG", a) for a in ["/bin/sh", "-c", "yes | head -c 2000000"]],
                          *[("ENV", e) for e in ENV]))
    assert vm.recv(chan=c).type == STARTED
    got = 0
    deadline = time.monotonic() + 60
    while got < INITIAL_CREDIT and time.monotonic() < deadline:
        fr = vm.recv(chan=c, timeout=30)
        assert fr.type == 3, fr
        got += len(fr.payload)
    assert got == INITIAL_CREDIT
    with pytest.raises(TimeoutError):
        vm.recv(chan=c, timeout=3)  # nothing more without credit
    vm.send(CREDIT, c, fields(("BYTES", 2000000)))
    while True:
        fr = vm.recv(chan=c, timeout=60)
        if fr.type == EXIT:
            break
        got += len(fr.payload)
    assert got == 2000000 and fr.u("EXIT_CODE") == 0


def test_a_wall_timeout_kills_the_tree_and_the_vm_stays_healthy(vm):
    t = time.monotonic()
    _, _, _, ex = run(vm, ["/bin/sh", "-c", "sleep 100 & sleep 100"], timeout_ms=1500)
    assert ex.u("SIGNAL") == signal.SIGKILL and ex.u("LIMIT") == LIMIT["WALL_TIME"]
    assert time.monotonic() - t < 30
    pong = vm.request(PING, 0, ("SEQ", 99))
    assert pong.type == PONG and pong.u("SEQ") == 99
    _, out, _, ex = run(vm, ["/bin/echo", "alive"])
    assert out == b"alive\n" and ex.u("EXIT_CODE") == 0


def test_a_memory_limit_kills_with_limit_memory(vm):
    _, _, _, ex = run(vm, ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"],
                      mem_bytes=32 << 20)
    assert ex.u("SIGNAL") == signal.SIGKILL, ex
    assert ex.u("LIMIT") == LIMIT["MEMORY"]
    assert ex.u("PEAK_MEM") <= 32 << 20


def test_a_pids_limit_is_reported(vm):
    _, out, _, ex = run(vm, ["/bin/sh", "-c",
                             "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait; echo done"],
                        pids=4)
    assert ex.u("LIMIT") == LIMIT["PIDS"], ex


def test_the_output_cap_truncates_and_kills(vm):
    _, out, err, ex = run(vm, ["/bin/yes"], output_max=1000)
    assert len(out) + len(err) == 1000
    assert ex.u("OUT_TRUNC") == 1 and ex.u("LIMIT") == LIMIT["OUTPUT"]


def test_cpu_time_and_file_size_limits_are_reported(vm):
    _, _, _, ex = run(vm, ["/bin/sh", "-c", "while :; do :; done"], cpu_ms=1000, timeout=120)
    assert ex.u("LIMIT") == LIMIT["CPU_TIME"], ex
    # RLIMIT_CPU counts sampled ticks, cpu.stat exact time: they differ by a few percent
    assert ex.u("CPU_MS") >= 900
    _, _, _, ex = run(vm, ["/bin/dd", "if=/dev/zero", "of=/tmp/big", "bs=4096", "count=4"],
                      fsize=5000)
    assert ex.u("SIGNAL") == signal.SIGXFSZ and ex.u("LIMIT") == LIMIT["WRITE"], ex


def test_identity_and_open_files_limit_apply(vm):
    _, out, _, ex = run(vm, ["/bin/sh", "-c", "id -u; id -g; id -G; ulimit -n"],
                        uid=1000, gid=1000, nofile=64)
    assert out.split() == [b"1000", b"1000", b"1000", b"64"]


def test_uid_0_keeps_no_capability_and_cannot_reach_pid_1(vm):
    _, out, err, ex = run(vm, ["/bin/sh", "-c",
                               "id -u; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; "
                               "ls /proc/1/root/ >/dev/null 2>&1 && echo REACHED; "
                               "kill -9 1; echo still"], uid=0, gid=0)
    lines = out.decode().split("\n")
    assert lines[0] == "0"
    assert [l.split()[1] for l in lines[1:4]] == ["0000000000000000"] * 3, out
    assert "REACHED" not in lines and "still" in lines


def test_the_execs_dev_holds_no_disk_or_port(vm):
    _, out, _, ex = run(vm, ["/bin/sh", "-c", "ls /dev; ls /dev/vda /dev/vport0p1 2>&1"],
                        uid=0, gid=0)
    names = out.decode().split()
    assert {"null", "zero", "urandom", "pts", "ptmx", "shm", "tty"} <= set(names)
    assert "vda" not in names and not any(n.startswith(("vport", "mem", "kmsg")) for n in names)
    pong = vm.request(PING, 0, ("SEQ", 77))
    assert pong.type == PONG and pong.u("SEQ") == 77


# What the kernel lets uid 0 change by file permission alone, no capability needed: a
# sysctl (core_pattern or modprobe name a helper the kernel runs as full root: PID 1's
# rights), sysrq (power off, crash), sysfs (unbind the port's device). The exec's view of
# them is read-only.
ROOT_WRITES = ("echo '|/bin/true %p' > /proc/sys/kernel/core_pattern && echo CORE; "
               "echo /tmp/x > /proc/sys/kernel/modprobe && echo MODPROBE; "
               "echo h > /proc/sysrq-trigger && echo SYSRQ; "
               "cat /proc/sys/kernel/core_pattern")


def test_uid_0_cannot_write_sysctls_or_sysrq(vm):
    _, out, err, ex = run(vm, ["/bin/sh", "-c", ROOT_WRITES], uid=0, gid=0)
    lines = out.decode().split("\n")
    assert not {"CORE", "MODPROBE", "SYSRQ"} & set(lines), (out, err)
    assert "|/bin/true" not in out.decode(), out
    pong = vm.request(PING, 0, ("SEQ", 78))
    assert pong.type == PONG


def test_uid_0_in_the_initramfs_root_keeps_its_cgroup_and_sysfs_is_read_only():
    """No SETUP root: the execs' root is the initramfs, where /sys (and the cgroup tree)
    is mounted — uid 0 must not leave its cgroup (its limits) nor write sysfs."""
    with VM() as v:
        v.wait_hello(timeout=90)
        v.send(SETUP, 0, fields(("HOSTNAME", "sbx"), ("NETWORK", 0)))
        assert v.recv(chan=0, timeout=60).type == OK
        script = (ROOT_WRITES + "; echo max > /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)"
                  "/pids.max && echo RAISED; "
                  "echo $$ > /sys/fs/cgroup/cgroup.procs && echo ESCAPED; cat /proc/self/cgroup")
        _, out, err, ex = v.exec(1, ["/bin/sh", "-c", script], env=ENV, uid=0, gid=0,
                                 pids=16, mem_bytes=64 << 20)
        lines = out.decode().split("\n")
        assert ex is not None and ex.u("EXIT_CODE") == 0, (out, err)
        assert not {"CORE", "MODPROBE", "SYSRQ", "ESCAPED", "RAISED"} & set(lines), (out, err)
        assert lines[-2] != "0::/", out
        pong = v.request(PING, 0, ("SEQ", 79))
        assert pong.type == PONG


def test_a_tty_exec_sees_a_terminal_of_the_size_given(vm):
    _, out, _, ex = run(vm, ["/bin/sh", "-c", "tty; stty size"], tty_rows=33, tty_cols=101)
    assert ex.u("EXIT_CODE") == 0
    assert out.replace(b"\r", b"").split(b"\n")[:2] == [b"/dev/pts/0", b"33 101"]


def test_the_seccomp_program_applies_only_when_asked(vm):
    _, out, _, ex = run(vm, ["/bin/uname", "-s"])
    assert out == b"Linux\n"
    _, out, err, ex = run(vm, ["/bin/sh", "-c", "grep '^Seccomp:' /proc/self/status; uname -s"],
                          seccomp=1)
    # busybox prints what uname(2) left empty (it failed with EPERM): no kernel name
    assert out == b"Seccomp:\t2\n\n"


def test_a_signal_reaches_the_process(vm):
    c = chan()
    vm.send(33, c, fields(("ARG", "/bin/sleep"), ("ARG", "100"), *[("ENV", e) for e in ENV]))
    assert vm.recv(chan=c).type == STARTED
    vm.send(SIGNAL, c, fields(("SIGNO", signal.SIGTERM)))
    ex = vm.recv(chan=c, types={EXIT}, timeout=30)
    assert ex.u("SIGNAL") == signal.SIGTERM


def test_concurrent_execs_run_on_their_own_channels(vm):
    a, b = chan(), chan()
    for c, word in ((a, "first"), (b, "second")):
        vm.send(33, c, fields(("ARG", "/bin/sh"), ("ARG", "-c"),
                              ("ARG", f"sleep 1; echo {word}"), *[("ENV", e) for e in ENV]))
    outs = {a: b"", b: b""}
    done = set()
    while len(done) < 2:
        fr = vm.recv(timeout=30, types={STARTED, 3, EXIT})
        if fr.type == 3:
            outs[fr.chan] += fr.payload
        elif fr.type == EXIT:
            done.add(fr.chan)
    assert outs == {a: b"first\n", b: b"second\n"}


def test_orphans_are_reaped_by_pid_1(vm):
    for _ in range(3):  # each leaves a grandchild that outlives its parent, then dies
        run(vm, ["/bin/sh", "-c", "(sleep 0.3 &); exit 0"])
    time.sleep(1)
    _, out, _, _ = run(vm, ["/bin/sh", "-c", "cat /proc/[0-9]*/stat"])
    states = [l.rsplit(")", 1)[1].split()[0] for l in out.decode().splitlines() if ")" in l]
    assert states and "Z" not in states, out


def test_a_missing_program_is_an_error_not_an_exit(vm):
    first, _, _, ex = run(vm, ["/bin/no-such-program"])
    assert first.type == ERROR and ex is None
    assert "execve" in first.s("MESSAGE")


def test_malformed_frames_are_answered_and_the_agent_lives_on(vm):
    c = chan()
    vm.send(33, c, struct.pack("<HI", 10, 100) + b"short")  # a field past its payload
    assert vm.recv(chan=c).type == ERROR
    vm.send(33, chan(), fields(("CWD", "/")))  # no argv
    assert vm.recv(types={ERROR}).type == ERROR
    vm.send(33, chan(), fields(("ARG", "a\0b")))  # a NUL inside a string
    assert vm.recv(types={ERROR}).type == ERROR
    vm.send(STARTED, 0)  # a guest->host type sent to the guest
    assert vm.recv(chan=0).type == ERROR
    vm.host.sendall(struct.pack("<IHHI", 1 << 30, 33, 0, 5))  # a length over the bound
    assert vm.recv(chan=0).type == ERROR
    time.sleep(0.5)
    pong = vm.request(PING, 0, ("SEQ", 5))
    assert pong.type == PONG and pong.u("SEQ") == 5
    _, out, _, _ = run(vm, ["/bin/echo", "ok"])
    assert out == b"ok\n"


def test_random_frames_of_every_request_type_leave_the_agent_serving(vm):
    """Garbage payloads (seeded) and half-valid fields of every host request type, on
    control, open and unknown channels: each is answered or dropped, never a crash."""
    import random
    rnd = random.Random(15)
    types = [SETUP, 33, STDIN, SIGNAL, PING, 38, 40, CREDIT, STREAM_OPEN, STREAM_DATA,
             STREAM_CLOSE, FILE_GET, FILE_PUT, FILE_DATA, FILE_END, FILE_STAT, FILE_LIST,
             FILE_MKDIR, OK]  # not POWEROFF (that one is obeyed), not FREEZE (test below)
    tags = [10, 11, 12, 13, 16, 17, 23, 25, 43, 45, 51, 53, 60, 61, 63, 65, 70, 999]
    for i in range(400):
        if rnd.random() < 0.5:
            payload = rnd.randbytes(rnd.randrange(0, 300))
        else:  # well-formed fields of random tags and sizes
            payload = b"".join(struct.pack("<HI", t, n) + rnd.randbytes(n) for t, n in
                               ((rnd.choice(tags), rnd.choice([0, 1, 7, 8, 9, 40]))
                                for _ in range(rnd.randrange(0, 6))))
        c = rnd.choice([0, 1, 2, 0x7FFFFFFF, 0x80000001, 0x80000002, 50000 + i])
        vm.send(rnd.choice(types), c, payload)
    time.sleep(2)
    vm.send(PING, 0, fields(("SEQ", 1234)))
    while True:  # past the answers to the random PINGs and requests
        pong = vm.recv(chan=0, timeout=60)
        if pong.type == PONG and pong.u("SEQ") == 1234:
            break
    vm.pending.clear()
    _, out, _, ex = run(vm, ["/bin/echo", "still here"])
    assert out == b"still here\n" and ex.u("EXIT_CODE") == 0


def test_files_go_both_ways_inside_the_root(vm):
    c = chan()
    data = os.urandom(300 * 1024)
    vm.send(FILE_MKDIR, c, fields(("PATH", "/data/d"), ("MODE", 0o750)))
    assert vm.recv(chan=c).type == OK
    c = chan()
    vm.send(FILE_PUT, c, fields(("PATH", "/data/d/f"), ("MODE", 0o640)))
    for i in range(0, len(data), 60000):
        vm.send(FILE_DATA, c, data[i:i + 60000])
    vm.send(FILE_END, c, fields(("SIZE", len(data))))
    ok = vm.recv(chan=c, types={OK, ERROR}, timeout=60)
    assert ok.type == OK and ok.u("SIZE") == len(data)
    _, out, _, _ = run(vm, ["/bin/sh", "-c", "wc -c < /data/d/f; stat -c %a /data/d/f"])
    assert out.split() == [str(len(data)).encode(), b"640"]

    c = chan()
    vm.send(FILE_GET, c, fields(("PATH", "/data/d/f"), ("MAX_BYTES", 1 << 20)))
    got = b""
    while True:
        fr = vm.recv(chan=c, timeout=60)
        if fr.type == FILE_END:
            break
        assert fr.type == FILE_DATA, fr
        got += fr.payload
        vm.send(CREDIT, c, fields(("BYTES", len(fr.payload))))
    assert got == data and fr.u("SIZE") == len(data) and fr.u("MODE") == 0o640

    st = vm.request(FILE_STAT, chan(), ("PATH", "/data/d/f"))
    assert st.type == OK and st.u("SIZE") == len(data)
    ls = vm.request(FILE_LIST, chan(), ("PATH", "/data/d"))
    assert ls.type == OK and ls.s("NAME") == "f"
    big = vm.request(FILE_GET, chan(), ("PATH", "/data/d/f"), ("MAX_BYTES", 1000))
    assert big.type == ERROR and big.u("ERRNO") == 27  # EFBIG
    rm = vm.request(FILE_REMOVE, chan(), ("PATH", "/data/d"), ("RECURSIVE", 1))
    assert rm.type == OK
    gone = vm.request(FILE_STAT, chan(), ("PATH", "/data/d"))
    assert gone.type == ERROR and gone.u("ERRNO") == 2


def test_file_paths_never_leave_the_root(vm):
    # /escape -> /../../../init: resolved inside the root, where no /init exists (the
    # initramfs, outside, has one)
    for path in ("/escape", "/../../init", "/proc/1/root/init"):
        r = vm.request(FILE_GET, chan(), ("PATH", path))
        assert r.type == ERROR, (path, r)
    r = vm.request(FILE_PUT, chan(), ("PATH", "/escape"))
    assert r.type == ERROR  # the last component, a symlink, is not followed


def test_a_file_put_onto_a_fifo_the_sandbox_made_does_not_block_the_agent(vm):
    # a FIFO with no reader: opening it to write would wait for one, and PID 1 (one
    # thread: every exec's deadline and limit) with it
    _, _, err, ex = run(vm, ["/bin/busybox", "mkfifo", "/tmp/trap"], uid=1000, gid=1000)
    assert ex.u("EXIT_CODE") == 0, err
    c = chan()
    vm.send(FILE_PUT, c, fields(("PATH", "/tmp/trap"), ("MODE", 0o644)))
    r = vm.recv(chan=c, types={OK, ERROR}, timeout=20)
    assert r.type == ERROR, r
    pong = vm.request(PING, 0, ("SEQ", 80), timeout=20)
    assert pong.type == PONG and pong.u("SEQ") == 80


def test_allowlist_egress_carries_a_connection_as_a_stream(vm):
    c = chan()
    vm.send(33, c, fields(("ARG", "/bin/sh"), ("ARG", "-c"),
                          ("ARG", "echo ping | nc 127.0.0.1 3128"),
                          *[("ENV", e) for e in ENV]))
    assert vm.recv(chan=c).type == STARTED
    op = vm.recv(types={STREAM_OPEN}, timeout=30)
    assert op.chan & 0x80000000 and op.s("PEER").startswith("127.0.0.1:")
    vm.send(OK, op.chan)
    d = vm.recv(chan=op.chan, types={STREAM_DATA}, timeout=30)
    assert d.payload == b"ping\n"
    vm.send(STREAM_DATA, op.chan, b"pong\n")
    vm.send(STREAM_CLOSE, op.chan)
    out = b""
    while True:
        fr = vm.recv(chan=c, timeout=30)
        if fr.type == EXIT:
            break
        out += fr.payload
    assert out == b"pong\n"


def test_net_none_exec_reaches_no_listener(vm):
    _, out, err, ex = run(vm, ["/bin/sh", "-c", "echo x | nc 127.0.0.1 3128; ip -o link"],
                          net_none=1)
    assert b"lo" in out and ex is not None
    with pytest.raises(TimeoutError):
        vm.recv(types={STREAM_OPEN}, timeout=2)


def test_a_frozen_exec_makes_no_progress_until_thawed(vm):
    c = chan()
    vm.send(33, c, fields(("ARG", "/bin/sh"), ("ARG", "-c"),
                          ("ARG", "i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.1; done"),
                          *[("ENV", e) for e in ENV]))
    assert vm.recv(chan=c).type == STARTED
    assert vm.recv(chan=c, types={3}, timeout=30).payload
    assert vm.request(FREEZE, 0).type == OK
    time.sleep(0.5)  # what was written before the freeze took hold
    vm.pending = [f for f in vm.pending if f.chan != c]
    while True:
        try:
            vm.recv(chan=c, timeout=0.5)
        except TimeoutError:
            break
    with pytest.raises(TimeoutError):
        vm.recv(chan=c, timeout=2)  # frozen: nothing
    assert vm.request(THAW, 0).type == OK
    fr = vm.recv(chan=c, timeout=30)
    assert fr.type == 3  # running again
    while fr.type != EXIT:
        fr = vm.recv(chan=c, timeout=30)
    assert fr.u("EXIT_CODE") == 0


def test_a_resize_reaches_the_tty(vm):
    c = chan()
    vm.send(33, c, fields(("ARG", "/bin/sh"), ("ARG", "-c"),
                          ("ARG", "stty size; read x; stty size"), ("STDIN", 1),
                          ("TTY_ROWS", 24), ("TTY_COLS", 80), *[("ENV", e) for e in ENV]))
    assert vm.recv(chan=c).type == STARTED
    out = b""
    while b"24 80" not in out:
        out += vm.recv(chan=c, types={3}, timeout=30).payload
    vm.send(40, c, fields(("TTY_ROWS", 50), ("TTY_COLS", 132)))
    vm.send(STDIN, c, b"go\n")
    while True:
        fr = vm.recv(chan=c, timeout=30)
        if fr.type == EXIT:
            break
        out += fr.payload
    assert b"50 132" in out


def test_boot_to_hello_median_and_poweroff():
    times, boot_ms = [], []
    for i in range(5):
        with VM() as v:
            h = v.wait_hello(timeout=90)
            times.append(v.hello_s)
            boot_ms.append(h.u("BOOT_MS"))
            if i == 0:
                ok, rc = v.poweroff()
                assert ok.type == OK and rc == 0
    print(f"boot to HELLO median {statistics.median(times):.2f} s "
          f"(guest uptime {statistics.median(boot_ms)} ms) over {len(times)} boots: "
          + " ".join(f"{t:.2f}" for t in times))
