"""Resource exhaustion, only ever inside a sandbox with low limits (--pids 32, --memory 64M,
max_write_bytes 8 MiB, --cpu-time 1s): the attack must be stopped, the run must end within its timeout,
nothing may survive it, and the host must stay responsive right after."""
import json
import os

import pytest

from .secsuite import PROBE, check, host_true_ms, probe, proc_matching, run

# fork+exec of /bin/true on the host right after a bomb; normally ~1 ms. Generous: the
# machine is shared and small.
RESPONSIVE_MS = 2000
TIMEOUT_S = 15


def assert_host_fine(r, what):
    assert r.elapsed < TIMEOUT_S + 5, f"{what}: the run took {r.elapsed:.1f}s"
    ms = host_true_ms()
    assert ms < RESPONSIVE_MS, f"{what}: the host took {ms:.0f} ms to run /bin/true"


def test_fork_bomb(backend):
    r, verdict, line = probe(backend, "fork-bomb", "5", "200",
                             opts=["--pids", "32", "--timeout", f"{TIMEOUT_S}s"])
    check("fork-bomb", backend, verdict, line)
    assert r.json["limit_hit"] == "pids", r
    assert_host_fine(r, "fork-bomb")


def test_shell_fork_bomb_is_contained_and_killed(backend, token):
    """A real recursive fork bomb; the wall timeout kills the whole tree."""
    script = f": agentd-sec-{token}; b() {{ b | b & }}; b; sleep 30"
    r = run(backend, "/bin/sh", "-c", script, opts=["--pids", "32", "--timeout", "1500ms"])
    assert r.json is not None, r
    survivors = proc_matching(f"agentd-sec-{token}")
    verdict = "ALLOWED" if survivors or r.elapsed > TIMEOUT_S else "BLOCKED"
    check("shell-fork-bomb", backend, verdict,
          f"exit {r.rc} after {r.elapsed:.1f}s, survivors {survivors}")
    assert r.json["timed_out"] is True, r
    assert_host_fine(r, "shell fork bomb")


def test_mem_bomb(backend):
    r, verdict, line = probe(backend, "mem-bomb", str(512 << 20),
                             opts=["--memory", "64M", "--timeout", f"{TIMEOUT_S}s"])
    check("mem-bomb", backend, verdict, line)
    assert r.json["limit_hit"] == "memory", r
    assert_host_fine(r, "mem-bomb")


def _write_policy(hostdir):
    pol = os.path.join(hostdir, "policy.json")
    with open(pol, "w") as f:
        json.dump({"limits": {"max_write_bytes": 8 << 20}}, f)
    return pol


def test_disk_fill(backend, hostdir):
    pol = _write_policy(hostdir)
    r, verdict, line = probe(backend, "disk-fill", "fill", str(64 << 20),
                             opts=["--policy", pol, "--timeout", f"{TIMEOUT_S}s"])
    check("disk-fill", backend, verdict, line)
    assert_host_fine(r, "disk-fill")


def test_disk_fill_many_files(backend, hostdir):
    """16 MiB in four 4 MiB files against an 8 MiB max_write_bytes."""
    pol = _write_policy(hostdir)
    r, verdict, line = probe(backend, "disk-fill", "fill", str(16 << 20), "4",
                             opts=["--policy", pol, "--timeout", f"{TIMEOUT_S}s"])
    check("disk-fill-files", backend, verdict, line)
    assert_host_fine(r, "disk-fill (many files)")


def test_cpu_budget_is_shared_by_every_process(backend):
    """Four children each burning 3 s of CPU against --cpu-time 1s: the budget is the
    sandbox's, so the tree is killed after about 1 s of CPU in all, not 1 s per process."""
    r = run(backend, PROBE, "burn", "3", "4",
            opts=["--cpu-time", "1s", "--timeout", f"{TIMEOUT_S}s"])
    assert r.json is not None, r
    cpu = r.json["resource_usage"]["cpu_time_ms"]
    # 1 s of budget, looked at every 10 ms near its end: far below 4 x 1 s
    check("cpu-burn-processes", backend, "BLOCKED" if cpu < 1800 else "ALLOWED",
          f"{cpu} ms of CPU in all, limit_hit {r.json['limit_hit']}")
    assert r.json["limit_hit"] == "cpu" and r.json["resource_limited"] is True, r
    assert r.json["timed_out"] is False, r
    assert_host_fine(r, "cpu burn in 4 processes")


def test_filling_the_scratch_is_the_write_limit(backend, hostdir):
    """16 MiB in four files against max_write_bytes 8 MiB: no file reaches RLIMIT_FSIZE,
    the container's scratch tmpfs fills up, and the host (fstatfs) reports the write limit
    and what was written, whatever the command prints."""
    if backend != "container":
        pytest.skip("no scratch filesystem on the process backends: max_write_bytes is a "
                    "per-file RLIMIT_FSIZE there (docs/policy.md)")
    pol = _write_policy(hostdir)
    r, verdict, line = probe(backend, "disk-fill", "fill", str(16 << 20), "4",
                             opts=["--policy", pol, "--timeout", f"{TIMEOUT_S}s"])
    assert verdict == "BLOCKED" and "ENOSPC" in line, line
    assert r.json["limit_hit"] == "write" and r.json["resource_limited"] is True, r
    written = r.json["resource_usage"]["bytes_written"]
    assert (8 << 20) - (64 << 10) <= written <= 8 << 20, r
