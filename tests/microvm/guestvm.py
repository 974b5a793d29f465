"""A micro-VM booted straight from QEMU (no agentd) and a small client of the guest
protocol (src/common/guestproto.h), in Python: what tests/microvm/ uses to check the guest
agent on its own. The channel is one end of a socketpair handed to QEMU as an fd."""
import os
import select
import signal
import socket
import struct
import subprocess
import time

BUILD = os.path.abspath(os.environ.get("AGENTD_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
GUEST = os.path.join(BUILD, "guest")
VMLINUX = os.path.join(GUEST, "vmlinux")
INITRAMFS = os.path.join(GUEST, "initramfs.cpio.gz")
PORT_NAME = "org.agentd.guest.0"

# frame types and field tags (guestproto.h)
HELLO, STARTED, STDOUT, STDERR, EXIT, ERROR, OK, PONG = 1, 2, 3, 4, 5, 6, 7, 8
SETUP, EXEC, STDIN, SIGNAL, PING, FREEZE, THAW, POWEROFF, RESIZE = range(32, 41)
CREDIT, STREAM_OPEN, STREAM_DATA, STREAM_CLOSE = 64, 65, 66, 67
FILE_GET, FILE_PUT, FILE_DATA, FILE_END, FILE_STAT, FILE_LIST, FILE_REMOVE, FILE_MKDIR = \
    range(80, 88)
DATA_TYPES = {STDIN, STDOUT, STDERR, STREAM_DATA, FILE_DATA}
T = dict(VERSION=1, AGENT=2, CAPS=3, BOOT_MS=4, ARG=10, ENV=11, CWD=12, UID=13, GID=14,
         STDIN=15, TIMEOUT_MS=16, MEM_BYTES=17, PIDS=18, CPU_MS=19, NOFILE=20, FSIZE=21,
         OUTPUT_MAX=22, SECCOMP=23, NET_NONE=24, TTY_ROWS=25, TTY_COLS=26, PID=30,
         EXIT_CODE=31, SIGNAL=32, LIMIT=33, PEAK_MEM=34, WALL_MS=35, OUT_TRUNC=36, ERRNO=40,
         MESSAGE=41, SEQ=42, SIGNO=43, GROUP=44, BYTES=45, PEER=46, HOSTNAME=50, MOUNT=51,
         SOURCE=52, TARGET=53, FSTYPE=54, READONLY=55, NETWORK=56, CLOCK_NS=57, SEED=58,
         PATH=60, MODE=61, SIZE=62, MAX_BYTES=63, NAME=64, RECURSIVE=65, MTIME_NS=66,
         SECCOMP_BPF=70)
TAG_NAMES = {v: k for k, v in T.items()}
LIMIT = dict(NONE=0, MEMORY=1, PIDS=2, CPU_TIME=3, WALL_TIME=4, OUTPUT=5, WRITE=6)
INITIAL_CREDIT = 256 * 1024
HDR = struct.Struct("<IHHI")


def field(tag, value):
    if isinstance(value, int):
        value = struct.pack("<Q", value)
    elif isinstance(value, str):
        value = value.encode()
    return struct.pack("<HI", tag, len(value)) + value


def fields(*pairs):
    return b"".join(field(T[k] if isinstance(k, str) else k, v) for k, v in pairs)


def parse_fields(payload):
    out, off = [], 0
    while off < len(payload):
        tag, n = struct.unpack_from("<HI", payload, off)
        out.append((TAG_NAMES.get(tag, tag), payload[off + 6:off + 6 + n]))
        off += 6 + n
    return out


def u64(b):
    return struct.unpack("<Q", b)[0]


class Frame:
    def __init__(self, type, chan, payload):
        self.type, self.chan, self.payload = type, chan, payload
        self.f = {}
        if type not in DATA_TYPES:
            for k, v in parse_fields(payload):
                self.f.setdefault(k, v)

    def u(self, name, default=None):
        return u64(self.f[name]) if name in self.f else default

    def s(self, name):
        return self.f[name].decode()

    def __repr__(self):
        return f"Frame(type={self.type}, chan={self.chan}, f={self.f or self.payload[:80]})"


def host_tsc_khz():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    return 0


def qemu_argv(fd, mem_mb=256, extra_append="", drives=()):
    append = (f"console=ttyS0 quiet panic=-1 tsc_early_khz={host_tsc_khz()} "
              f"{extra_append}").strip()
    return ["qemu-system-x86_64", "-M", "microvm", "-accel", "tcg", "-nodefaults",
            "-no-user-config", "-display", "none", "-m", str(mem_mb), "-no-reboot",
            "-sandbox", "on",
            "-kernel", VMLINUX, "-initrd", INITRAMFS, "-append", append,
            "-global", "virtio-mmio.force-legacy=false",
            "-device", "virtio-serial-device",
            "-chardev", f"socket,id=c0,fd={fd}",
            "-device", f"virtserialport,chardev=c0,name={PORT_NAME}"] + [
                a for i, d in enumerate(drives) for a in (
                    "-drive", f"file={d},if=none,format=raw,id=d{i}",
                    "-device", f"virtio-blk-device,drive=d{i}")]


class VM:
    """One booted guest; every wait has a deadline, and close() kills QEMU's process group."""

    def __init__(self, mem_mb=256, console=None, drives=()):
        self.host, guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.buf = b""
        self.pending = []
        self.console = console
        stdout = open(console, "wb") if console else subprocess.DEVNULL
        argv = qemu_argv(guest.fileno(), mem_mb, drives=drives)
        if console:
            argv += ["-serial", f"file:{console}"]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, pass_fds=[guest.fileno()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        if console:
            stdout.close()
        guest.close()
        self.hello = None

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self.host.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, type, chan, payload=b""):
        self.host.sendall(HDR.pack(len(payload), type, 0, chan) + payload)

    def _read_frame(self, deadline):
        while True:
            if len(self.buf) >= 12:
                n, type, flags, chan = HDR.unpack_from(self.buf)
                assert flags == 0 and n <= 64 * 1024, f"bad header from the guest: {self.buf[:12]!r}"
                if len(self.buf) >= 12 + n:
                    payload = self.buf[12:12 + n]
                    self.buf = self.buf[12 + n:]
                    return Frame(type, chan, payload)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the guest in time")
            r, _, _ = select.select([self.host], [], [], left)
            if r:
                data = self.host.recv(1 << 20)
                if not data:
                    raise EOFError("the guest closed its port")
                self.buf += data

    def recv(self, timeout=30, chan=None, types=None):
        """The next frame (on chan / of types when given; others are kept for later)."""
        for i, fr in enumerate(self.pending):
            if (chan is None or fr.chan == chan) and (types is None or fr.type in types):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            fr = self._read_frame(deadline)
            if (chan is None or fr.chan == chan) and (types is None or fr.type in types):
                return fr
            self.pending.append(fr)

    def wait_hello(self, timeout=60):
        self.hello = self.recv(timeout=timeout)
        assert self.hello.type == HELLO, self.hello
        self.hello_s = time.monotonic() - self.t0
        return self.hello

    def request(self, type, chan, *pairs, timeout=30):
        self.send(type, chan, fields(*pairs))
        return self.recv(timeout=timeout, chan=chan)

    def exec(self, chan, argv, env=("PATH=/usr/bin:/bin",), stdin=None, grant=True,
             timeout=60, **limits):
        """Runs argv on chan; returns (STARTED or ERROR frame, stdout, stderr, EXIT frame)."""
        pairs = [("ARG", a) for a in argv] + [("ENV", e) for e in env]
        pairs += [("STDIN", 1 if stdin is not None else 0)]
        pairs += [(k.upper(), v) for k, v in limits.items()]
        self.send(EXEC, chan, fields(*pairs))
        first = self.recv(timeout=timeout, chan=chan)
        if first.type != STARTED:
            return first, b"", b"", None
        todo, credit = stdin, INITIAL_CREDIT  # stdin goes as the guest grants it

        def feed():
            nonlocal todo, credit
            while todo is not None and (credit > 0 or not todo):
                if not todo:
                    self.send(STDIN, chan, b"")  # EOF
                    todo = None
                    return
                n = min(len(todo), credit, 32 * 1024)
                self.send(STDIN, chan, todo[:n])
                todo, credit = todo[n:], credit - n
        feed()
        out, err = b"", b""
        deadline = time.monotonic() + timeout
        while True:
            fr = self.recv(timeout=max(0.1, deadline - time.monotonic()), chan=chan)
            if fr.type == STDOUT:
                out += fr.payload
            elif fr.type == STDERR:
                err += fr.payload
            elif fr.type == EXIT:
                return first, out, err, fr
            elif fr.type == CREDIT:
                credit += fr.u("BYTES")
                feed()
                continue
            else:
                raise AssertionError(f"unexpected {fr}")
            if grant and fr.type in (STDOUT, STDERR):
                self.send(CREDIT, chan, fields(("BYTES", len(fr.payload))))

    def poweroff(self, timeout=30):
        self.send(POWEROFF, 0)
        ok = self.recv(timeout=timeout, chan=0)
        rc = self.proc.wait(timeout=timeout)
        return ok, rc
