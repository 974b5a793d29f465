"""The gondolin backend plugin (docs/gondolin.md): the real .so, loaded by the real registry
through `agentd` (run and serve), driving a helper. Where gondolin itself cannot run (Node
older than 23.6, no package, no local guest image, no accelerator) the helper is a test double
speaking the same NDJSON protocol (tests/gondolin/helper_double.py); the real path runs only
where the probe passes."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import AGENTD, BUILD, agentd, pid_alive
from daemon_util import Daemon

PLUGIN_DIR = os.path.join(BUILD, "plugins", "gondolin")
DOUBLE = os.path.join(os.path.dirname(__file__), "..", "gondolin", "helper_double.py")
DOUBLE = os.path.abspath(DOUBLE)


@pytest.fixture
def double(tmp_path):
    """The environment that makes agentd's gondolin plugin start the double; its log dir."""
    log = tmp_path / "double"
    log.mkdir()
    env = {"AGENTD_PLUGIN_DIR": PLUGIN_DIR, "AGENTD_GONDOLIN_HELPER": DOUBLE,
           "GONDOLIN_DOUBLE_LOG": str(log)}
    yield env, log
    for pid in logged_pids(log):  # a failed test leaves nothing either
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def daemon(double):
    """agentd serve with the plugin and the double; after it stopped, nothing is left."""
    env, log = double
    d = Daemon(prefix=["/usr/bin/env", *[f"{k}={v}" for k, v in env.items()]]).start()
    try:
        yield d, log
    finally:
        d.stop()
        d.cleanup()
    assert_nothing_left(log)


def logged_pids(log):
    path = log / "pids"
    if not path.exists():
        return []
    return [int(line.split()[1]) for line in path.read_text().splitlines()]


def requests(log):
    path = log / "requests.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_nothing_left(log):
    """The helper, its stand-in VM runner and every exec: all gone (zombies awaiting their
    reaper count as gone)."""
    pids = logged_pids(log)
    assert pids, "the double never started"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    assert [p for p in pids if pid_alive(p)] == []


def grun(env, *args, input=None, timeout=90):
    """agentd run on gondolin; the double enforces no pids, cpu-time, open-files, write or
    seccomp limits (nor does gondolin): --allow-degraded runs without them, listed."""
    return agentd("run", "--backend", "gondolin", "--allow-degraded", *args, input=input,
                  timeout=timeout, env=env)


def node_version():
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return None
    m = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.strip())
    return tuple(int(x) for x in m.groups()) if m else None


def real_probe():
    r = agentd("backends", "--json", env={"AGENTD_PLUGIN_DIR": PLUGIN_DIR,
                                          "HOME": os.environ.get("HOME", "/root")})
    assert r.rc == 0, r
    return next(b for b in json.loads(r.stdout) if b["name"] == "gondolin")


# ------------------------------------------------------------------ the probe, for real


def test_the_plugin_is_loaded_from_the_plugin_dir_and_registers_gondolin():
    r = agentd("backends", env={"AGENTD_PLUGIN_DIR": PLUGIN_DIR})
    assert r.rc == 0 and b"warning" not in r.stderr, r
    assert re.search(rb"^gondolin\s", r.stdout, re.M), r


def test_the_probe_names_each_missing_piece_of_this_machine():
    """The real helper, with the real Node: what it finds missing is what is missing."""
    b = real_probe()
    reason = b.get("reason", "")
    v = node_version()
    if v is None or v < (23, 6, 0):
        assert not b["available"]
        assert ">= 23.6.0 needed" in reason, reason
        if v:
            assert "node v%d.%d.%d found" % v in reason, reason
    else:
        assert "needed" not in reason, reason
    qemu = shutil.which("qemu-system-x86_64", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert ("qemu-system-x86_64 not on PATH" in reason) == (qemu is None), reason
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    assert ("no usable accelerator (/dev/kvm)" in reason) == (not kvm), reason
    assert b["available"] == (reason == ""), reason


def test_without_node_the_probe_says_so():
    r = agentd("backends", "--json", env={"AGENTD_PLUGIN_DIR": PLUGIN_DIR,
                                          "AGENTD_GONDOLIN_NODE": "/nonexistent/node"})
    b = next(b for b in json.loads(r.stdout) if b["name"] == "gondolin")
    assert not b["available"]
    assert "exec /nonexistent/node: No such file or directory" in b["reason"], b


def test_an_unavailable_gondolin_refuses_create_with_the_probes_reason():
    b = real_probe()
    if b["available"]:
        pytest.skip("gondolin is available here")
    r = agentd("run", "--backend", "gondolin", "--allow-degraded", "--", "true",
               env={"AGENTD_PLUGIN_DIR": PLUGIN_DIR})
    assert r.rc == 125, r
    assert b"gondolin is unavailable here: " + b["reason"].encode() in r.stderr, r


def test_the_real_gondolin_runs_a_command_where_the_probe_passes():
    b = real_probe()
    if not b["available"]:
        pytest.skip("gondolin unavailable here: " + b["reason"])
    r = agentd("run", "--backend", "gondolin", "--allow-degraded", "--json", "--",
               "sh", "-c", "echo out; echo err >&2; exit 3",
               env={"AGENTD_PLUGIN_DIR": PLUGIN_DIR, "HOME": os.environ.get("HOME", "/root")},
               timeout=600)
    assert r.json, r
    assert (r.json["exit_code"], r.json["stdout"], r.json["stderr"]) == (3, "out\n", "err\n")


# ------------------------------------------------------------ the C side, on the double


def test_exit_codes_and_output_come_back(double):
    env, log = double
    r = grun(env, "--json", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert r.json, r
    assert (r.json["exit_code"], r.json["stdout"], r.json["stderr"]) == (7, "out\n", "err\n")
    assert r.json["backend"] == "gondolin"
    assert r.rc == 7
    r = grun(env, "--json", "--", "no-such-program-here")
    assert r.json and r.json["exit_code"] == 127, r
    assert_nothing_left(log)


def test_a_signal_that_ends_the_command_is_128_plus_n(double):
    env, log = double
    r = grun(env, "--json", "--", "sh", "-c", "kill -TERM $$")
    assert r.json and (r.json["exit_code"], r.json["term_signal"]) == (143, 15), r


def test_output_streams_in_the_order_the_command_wrote_it(double):
    env, log = double
    script = "echo o1; sleep 0.3; echo e1 >&2; sleep 0.3; echo o2; sleep 0.3; echo e2 >&2"
    p = subprocess.run([AGENTD, "run", "--backend", "gondolin", "--allow-degraded", "--",
                        "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}, timeout=60)
    lines = [ln for ln in p.stdout.decode().splitlines() if not ln.startswith("agentd:")]
    assert lines == ["o1", "e1", "o2", "e2"], p.stdout


def test_stdin_reaches_the_command_in_full(double):
    env, log = double
    data = bytes(range(256)) * 1024  # 256 KiB: several stdin chunks, binary
    r = agentd("run", "--backend", "gondolin", "--allow-degraded", "-i", "--",
               "sha256sum", input=data, env=env, timeout=60)
    import hashlib
    assert r.rc == 0, r
    assert r.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    stdin = [q for q in requests(log) if q["op"] == "stdin"]
    assert len(stdin) > 1 and stdin[-1].get("eof") is True


def test_the_wall_timeout_kills_the_command_through_the_helper(double):
    env, log = double
    t0 = time.monotonic()
    r = grun(env, "--json", "--timeout", "1s", "--", "sleep", "30")
    assert r.json and r.json["exit_code"] == 124 and r.json["timed_out"], r
    assert time.monotonic() - t0 < 20
    sig = [q for q in requests(log) if q["op"] == "signal"]
    assert sig and sig[0]["signal"] == signal.SIGKILL
    assert_nothing_left(log)


def test_sigint_to_agentd_kills_the_command_and_leaves_nothing(double):
    env, log = double
    p = subprocess.Popen([AGENTD, "run", "--backend", "gondolin", "--allow-degraded", "--",
                          "sleep", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(q["op"] == "exec" for q in requests(log)):
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    assert rc == 130, p.stderr.read()
    sig = [q for q in requests(log) if q["op"] == "signal"]
    assert sig and sig[0]["signal"] == signal.SIGKILL
    assert_nothing_left(log)


def test_destroy_closes_the_vm_and_kills_the_helpers_group(double):
    """The double's stand-in VM runner outlives its close (as a stuck QEMU would): destroy's
    group kill still takes it."""
    env, log = double
    r = grun(env, "--", "true")
    assert r.rc == 0, r
    assert [q["op"] for q in requests(log)][-1] == "close"
    assert any(line.startswith("runner ") for line in (log / "pids").read_text().splitlines())
    assert_nothing_left(log)


def test_the_output_cap_holds_against_a_flood(double):
    env, log = double
    r = grun(env, "--json", "--max-output", "64K", "--timeout", "2s", "--", "double-flood")
    assert r.json, r
    assert r.json["output_truncated"] and r.json["timed_out"], r
    assert len(r.json["stdout"]) <= 64 * 1024
    assert_nothing_left(log)


# ------------------------------------------------------------------ a hostile helper

HOSTILE = {
    "double-oversize": "a line longer than 262144 bytes",
    "double-malformed": "malformed JSON line",
    "double-unknown-id": "an answer to unknown request id 999999",
    "double-bad-base64": "a malformed output event",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_line_ends_that_sandbox_with_a_clear_error(double, name):
    env, log = double
    r = grun(env, "--", name)
    assert r.rc == 125, r
    assert ("gondolin helper: " + HOSTILE[name]).encode() in r.stderr, r
    assert b"the sandbox has ended" in r.stderr
    assert_nothing_left(log)


def test_a_refused_exec_reports_the_helpers_message_as_plain_text(double):
    """The message may carry what the guest wrote: no escape sequence nor line break of it
    reaches the caller's terminal; the sandbox itself lives on."""
    env, log = double
    r = grun(env, "--", "double-refuse")
    assert r.rc == 125, r
    line = [ln for ln in r.stderr.split(b"\n") if b"refused" in ln][0]
    assert b"exec: refused " in line and b"forged line" in line, r
    assert all(0x20 <= ch < 0x7f for ch in line), line
    assert [q["op"] for q in requests(log)][-1] == "close"  # destroyed as usual


def test_a_helper_that_never_answers_meets_the_deadline(double):
    env, log = double
    t0 = time.monotonic()
    r = grun(env, "--", "double-silent")
    assert r.rc == 125 and b"no answer within 10000 ms" in r.stderr, r
    assert time.monotonic() - t0 < 60
    assert_nothing_left(log)


def test_a_command_that_outlives_sigkill_ends_its_sandbox(double):
    env, log = double
    r = grun(env, "--timeout", "1s", "--", "double-no-exit")
    assert r.rc == 125, r
    assert b"did not end within 5000 ms of SIGKILL" in r.stderr, r
    assert_nothing_left(log)


def test_a_hostile_helper_fails_only_its_own_sandbox_in_the_daemon(daemon):
    d, log = daemon
    good = d.create("gondolin", allow_degraded=True)
    bad = d.create("gondolin", allow_degraded=True)
    r = d.exec(bad, ["double-oversize"])
    assert r.status >= 500 and "a line longer than" in r.error.get("message", ""), r
    r = d.exec(bad, ["true"])
    assert r.status == 409 and "is failed" in r.error.get("message", ""), r
    r = d.exec(good, ["sh", "-c", "echo still here"])
    assert r.status == 200 and r.json["stdout"] == "still here\n", r
    # streamed: the chunks in the order written
    r = d.post(f"/v1/sandboxes/{good}/exec",
               {"argv": ["sh", "-c", "echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c"],
                "stream": True})
    events = [json.loads(x) for x in r.body.splitlines()]
    chunks = [(e["stream"], e["data"]) for e in events if "stream" in e]
    assert chunks == [("stdout", "a\n"), ("stderr", "b\n"), ("stdout", "c\n")], r
    assert d.get("/v1/health").status == 200
    assert d.delete(f"/v1/sandboxes/{good}").status in (200, 204)
    assert d.delete(f"/v1/sandboxes/{bad}").status in (200, 204)


def test_daemon_snapshots_are_gondolin_checkpoints_removed_with_the_sandbox(daemon):
    d, log = daemon
    sid = d.create("gondolin", allow_degraded=True)
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "one"})
    assert r.status == 201 and r.json["size_bytes"] > 0, r
    snap = r.json["id"]
    r = d.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap})
    assert r.status == 200, r
    ops = [q for q in requests(log) if q["op"] in ("checkpoint", "restore")]
    assert [q["op"] for q in ops] == ["checkpoint", "restore"]
    ckdir = os.path.dirname(ops[0]["path"])
    assert os.path.basename(ckdir) == "gondolin-" + sid
    assert ops[1]["path"] != ops[0]["path"]  # a copy of the caller's, not its own file
    r = d.exec(sid, ["true"])
    assert r.status == 200 and r.json["exit_code"] == 0, r
    assert d.delete(f"/v1/sandboxes/{sid}").status in (200, 204)
    assert not os.path.exists(ckdir)


def test_when_the_daemon_dies_its_helpers_see_their_stdin_end(double):
    """Each helper's stdin is its own (CLOEXEC, nothing else inherits it): a daemon killed
    with -9 ends every helper, which closes its VM (the double: its runner and execs)."""
    env, log = double
    d = Daemon(prefix=["/usr/bin/env", *[f"{k}={v}" for k, v in env.items()]]).start()
    try:
        for _ in range(2):
            d.create("gondolin", allow_degraded=True)
        runners = [ln for ln in (log / "pids").read_text().splitlines() if ln[:7] == "runner "]
        assert len(runners) == 2
    finally:
        d.kill9()
    assert_nothing_left(log)


# ------------------------------------------------------------------ policy


def test_the_policy_is_mapped_to_gondolins_options(double, tmp_path):
    env, log = double
    r = grun(env, "--memory", "300M", "--ro", str(tmp_path), "--net",
             "allow:pypi.org:443,*.github.com:80", "--", "true")
    assert r.rc == 0, r
    cfg = json.loads((log / "config.json").read_text())
    assert cfg["memory"] == "300M"
    assert {"host": str(tmp_path), "guest": str(tmp_path), "readonly": True} in cfg["mounts"]
    assert cfg["network"] == {"mode": "allowlist", "allow": [
        {"host": "pypi.org", "port": 443}, {"host": "*.github.com", "port": 80}]}
    r = grun(env, "--", "true")
    assert json.loads((log / "config.json").read_text())["network"] == {"mode": "none"}


@pytest.mark.parametrize("args,path", [
    (["--net", "host"], "network.mode"),
    (["--net", "allow:pypi.org:443,10.0.0.0/8:443"], "network.allow[1]"),
    (["--net", "allow:127.0.0.1:443"], "network.allow[0]"),
    (["--net", "allow:db.internal:5432"], "network.allow[0]"),
    (["--rw", "/tmp"], "allowed_paths_rw[0]"),
])
def test_what_gondolin_cannot_express_is_refused_naming_the_path(double, args, path):
    env, log = double
    r = grun(env, *args, "--", "true")
    assert r.rc == 125, r
    assert (path + ": ").encode() in r.stderr, r
    assert not any(q["op"] == "create" for q in requests(log)), "refused before any VM"


def test_a_writable_bind_mount_is_refused_naming_its_path(double, tmp_path):
    env, log = double
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"bind_mounts": [{"source": str(tmp_path), "target": "/data",
                                                 "readonly": False}],
                               "limits": {"cpu_weight": 100}}))
    r = grun(env, "--policy", str(pol), "--", "true")
    assert r.rc == 125 and b"bind_mounts[0]: " in r.stderr, r
    pol.write_text(json.dumps({"limits": {"cpu_weight": 50}}))
    r = grun(env, "--policy", str(pol), "--", "true")
    assert r.rc == 125 and b"limits.cpu_weight: " in r.stderr, r
