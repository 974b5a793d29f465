"""The security suite's shared code: how to run an attack inside a sandbox, and the
expectation table — for every attack and every backend, whether it must be blocked or is
a documented gap (with the reason).

Expectation kinds:
  BLOCKED             the attack must fail; if it succeeds, that is a sandbox escape (a bug).
  allowed(reason)     a documented gap: the backend does not claim to stop this, and on a
                      stock host the attack succeeds. The test asserts it still does, so that
                      the suite is not vacuous and the table stays true; a backend that
                      starts blocking it must update the table.
  either(reason)      the backend has no guard of its own here: the host kernel's config or
                      sysctls decide (e.g. unprivileged user namespaces, perf_event_paranoid).

`agentd probe --security` prints the same attacks (by the same names) from its C table;
test_probe_table.py checks that the two agree.
"""
import json
import os
import socket
import subprocess
import time
from collections import namedtuple

BUILD = os.path.abspath(os.environ.get("AGENTD_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
AGENTD = os.path.join(BUILD, "agentd")
PROBE_DIR = os.path.join(BUILD, "tests")
PROBE = os.path.join(PROBE_DIR, "sbxprobe")

BACKENDS = ["container", "linux-native", "host-direct", "oci"]  # issue 13: oci-runtime
BACKENDS += ["microvm"]  # issue 15: vm-host
# Every security run is bounded: an attack that hangs is a failure, never a stuck suite.
RUN_TIMEOUT = "20s"

Expect = namedtuple("Expect", "kind reason")
BLOCKED = Expect("blocked", "")


def allowed(reason):
    return Expect("allowed", reason)


def either(reason):
    return Expect("either", reason)


# ----------------------------------------------------------------- reasons
HD_FS = ("host-direct has no filesystem isolation: whatever uid 65534 may access by file "
         "permissions (DAC) is reachable")
HD_SYS = ("host-direct has no syscall filter: only the dropped capabilities and the host's "
          "own sysctls/kernel config stand in the way")
HD_USERNS = HD_SYS + " (unprivileged user namespaces: user.max_user_namespaces, " \
    "kernel.unprivileged_userns_clone; x32 only if the kernel has CONFIG_X86_X32_ABI)"
HD_NET = "host-direct has no network isolation: the host's network and loopback are shared"
HD_PROC = ("host-direct has no PID namespace and no signal/ptrace scoping: host processes "
           "of the same uid (65534) can be seen, signalled and traced")
NO_PIDNS = ("no PID namespace: host processes are visible in /proc (cmdline, status); "
            "Landlock scoping still stops signals, ptrace and /proc/<pid>/{exe,root,environ}")
LN_UNIX = ("Landlock (ABI <= 7) does not mediate connect() on a pathname unix socket: a "
           "host socket is reachable by path when its file permissions allow")
NO_MNTNS = ("no mount namespace: the host's own mount table, which names the state dir only "
            "if the host mounted something there")
LN_PROCFS = ("Landlock grants /proc read-only as a whole; kernel pointers in /proc/kallsyms "
             "are hidden only by the host's kptr_restrict/perf_event_paranoid")
HD_SIBLINGS = ("host-direct sandboxes all run as uid 65534 in the host's PID namespace: "
               "one can signal and trace another's processes and, through "
               "/proc/<pid>/cwd, read its workspace")
PROC_DISK = ("no disk quota on the process backends: max_write_bytes is RLIMIT_FSIZE, a "
             "per-file limit, and the workspace is a directory on the host's filesystem")

HD_SYSV = ("host-direct has no syscall filter and no IPC namespace: a host SysV segment "
           "is attached when its mode lets uid 65534 in, and objects it creates outlive it")
HD_NETLINK = HD_SYS + " (the host's network namespace: uevents, sock_diag)"
NO_CGNS = ("no cgroup namespace without namespaces: /proc/self/cgroup names the sandbox's "
           "cgroup in the host's tree (agentd/<id>, no other host detail)")


def _all_blocked():
    return {b: BLOCKED for b in BACKENDS}


def _table(hd=BLOCKED, ln=BLOCKED, ct=BLOCKED, oci=BLOCKED, mv=BLOCKED):
    # issue 15: vm-host. microvm: a guest kernel of its own behind the VM boundary, its
    # commands under agentd's seccomp profile, a cgroup and uid 1000: everything blocked
    return {"container": ct, "linux-native": ln, "host-direct": hd, "oci": oci, "microvm": mv}


# attack name -> {backend: Expect}. container: everything blocked (docs/README.md#targets).
EXPECT = {
    # --- filesystem
    "read-host-secret": _table(hd=allowed(HD_FS)),
    "read-etc-shadow": _all_blocked(),
    "write-usr": _all_blocked(),
    "write-etc": _all_blocked(),
    "write-home": _all_blocked(),
    "write-host-dir": _table(hd=allowed(HD_FS)),
    "read-proc1-root": _all_blocked(),
    "listdir-proc1-root": _all_blocked(),
    "write-proc1-root": _all_blocked(),
    "proc-self-exe-write": _all_blocked(),
    "proc-exe-write-all": _all_blocked(),
    "write-agentd-binary": _all_blocked(),
    "symlink-read": _table(hd=allowed(HD_FS)),
    "symlink-write": _table(hd=allowed(HD_FS)),
    "leaked-fd": _all_blocked(),
    "leaked-fd-read": _all_blocked(),
    "workdir-proc-fd": _all_blocked(),
    "workdir-proc-cwd": _all_blocked(),
    "workdir-proc1-cwd": _all_blocked(),
    # --- privileges
    "no-new-privs": _all_blocked(),
    "setuid0": _all_blocked(),
    "setuid-binary": _all_blocked(),
    "su": _all_blocked(),
    # --- devices
    "dev-kmsg": _all_blocked(),
    "dev-mem": _all_blocked(),
    "block-device": _all_blocked(),
    "mknod-char": _all_blocked(),
    "mknod-block": _all_blocked(),
    # --- namespaces, mounts
    "unshare-user": _table(hd=either(HD_USERNS)),
    "clone-newuser": _table(hd=either(HD_USERNS)),
    "clone3-newuser": _table(hd=either(HD_USERNS)),
    "x32-unshare-user": _table(hd=either(HD_USERNS)),
    "i386-unshare-user": _table(hd=either(HD_USERNS)),
    "mount": _all_blocked(),
    "chroot": _all_blocked(),
    "pivot-root": _all_blocked(),
    "setns-mnt": _all_blocked(),
    # --- kernel attack surface
    "init-module": _all_blocked(),
    "finit-module": _all_blocked(),
    "keyctl": _table(hd=either(HD_SYS + " (keyctl/add_key are unprivileged by design)")),
    "bpf": _table(hd=either(HD_SYS + " (kernel.unprivileged_bpf_disabled)")),
    "perf-event-open": _table(hd=either(HD_SYS + " (kernel.perf_event_paranoid)")),
    "userfaultfd": _table(hd=either(HD_SYS + " (vm.unprivileged_userfaultfd; user-mode-only "
                                             "faults are always allowed)")),
    "io-uring": _table(hd=either(HD_SYS + " (kernel.io_uring_disabled)")),
    "sethostname": _all_blocked(),
    "netdev-config": _all_blocked(),
    "settime": _all_blocked(),
    "adjtimex": _all_blocked(),
    "write-proc-sys": _all_blocked(),
    "sysrq": _all_blocked(),
    "mountinfo-state-dir": _table(hd=either(NO_MNTNS), ln=either(NO_MNTNS)),
    "kallsyms": _table(hd=either(HD_SYS + "; " + LN_PROCFS), ln=either(LN_PROCFS)),
    "cgroup-escape": _all_blocked(),
    "cgroup-view": _table(hd=allowed(NO_CGNS), ln=allowed(NO_CGNS)),
    "tiocsti": _all_blocked(),
    # a program on a sandbox pty (processes with "tty": true; the process backends have none)
    "pty-inject": _all_blocked(),
    "sysv-shm-host": _table(hd=allowed(HD_SYSV)),
    "sysv-ipc-leftover": _table(hd=allowed(HD_SYSV)),
    "netlink-uevent": _table(hd=allowed(HD_NETLINK)),
    "netlink-sock-diag": _table(hd=allowed(HD_NETLINK)),
    # --- output (judged on the host: what the CLI shows on a terminal)
    "terminal-escapes": _all_blocked(),
    # an attached terminal (sandbox attach, exec -it) shows escape sequences but OSC 52
    "pty-clipboard": _all_blocked(),
    # --- network
    "loopback-tcp": _table(hd=allowed(HD_NET)),
    "abstract-unix": _table(hd=allowed(HD_NET)),
    "named-unix": _table(hd=allowed(HD_FS), ln=allowed(LN_UNIX)),
    # judged by the host: a forwarded port's way in lands in the sandbox, not on the host
    # (the process backends have no way in at all: refused)
    "port-forward-to-host": _all_blocked(),
    # issue 12: durable-lib. A durable sandbox's command reaching its own init's endpoint
    # (the process backends have none: nothing to reach)
    "durable-endpoint": _all_blocked(),
    # issue 13: oci-engine: the host's container engine API socket (root on the host)
    "engine-socket": _all_blocked(),
    # issue 12: files — judged by the host: its files API meets a symlink the sandbox planted
    # to a host directory and stays inside the sandbox (RESOLVE_IN_ROOT)
    "files-api-through-symlink": _all_blocked(),
    # issue 12: snapshots. Judged by the host: planted set-id files, fifos, device nodes and
    # hard links are neither stored in a snapshot nor restored into a sandbox made from it
    # (the process backends have no snapshots: nothing to restore)
    "snapshot-setid-fork": _all_blocked(),
    # issue 13: img-store. Judged by the host: tars packed inside the sandbox, imported as
    # images: a file through an archive's symlink is refused, set-id bits are stripped
    "hostile-image-archive": _all_blocked(),
    # issue 13: img-root. A write over a file of the image, from a sandbox whose root is that
    # image (writable_root), stays in its upper layer: the store's layer is unchanged (the
    # process backends give no image root: nothing to write to)
    "image-layer-write": _all_blocked(),
    "egress": _table(hd=either(HD_NET + " (blocked only if the host itself has no route)")),
    # allowlist listing one address: the proxy must not resolve a name the sandbox makes up
    # (DNS exfiltration); backends without a netns refuse allowlist, which blocks it
    "proxy-dns-exfil": _all_blocked(),
    # issue 12: names. The same allowlist narrowed live while a process holds a tunnel: the
    # tunnel is closed and a new one refused (backends without allowlist refuse it at once)
    "proxy-narrowed-live": _all_blocked(),
    "raw-socket": _all_blocked(),
    "packet-socket": _all_blocked(),
    "vsock-socket": _table(hd=either(HD_SYS + " (AF_VSOCK if the kernel has it)")),
    "alg-socket": _table(hd=either(HD_SYS + " (AF_ALG if the kernel has it)")),
    # --- processes
    "see-host-process": _table(hd=allowed(HD_PROC), ln=allowed(NO_PIDNS)),
    "kill-host-process": _table(hd=allowed(HD_PROC)),
    "ptrace-host-process": _table(hd=allowed(HD_PROC)),
    "process-vm-readv-host": _table(hd=allowed(HD_PROC)),
    "signal-agentd": _all_blocked(),
    "ptrace-agentd": _all_blocked(),
    "process-vm-readv-agentd": _all_blocked(),
    "ptrace-pid1": _all_blocked(),
    "process-vm-readv-pid1": _all_blocked(),
    "daemon-outlives-sandbox": _all_blocked(),
    "other-sandbox-signal": _table(hd=allowed(HD_SIBLINGS)),
    "other-sandbox-ptrace": _table(hd=allowed(HD_SIBLINGS)),
    "other-sandbox-workspace": _table(hd=allowed(HD_SIBLINGS)),
    # --- code contexts: frames a hostile cell forges are refused by the daemon's parser
    "context-frame-forgery": _all_blocked(),
    # issue 14: mcp — what a command prints stays data inside agentd mcp's one message
    "mcp-message-forgery": _all_blocked(),
    # --- resources
    "fork-bomb": _all_blocked(),
    "shell-fork-bomb": _all_blocked(),
    "mem-bomb": _all_blocked(),
    "cpu-burn-processes": _all_blocked(),
    "disk-fill": _all_blocked(),
    "disk-fill-files": _table(hd=allowed(PROC_DISK), ln=allowed(PROC_DISK)),
    # whose per-user budgets (signals, inotify, mqueues) a sandbox's use is charged to
    "budget-charged-to-host": _all_blocked(),
    # issue 13: oci-runtime. pid 1's stdio reached through /proc/1/fd: /dev/null, or out of
    # reach; never a host pipe or file (judged on the link's target)
    "pid1-stdio": _all_blocked(),
}


def expectation(attack, backend):
    return EXPECT[attack][backend]


# ------------------------------------------------------------------- running
class Result:
    def __init__(self, proc, elapsed):
        self.proc = proc
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.json = None
        if proc.stdout.startswith(b"{"):
            self.json = json.loads(proc.stdout)

    @property
    def out(self):
        """The command's stdout (from the JSON result), or agentd's own."""
        if self.json is not None:
            return self.json["stdout"]
        return self.stdout.decode(errors="replace")

    def __repr__(self):
        return (f"rc={self.rc} stdout={self.stdout[:600]!r} stderr={self.stderr[:600]!r}")


def agentd(*args, input=None, timeout=60, env=None, pass_fds=(), cwd=None, **popen):
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if env:
        e.update(env)
    t0 = time.monotonic()
    p = subprocess.run([AGENTD, *args], input=input, capture_output=True, timeout=timeout,
                       env=e, pass_fds=pass_fds, cwd=cwd, **popen)
    return Result(p, time.monotonic() - t0)


def degraded(backend):
    """host-direct enforces no filesystem, network or syscall wall: agentd runs it only when
    told to run without them (docs/policy.md#enforcement)."""
    return ["--allow-degraded"] if backend == "host-direct" else []


def run(backend, *cmd, opts=(), **kw):
    """agentd run --backend B --json (the probe's directory read-only) [opts] -- cmd..."""
    args = ["run", "--backend", backend, *degraded(backend), "--json", "--ro", PROBE_DIR,
            "--timeout",
            RUN_TIMEOUT, *opts, "--", *cmd]
    return agentd(*args, **kw)


def verdict_of(text):
    """(verdict, line) from sbxprobe's output: the last ALLOWED/BLOCKED/ERROR line."""
    for line in reversed(text.strip().splitlines()):
        word = line.split(" ", 1)[0]
        if word in ("ALLOWED", "BLOCKED", "ERROR"):
            return word, line
    return "", ""


def probe(backend, *pargs, opts=(), **kw):
    """One sbxprobe attempt inside a sandbox: (Result, verdict, line). A sandbox that agentd
    refused to start (exit 125, no JSON) gives verdict 'REFUSED'."""
    r = run(backend, PROBE, *pargs, opts=opts, **kw)
    if r.json is None:
        assert r.rc == 125, f"agentd gave no JSON result: {r}"
        return r, "REFUSED", r.stderr.decode(errors="replace").strip()
    v, line = verdict_of(r.json["stdout"])
    if not v:
        line = f"(no verdict; exit {r.rc}, stderr {r.json['stderr'][-300:]!r})"
    return r, v, line


def check(attack, backend, verdict, line, refused_ok=False):
    """Assert the observed verdict against the table. Returns the Expect."""
    exp = expectation(attack, backend)
    where = f"{attack} on {backend}"
    assert verdict not in ("", "ERROR"), f"{where}: probe error: {line}"
    if verdict == "REFUSED":
        assert refused_ok and exp.kind != "allowed", \
            f"{where}: agentd refused to run the attack: {line}"
        return exp
    if exp.kind == "blocked":
        assert verdict == "BLOCKED", f"{where}: ATTACK SUCCEEDED (sandbox escape): {line}"
    elif exp.kind == "allowed":
        assert verdict == "ALLOWED", (
            f"{where}: documented gap did not reproduce ({line}); if the backend now "
            f"blocks it, update EXPECT in tests/security/secsuite.py. Gap: {exp.reason}")
    return exp


# --------------------------------------------------------------- host state
_available = None


def available_backends():
    """Names `agentd backends --json` lists as available (asked once per session)."""
    global _available
    if _available is None:
        r = agentd("backends", "--json")
        assert r.rc == 0, r
        _available = {b["name"] for b in json.loads(r.stdout) if b.get("available")
                      and not no_file_sharing(b)}
    return _available


# issue 15: vm-host. The attacks are sbxprobe, a host file: a micro-VM reaches it only
# through file sharing into the guest (the "file-sharing" feature); without it every
# attack is refused at create (allowed_paths_ro), so the column cannot run here.
MICROVM_NO_SHARING = ("microvm unavailable, or without file sharing (no \"file-sharing\" feature): sbxprobe, "
                      "a host file, cannot reach the guest, so no attack can run there")


def no_file_sharing(b):
    if b.get("name") != "microvm":
        return False
    r = agentd("probe", "--backend", "microvm", "--json", timeout=300)
    assert r.rc == 0, r
    return "file-sharing" not in json.loads(r.stdout)["backends"][0]["platform_features"]


def first_block_device():
    try:
        names = sorted(os.listdir("/sys/class/block"))
    except OSError:
        return None
    # a whole disk first (vda, sda, nvme0n1), loop devices last
    names.sort(key=lambda n: (n.startswith(("loop", "ram", "zram")), n))
    for n in names:
        if os.path.exists(f"/dev/{n}"):
            return f"/dev/{n}"
    return None


def host_true_ms():
    """How long the host takes to fork+exec /bin/true (responsiveness after a bomb)."""
    t0 = time.monotonic()
    subprocess.run(["/bin/true"], check=True, timeout=30)
    return (time.monotonic() - t0) * 1000


def proc_matching(token):
    """Host pids whose cmdline contains token."""
    hits = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    hits.append(int(d))
        except OSError:
            pass
    return hits


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _listing(path):
    try:
        return tuple(sorted(os.listdir(path)))
    except OSError as e:
        return ("<error>", e.errno)


def _tree(path):
    """Names, sizes and contents of the small files under a test directory."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            data = None
            if os.path.isfile(p) and not os.path.islink(p) and st.st_size < 65536:
                try:
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError:
                    pass
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, data)
    return out


class HostState:
    """What an attack must leave as it was: the hostname, the clock, the top of /, /etc,
    /usr and /root, and every file of the test's own host directory."""

    def __init__(self, hostdir=None):
        self.hostdir = hostdir
        self.hostname = socket.gethostname()
        self.clock_offset = time.time() - time.monotonic()
        self.listings = {p: _listing(p) for p in ("/", "/etc", "/usr", "/root")}
        self.tree = _tree(hostdir) if hostdir else None

    def diff(self, after):
        d = []
        if after.hostname != self.hostname:
            d.append(f"hostname {self.hostname!r} -> {after.hostname!r}")
        if abs(after.clock_offset - self.clock_offset) > 1.0:
            d.append(f"clock moved by {after.clock_offset - self.clock_offset:.3f}s")
        for p, names in self.listings.items():
            # Only names an attack of this suite would plant: the machine is shared, and
            # other programs may come and go in /root meanwhile.
            changed = [n for n in set(after.listings[p]) ^ set(names)
                       if isinstance(n, str) and ("agentd-sec" in n or "sbxprobe" in n)]
            if changed:
                d.append(f"{p}: {sorted(changed)} appeared or vanished")
        if self.tree is not None and after.tree != self.tree:
            keys = set(self.tree) | set(after.tree)
            d.append(f"{self.hostdir}: " + ", ".join(
                sorted(k for k in keys if self.tree.get(k) != after.tree.get(k))))
        return d
