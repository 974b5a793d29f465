"""Per-user kernel budgets (container backend): each sandbox has a host uid of its own
(leased from the subordinate range, /run/agentd/ids) and a user namespace owned by that uid,
so a sandbox that exhausts what the kernel counts per user (pending signals, timers,
inotify instances, pipe pages) takes nothing from host root or from another sandbox."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from .secsuite import AGENTD, available_backends, check, probe

IDS_DIR = "/run/agentd/ids"

# Exhausts every per-user budget it can reach, reports how each attempt stopped, then
# holds what it took until the test says done.
HOG = r"""
import ctypes, fcntl, json, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
class sigval(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
class mq_attr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                ("msgsize", ctypes.c_long), ("cur", ctypes.c_long), ("pad", ctypes.c_long * 4)]
d = sys.argv[1]
res = {}
sig = signal.SIGRTMIN
signal.pthread_sigmask(signal.SIG_BLOCK, [sig])
n = 0
while n < 300000 and libc.sigqueue(os.getpid(), sig, sigval(0)) == 0:
    n += 1
res["sigqueue"] = [n, ctypes.get_errno()]
fds = []
while len(fds) < 1000:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
res["inotify"] = [len(fds), ctypes.get_errno()]
queues = 0
a = mq_attr(0, 10, 8192, 0)
while queues < 300:
    if libc.mq_open(b"/agentd-hog-%d" % queues, os.O_CREAT | os.O_RDWR, 0o600,
                    ctypes.byref(a)) < 0:
        break
    queues += 1
res["mqueue"] = [queues, ctypes.get_errno()]
pipes, err, keep = 0, 0, []
while pipes < 1000:
    try:
        r, w = os.pipe()
        keep += [r, w]
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError as e:
        err = e.errno
        break
    pipes += 1
res["pipes"] = [pipes, err]
with open(d + "/ready.tmp", "w") as f:
    json.dump(res, f)
os.rename(d + "/ready.tmp", d + "/ready")
for _ in range(1200):
    if os.path.exists(d + "/done"):
        break
    time.sleep(0.05)
"""

# What a victim needs of the same budgets: one of each must still work.
CHECK = r"""
import ctypes, fcntl, json, os, signal
libc = ctypes.CDLL(None, use_errno=True)
class sigval(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
res = {}
sig = signal.SIGRTMIN
signal.pthread_sigmask(signal.SIG_BLOCK, [sig])
res["sigqueue"] = 0 if libc.sigqueue(os.getpid(), sig, sigval(0)) == 0 else ctypes.get_errno()
tid = ctypes.c_void_p()
res["timer_create"] = 0 if libc.timer_create(1, None, ctypes.byref(tid)) == 0 \
    else ctypes.get_errno()
res["inotify_init"] = 0 if libc.inotify_init1(0) >= 0 else ctypes.get_errno()
r, w = os.pipe()
try:
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
    res["pipe_resize"] = 0
except OSError as e:
    res["pipe_resize"] = e.errno
print(json.dumps(res))
"""

OK = {"sigqueue": 0, "timer_create": 0, "inotify_init": 0, "pipe_resize": 0}

# Host root only: a POSIX message queue of the default size (RLIMIT_MSGQUEUE is per user).
MQ_OPEN = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
name = b"/agentd-budget-check-%d" % os.getpid()
q = libc.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, None)
print(0 if q >= 0 else ctypes.get_errno())
libc.mq_unlink(name)
"""

# Host root only: glibc's setresuid() signals every thread to follow (an RT signal each);
# with root's pending-signal budget gone, a thread stayed at uid 0.
SETXID_THREADS = r"""
import os, threading
go = threading.Event()
threads = [threading.Thread(target=go.wait) for _ in range(4)]
for t in threads:
    t.start()
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
uids = set()
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/status") as f:
        uids.add(int(f.read().split("\nUid:")[1].split()[0]))
go.set()
for t in threads:
    t.join()
print(sorted(uids))
"""


@pytest.fixture
def container():
    if "container" not in available_backends():
        pytest.skip("the container backend is not available here")
    if os.geteuid() != 0:
        pytest.skip("sandbox host uids are leased by root")


def _run(*args, timeout=60):
    return subprocess.run([AGENTD, "run", "--backend", "container", *args],
                          capture_output=True, timeout=timeout,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_exhausting_budgets_leaves_root_and_other_sandboxes_alone(container):
    d = tempfile.mkdtemp(prefix="agentd-budget-", dir="/var/tmp")
    os.chmod(d, 0o777)
    script = os.path.join(d, "hog.py")
    with open(script, "w") as f:
        f.write(HOG)
    os.chmod(script, 0o644)
    hog = subprocess.Popen([AGENTD, "run", "--backend", "container", "--json", "--rw", d,
                            "--timeout", "90s", "--", "python3", script, d],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(d, "ready")):
            assert hog.poll() is None, hog.communicate()
            assert time.monotonic() < deadline, "the hog never got ready"
            time.sleep(0.05)
        with open(os.path.join(d, "ready")) as f:
            took = json.load(f)
        # It did exhaust what it could reach: each loop stopped on the kernel's refusal.
        assert took["sigqueue"][1] == 11 and took["sigqueue"][0] > 100, took  # EAGAIN
        assert took["inotify"][1] == 24 and took["inotify"][0] > 0, took     # EMFILE
        assert took["pipes"][1] in (1, 24), took                             # EPERM/EMFILE
        # Host root, while the hog holds all of it.
        host = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, timeout=30)
        assert json.loads(host.stdout) == OK, (host, took)
        setxid = subprocess.run([sys.executable, "-c", SETXID_THREADS], capture_output=True,
                                timeout=30)
        assert setxid.stdout.split() == [b"[65534]"], (setxid, took)
        # Message queues: the hog's were refused (Landlock) or stopped at its own cap.
        assert took["mqueue"][1] in (13, 24), took                       # EACCES/EMFILE
        mq = subprocess.run([sys.executable, "-c", MQ_OPEN], capture_output=True, timeout=30)
        assert mq.stdout.strip() == b"0", (mq, took)
        # A second sandbox, likewise.
        other = _run("--json", "--", "python3", "-c", CHECK)
        assert other.returncode == 0, other
        out = json.loads(json.loads(other.stdout)["stdout"])
        assert out == OK, (out, took)
    finally:
        open(os.path.join(d, "done"), "w").close()
        try:
            hog.communicate(timeout=60)
        finally:
            if hog.poll() is None:
                hog.kill()
            shutil.rmtree(d, ignore_errors=True)


def test_budgets_are_charged_to_the_sandbox_not_host_root(backend):
    """From inside: the owner of the sandbox's user namespace (whose budgets its use is
    charged to) is its own user, never a user outside it (the row of agentd probe
    --security)."""
    r, verdict, line = probe(backend, "budget-owner")
    check("budget-charged-to-host", backend, verdict, line)


def test_budgets_are_capped_in_the_sandbox(container):
    """The per-sandbox caps: the rlimits counted per user, and /proc/sys/user lowered in
    its user namespace."""
    r = _run("--json", "--", "/bin/sh", "-c",
             "grep SigQ /proc/self/status; cat /proc/sys/user/max_inotify_instances "
             "/proc/sys/user/max_user_namespaces; ulimit -q 2>/dev/null || true")
    out = json.loads(r.stdout)["stdout"]
    lines = out.split()
    assert "SigQ:" in lines and lines[lines.index("SigQ:") + 1].endswith("/4096"), out
    assert "64" in lines, out


def test_concurrent_sandboxes_get_distinct_uids_released_after(container):
    procs = [subprocess.Popen([AGENTD, "run", "--backend", "container", "--", "sleep", "3"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(4)]
    try:
        deadline = time.monotonic() + 30
        uids = set()
        while time.monotonic() < deadline:
            uids = set()
            for p in os.listdir("/proc"):
                if not p.isdigit():
                    continue
                try:
                    with open(f"/proc/{p}/status") as f:
                        st = f.read()
                except OSError:
                    continue
                if "\nPPid:" not in st or "Name:\tsleep\n" not in st:
                    continue
                uid = int(st.split("\nUid:")[1].split()[0])
                if uid >= 1 << 30:
                    uids.add(uid)
            if len(uids) >= 4:
                break
            time.sleep(0.05)
        assert len(uids) >= 4, uids
        held = {u: os.getxattr(os.path.join(IDS_DIR, str(u)), "trusted.agentd.sandbox")
                for u in uids}
        assert all(held.values()), held
    finally:
        for p in procs:
            p.wait(timeout=60)
    # Released once each sandbox is cleaned up: its lease file is gone (or, when another
    # agentd on this host took the freed uid meanwhile, names another sandbox).
    for u, sid in held.items():
        lease = os.path.join(IDS_DIR, str(u))
        try:
            now = os.getxattr(lease, "trusted.agentd.sandbox")
        except FileNotFoundError:
            continue
        assert now != sid, (u, sid)


def test_user_0_is_root_of_its_own_namespace_only(container):
    secret = tempfile.mkdtemp(prefix="agentd-root-only-", dir="/var/tmp")
    try:
        os.chmod(secret, 0o755)
        path = os.path.join(secret, "root-only")
        with open(path, "w") as f:
            f.write("ROOT-ONLY\n")
        os.chmod(path, 0o600)
        r = _run("--json", "--user", "0", "--ro", secret, "--", "/bin/sh", "-c",
                 f"id -u; grep -E '^(CapEff|CapPrm):' /proc/self/status; "
                 f"cat /proc/self/uid_map; cat {path} || echo DENIED")
        assert r.returncode == 0, r
        out = json.loads(r.stdout)["stdout"]
        lines = out.splitlines()
        assert lines[0] == "0", out
        assert "CapEff:\t0000000000000000" in lines, out
        assert "CapPrm:\t0000000000000000" in lines, out
        inside, host, count = lines[3].split()
        assert inside == "0" and int(host) >= 1 << 30 and count == "1", out
        assert "ROOT-ONLY" not in out and "DENIED" in out, out
    finally:
        shutil.rmtree(secret, ignore_errors=True)
