"""`agentd run`: exit codes, environment, timeouts, output caps, stdin, JSON output,
resource limits and no survivors, on every process backend."""
import base64
import json
import os
import subprocess
import tempfile
import time

import pytest

from conftest import AGENTD, ALL_BACKENDS, PROBE, PROBE_DIR, agentd, degraded, hostdir, pid_alive, probe, run  # noqa: F401


@pytest.mark.parametrize("backend", ALL_BACKENDS)
class TestExitCodes:
    def test_exit_code_passes_through(self, backend):
        r = run(backend, "/bin/sh", "-c", "exit 3", json_out=False)
        assert r.rc == 3, r

    def test_success_and_stdout(self, backend):
        r = run(backend, "/bin/echo", "hello", json_out=False)
        assert r.rc == 0, r
        assert r.stdout == b"hello\n"

    def test_not_found_is_127(self, backend):
        r = run(backend, "/nonexistent/prog", json_out=False)
        assert r.rc == 127, r
        assert b"/nonexistent/prog" in r.stderr

    def test_path_search_not_found_is_127(self, backend):
        r = run(backend, "no-such-command-agentd", json_out=False)
        assert r.rc == 127, r

    def test_not_executable_is_126(self, backend):
        r = run(backend, "/etc/hostname", json_out=False)
        assert r.rc == 126, r

    def test_killed_by_signal_is_128_plus_n(self, backend):
        r = run(backend, "/bin/sh", "-c", "kill -TERM $$")
        assert r.rc == 143, r
        assert r.json["exit_code"] == 143
        assert r.json["term_signal"] == 15

    def test_bad_flag_is_125(self, backend):
        r = agentd("run", "--backend", backend, "--memory", "lots", "--", "/bin/true")
        assert r.rc == 125, r
        assert b"--memory" in r.stderr

    def test_bad_policy_is_125_naming_the_path(self, backend, tmp_path):
        pol = tmp_path / "p.json"
        pol.write_text('{"limits": {"max_memory_bytes": 5}}')
        r = agentd("run", "--backend", backend, "--policy", str(pol), "--", "/bin/true")
        assert r.rc == 125, r
        assert b"limits.max_memory_bytes" in r.stderr

    def test_unknown_backend_lists_available(self, backend):
        r = agentd("run", "--backend", "nope", "--", "/bin/true")
        assert r.rc == 125
        assert b"unknown isolation backend 'nope'" in r.stderr
        assert b"linux-native" in r.stderr


@pytest.mark.parametrize("backend", ALL_BACKENDS)
class TestEnvironment:
    def test_host_environment_cleared(self, backend):
        r = run(backend, PROBE, "env", env={"AGENTD_TEST_SECRET": "leak-me"})
        env = dict(l.split("=", 1) for l in r.json["stdout"].splitlines() if "=" in l)
        assert "AGENTD_TEST_SECRET" not in env
        assert env["PATH"].startswith("/usr/local/sbin")
        assert env["LANG"] == "C.UTF-8"
        assert env["HOME"] and env["TMPDIR"]

    def test_env_flag_and_policy(self, backend, tmp_path):
        pol = tmp_path / "p.json"
        pol.write_text('{"environment": {"FROM_POLICY": "1", "OVERRIDDEN": "policy"}}')
        r = run(backend, PROBE, "env",
                opts=["--policy", str(pol), "--env", "OVERRIDDEN=flag", "--env", "X=a=b"])
        env = dict(l.split("=", 1) for l in r.json["stdout"].splitlines() if "=" in l)
        assert env["FROM_POLICY"] == "1"
        assert env["OVERRIDDEN"] == "flag"
        assert env["X"] == "a=b"

    def test_loader_variables_rejected(self, backend):
        r = run(backend, "/bin/true", opts=["--env", "LD_PRELOAD=/tmp/x.so"])
        assert r.rc == 125
        assert b"LD_PRELOAD" in r.stderr


@pytest.mark.parametrize("backend", ALL_BACKENDS)
class TestTimeoutsAndSurvivors:
    def test_timeout_kills_tree_exit_124(self, backend):
        t0 = time.monotonic()
        # a duration of our own (sleep takes fractions), so that a concurrent run of these
        # tests from another checkout is not mistaken for a survivor
        nap = "1000.%d" % os.getpid()
        r = run(backend, "/bin/sh", "-c", f"sleep {nap} & sleep {nap}; echo never",
                opts=["--timeout", "500ms"])
        assert time.monotonic() - t0 < 10
        assert r.rc == 124, r
        assert r.json["timed_out"] is True
        assert r.json["exit_code"] == 124
        out = subprocess.run(["pgrep", "-f", f"^sleep {nap}$"], capture_output=True)
        assert out.stdout == b"", "a process of the timed-out command survived"

    def test_daemonized_process_does_not_outlive_command(self, backend, hostdir):
        # The daemon writes PIDFILE.marker after 1 s if it is still alive; pids are not
        # comparable across pid namespaces, the marker is.
        pidfile = os.path.join(hostdir, "pid")
        r = run(backend, PROBE, "daemonize", "1", pidfile, opts=["--rw", hostdir])
        assert r.rc == 0, r
        assert os.path.exists(pidfile), "the daemon was never started"
        time.sleep(2)
        assert not os.path.exists(pidfile + ".marker"), \
            "setsid'd grandchild outlived the sandboxed command"


@pytest.mark.parametrize("backend", ALL_BACKENDS)
class TestOutput:
    def test_output_cap_keeps_head_and_tail_and_flags(self, backend):
        r = run(backend, PROBE, "output", "100000", opts=["--max-output", "1000"])
        assert r.rc == 0, r
        marker = "\n[... 99000 bytes omitted ...]\n"
        assert len(r.json["stdout"]) == 1000 + len(marker) and marker in r.json["stdout"], r
        assert r.json["output_truncated"] is True
        assert r.json["limit_hit"] == "output"

    def test_stdout_and_stderr_each_have_the_cap(self, backend):
        r = run(backend, "/bin/sh", "-c", "head -c 600 /dev/zero | tr '\\0' a; "
                "head -c 600 /dev/zero | tr '\\0' b >&2", opts=["--max-output", "1000"])
        assert (r.json["stdout"], r.json["stderr"]) == ("a" * 600, "b" * 600), r
        assert r.json["output_truncated"] is False
        r = run(backend, "/bin/sh", "-c", "head -c 1200 /dev/zero | tr '\\0' a; "
                "head -c 1200 /dev/zero | tr '\\0' b >&2", opts=["--max-output", "1000"])
        marker = "\n[... 200 bytes omitted ...]\n"
        assert r.json["stdout"] == "a" * 500 + marker + "a" * 500, r
        assert r.json["stderr"] == "b" * 500 + marker + "b" * 500, r
        assert r.json["output_truncated"] is True

    def test_large_output_is_drained_not_deadlocked(self, backend):
        r = run(backend, PROBE, "output", str(8 << 20), opts=["--max-output", "1M"])
        assert r.rc == 0, r
        marker = "\n[... %d bytes omitted ...]\n" % ((8 << 20) - (1 << 20))
        assert len(r.json["stdout"]) == (1 << 20) + len(marker)

    def test_stdin_bytes(self, backend):
        data = bytes(range(256)) * 100
        r = run(backend, PROBE, "cat-stdin", input=data)
        assert r.json["stdout_encoding"] == "base64"
        assert base64.b64decode(r.json["stdout"]) == data

    def test_stdin_default_is_dev_null(self, backend):
        r = run(backend, "/bin/cat")
        assert r.rc == 0 and r.json["stdout"] == ""

    def test_json_fields(self, backend):
        r = run(backend, "/bin/sh", "-c", "echo out; echo err >&2; exit 7")
        j = r.json
        assert r.rc == 7
        assert j["exit_code"] == 7 and j["stdout"] == "out\n" and j["stderr"] == "err\n"
        assert j["backend"] == backend and len(j["sandbox_id"]) == 32
        for k in ("duration_ms", "timed_out", "resource_limited", "limit_hit",
                  "output_truncated", "resource_usage"):
            assert k in j
        assert j["limit_hit"] is None and j["resource_limited"] is False
        assert set(j["resource_usage"]) >= {"peak_memory_bytes", "cpu_time_ms", "wall_time_ms",
                                            "bytes_written", "bytes_read"}

    def test_streaming_delivers_before_exit(self, backend):
        p = subprocess.Popen([os.path.join(PROBE_DIR, "..", "agentd"), "run", "--backend",
                              backend, *degraded(backend), "--", "/bin/sh", "-c", "echo first; sleep 3; echo second"],
                             stdout=subprocess.PIPE)
        t0 = time.monotonic()
        first = p.stdout.readline()
        assert first == b"first\n"
        assert time.monotonic() - t0 < 2.5, "first chunk arrived only at exit"
        p.wait(timeout=10)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
class TestLimits:
    def test_memory_limit_kill_is_reported(self, backend):
        r = run(backend, "/usr/bin/python3", "-c", "b = bytearray(512 << 20); print('survived')",
                opts=["--memory", "32M"])
        assert r.json["resource_limited"] is True, r
        assert r.json["limit_hit"] == "memory", r
        assert r.rc == 137 and r.json["term_signal"] == 9
        assert "survived" not in r.json["stdout"]

    def test_memory_bomb_in_a_child_is_contained(self, backend):
        r, verdict, line = probe(backend, "mem-bomb", str(512 << 20), opts=["--memory", "32M"])
        assert verdict == "BLOCKED", line
        assert r.json["limit_hit"] == "memory", r

    def test_pids_limit(self, backend):
        r, verdict, line = probe(backend, "fork-bomb", "5", "200", opts=["--pids", "16"])
        assert verdict == "BLOCKED", line
        assert r.json["resource_limited"] is True
        assert r.json["limit_hit"] == "pids"

    def test_cpu_time_limit(self, backend):
        r = run(backend, PROBE, "spin", "30", opts=["--cpu-time", "1s"])
        assert r.json["resource_limited"] is True, r
        assert r.json["limit_hit"] == "cpu"
        assert r.json["timed_out"] is False

    def test_bytes_written_counts_what_the_command_wrote_to_files(self, backend):
        """5 MiB into the workdir and 1 MiB into TMPDIR, nothing on stdout: measured by the
        host (the container's scratch tmpfs by fstatfs, disk writes by the kernel's
        per-process accounting), never by what the command says."""
        r = run(backend, "/bin/sh", "-c", 'dd if=/dev/zero of=f bs=1M count=5 2>/dev/null && '
                'dd if=/dev/zero of="$TMPDIR/g" bs=1M count=1 2>/dev/null')
        assert r.rc == 0, r
        written = r.json["resource_usage"]["bytes_written"]
        assert 6 << 20 <= written < 7 << 20, r

    def test_no_capabilities_and_unprivileged(self, backend):
        r, verdict, line = probe(backend, "caps")
        assert verdict == "BLOCKED", line
        r = run(backend, PROBE, "ids")
        # container: uid 1000 inside, mapped to host 65534; the others: 65534 itself
        assert ("uid=1000" if backend == "container" else "uid=65534") in r.json["stdout"], r

    def test_run_as_root_without_capabilities(self, backend):
        r, verdict, line = probe(backend, "caps", opts=["--user", "0"])
        assert verdict == "BLOCKED", line

    def test_no_inherited_fds(self, backend):
        rfd, wfd = os.pipe()
        try:
            r, verdict, line = probe(backend, "fds", pass_fds=(rfd, wfd))
            assert verdict == "BLOCKED", line
        finally:
            os.close(rfd)
            os.close(wfd)

    def test_unwritable_rw_path_is_a_clear_error(self, backend, tmp_path):
        d = tmp_path / "rootonly"
        d.mkdir(mode=0o755)
        r = run(backend, "/bin/true", opts=["--rw", str(d)])
        assert r.rc == 125, r
        assert str(d).encode() in r.stderr, r
        # not writable, or (container) not even reachable for the sandbox's host uid
        assert b"not writable" in r.stderr or b"Permission denied" in r.stderr, r

    def test_writable_parent_but_unwritable_rw_path(self, backend, hostdir):
        d = os.path.join(hostdir, "ro-dir")
        os.mkdir(d, 0o755)
        r = run(backend, "/bin/true", opts=["--rw", d])
        assert r.rc == 125, r
        assert d.encode() in r.stderr and b"not writable" in r.stderr, r


def _agentd_cgroups():
    """Sandbox cgroups that exist now, across hierarchies (other agentd processes on the
    machine may own some: tests compare before and after)."""
    out = set()
    for ctrl in ("memory", "pids", "freezer", "unified"):
        d = f"/sys/fs/cgroup/{ctrl}/agentd"
        if os.path.isdir(d):
            out |= {(ctrl, e) for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))}
    return out


def test_no_sandbox_dirs_or_cgroups_left():
    """The sandboxes of these runs (known by the sandbox_id they report; other agentd
    processes on the host may come and go meanwhile) leave no dir and no cgroup."""
    root = "/var/lib/agentd/sandboxes"
    ids = []
    for r in (run("linux-native", "/bin/true"),
              run("linux-native", "/bin/sh", "-c", "sleep 5", opts=["--timeout", "200ms"]),
              run("container", "/bin/true"),
              run("container", "/bin/sh", "-c", "sleep 5", opts=["--timeout", "200ms"])):
        assert r.json and len(r.json["sandbox_id"]) == 32, r
        ids.append(r.json["sandbox_id"])
    for sid in ids:
        assert not os.path.exists(os.path.join(root, sid))
        for ctrl in ("memory", "pids", "freezer", "unified"):
            assert not os.path.exists(f"/sys/fs/cgroup/{ctrl}/agentd/{sid}"), (ctrl, sid)
            assert not os.path.exists(f"/sys/fs/cgroup/agentd/{sid}"), sid


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_sigkill_of_owner_leaves_nothing(backend):
    """The owner is SIGKILLed mid-command: its command, cgroup and sandbox dir all go."""
    marker = "agentd-owner-kill-%d" % os.getpid()
    _agentd_cgroup_names_before = {e for _, e in _agentd_cgroups()}
    p = subprocess.Popen([os.path.join(PROBE_DIR, "..", "agentd"), "run", "--backend", backend,
                          *degraded(backend), "--", "/usr/bin/python3", "-c", "import time; time.sleep(60)",
                          marker],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not subprocess.run(
            ["pgrep", "-f", marker], capture_output=True).stdout:
        time.sleep(0.02)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout, "never started"
    cgroups = [d for d in ("/sys/fs/cgroup/memory/agentd", "/sys/fs/cgroup/pids/agentd",
                           "/sys/fs/cgroup/unified/agentd") if os.path.isdir(d)]
    live = {d: set(os.listdir(d)) - set(_agentd_cgroup_names_before) for d in cgroups}
    p.kill()
    p.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout
        left = [e for d in cgroups for e in live[d]
                if len(e) == 32 and os.path.isdir(os.path.join(d, e))]
        if not alive and not left:
            break
        time.sleep(0.05)
    assert not alive, "the command outlived its killed owner"
    assert not left, f"cgroups left behind: {left}"
    root = "/var/lib/agentd/sandboxes"
    if os.path.isdir(root):
        assert [e for e in os.listdir(root) if e in {x for d in live.values() for x in d}] == []


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_a_deep_tree_is_removed_with_few_fds(backend):
    """The sandbox chooses how deep its workspace goes: 3000 levels, removed on destroy by
    an agentd limited to 1024 fds (one fd per level would run out and leave the rest)."""
    import resource

    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    code = ("import os\n"
            "for i in range(3000):\n"
            "    os.mkdir('d'); os.chdir('d')\n"
            "open('f', 'w').write('x')\n"
            "print('deep')\n")
    p = subprocess.run([AGENTD, "run", "--json", "--backend", backend, *degraded(backend), "--",
                        "/usr/bin/python3", "-c", code], capture_output=True, timeout=120,
                       preexec_fn=low_fds, env={"PATH": "/usr/bin:/bin"})
    out = json.loads(p.stdout)
    assert out["stdout"] == "deep\n", out
    sid = out["sandbox_id"]
    assert not os.path.exists(os.path.join("/var/lib/agentd/sandboxes", sid))


def test_container_commands_are_the_oom_killers_first_choice():
    """A memory limit must kill the command, not the sandbox's PID 1 (a copy of agentd)."""
    r = run("container", "/bin/sh", "-c", "cat /proc/self/oom_score_adj /proc/1/oom_score_adj")
    assert r.rc == 0, r
    mine, init = r.json["stdout"].split()
    assert int(mine) == 1000 and int(init) < 1000, r.json
