"""Limits of persistent sandboxes through `agentd serve`: the CPU budget
(limits.max_cpu_time_ms) belongs to the sandbox and is spent by all its execs together,
on every backend."""
import json
import threading
import time

import pytest

from conftest import ALL_BACKENDS, PROBE, PROBE_DIR
from daemon_util import Daemon


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_cpu_budget_is_spent_across_execs(d, backend):
    """Three execs of 0.9 s of CPU each against a 2 s budget: the first two run, the third
    is killed when the sandbox's 2 s are gone, and a fourth is not started."""
    sid = d.create(backend=backend, spec={"limits": {"max_cpu_time_ms": 2000},
                                          "allowed_paths_ro": [PROBE_DIR]})
    try:
        used = 0
        for i in range(2):
            r = d.exec(sid, [PROBE, "burn", "0.9"])
            assert r.status == 200 and r.json["exit_code"] == 0, r
            assert r.json["limit_hit"] is None, r
            used += r.json["resource_usage"]["cpu_time_ms"]
        r = d.exec(sid, [PROBE, "burn", "0.9"])
        assert r.status == 200, r
        assert r.json["limit_hit"] == "cpu" and r.json["resource_limited"] is True, r
        assert r.json["exit_code"] == 137 and r.json["timed_out"] is False, r
        # killed when the budget ran out, not after its own 0.9 s
        assert r.json["resource_usage"]["cpu_time_ms"] < 2000 - used + 300, r

        u = d.get(f"/v1/sandboxes/{sid}/usage").json
        assert u["cpu_time_limit_ms"] == 2000 and u["cpu_time_remaining_ms"] == 0, u
        assert u["cpu_time_ms"] >= 2000, u

        r = d.exec(sid, ["/bin/echo", "never"])
        assert r.status == 200, r
        assert r.json["exit_code"] == 126 and r.json["limit_hit"] == "cpu", r
        assert r.json["stdout"] == "" and "CPU budget is spent" in r.json["stderr"], r
        # the sandbox itself is still there: its files, its destroy
        assert d.get(f"/v1/sandboxes/{sid}").json["state"] == "ready"
    finally:
        assert d.delete(f"/v1/sandboxes/{sid}").status == 200


def test_usage_reports_the_remaining_budget(d):
    sid = d.create(backend="container", spec={"limits": {"max_cpu_time_ms": 60000},
                                              "allowed_paths_ro": [PROBE_DIR]})
    try:
        r = d.exec(sid, [PROBE, "burn", "0.3"])
        assert r.json["exit_code"] == 0, r
        u = d.get(f"/v1/sandboxes/{sid}/usage").json
        assert u["cpu_time_limit_ms"] == 60000, u
        assert u["cpu_time_remaining_ms"] == 60000 - u["cpu_time_ms"], u
        assert 300 <= u["cpu_time_ms"] < 2000, u
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_bytes_written_of_a_persistent_sandbox(d):
    """Each exec reports the growth of the container's scratch during it; the sandbox's
    usage adds them up."""
    sid = d.create(backend="container")
    try:
        r = d.exec(sid, ["/bin/sh", "-c", "dd if=/dev/zero of=a bs=1M count=3 2>/dev/null"])
        assert 3 << 20 <= r.json["resource_usage"]["bytes_written"] < 4 << 20, r
        r = d.exec(sid, ["/bin/sh", "-c", "dd if=/dev/zero of=b bs=1M count=2 2>/dev/null"])
        # the first exec's 3 MiB are not counted again
        assert 2 << 20 <= r.json["resource_usage"]["bytes_written"] < 3 << 20, r
        u = d.get(f"/v1/sandboxes/{sid}/usage").json
        assert 5 << 20 <= u["bytes_written"] < 6 << 20, u
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_write_limit_is_reported_on_the_exec_that_filled_the_scratch(d):
    """max_write_bytes 4 MiB: the exec that fills the container's scratch gets limit_hit
    write; the next one, which writes nothing, does not, though the scratch is still full."""
    sid = d.create(backend="container", spec={"limits": {"max_write_bytes": 4 << 20}})
    try:
        fill = "for i in 1 2 3 4 5 6; do dd if=/dev/zero of=f$i bs=1M count=1 2>/dev/null; done"
        r = d.exec(sid, ["/bin/sh", "-c", fill])
        assert r.json["limit_hit"] == "write" and r.json["resource_limited"] is True, r
        assert r.json["resource_usage"]["bytes_written"] == 4 << 20, r
        r = d.exec(sid, ["/bin/echo", "hi"])
        assert r.json["stdout"] == "hi\n" and r.json["limit_hit"] is None, r
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_a_spent_budget_is_streamed_as_the_exec_result(d):
    sid = d.create(backend="host-direct", spec={"limits": {"max_cpu_time_ms": 100},
                                                "allowed_paths_ro": [PROBE_DIR]})
    try:
        r = d.exec(sid, [PROBE, "burn", "2"])
        assert r.json["limit_hit"] == "cpu", r
        r = d.post(f"/v1/sandboxes/{sid}/exec", {"argv": ["/bin/true"], "stream": True})
        lines = [json.loads(x) for x in r.body.splitlines() if x.strip()]
        assert lines[-1]["exit"]["exit_code"] == 126, lines
        assert lines[-1]["exit"]["limit_hit"] == "cpu", lines
        err = "".join(x["data"] for x in lines if x.get("stream") == "stderr")
        assert "CPU budget is spent" in err, lines
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_a_spent_budget_stops_what_earlier_execs_left_running(d):
    """An exec tries to leave a CPU burner in the background of a container sandbox (2 s
    budget; it is its own kill unit, so the burner dies with it), another exec sleeps
    meanwhile (so the one that spends the budget is not alone, and its kill is not the whole
    sandbox's): when the budget runs out everything stops, and the sandbox's CPU use stops
    growing. Background processes under a spent budget: test_process.c."""
    sid = d.create(backend="container", spec={"limits": {"max_cpu_time_ms": 2000},
                                              "allowed_paths_ro": [PROBE_DIR]})
    try:
        r = d.exec(sid, ["/bin/sh", "-c", f"setsid {PROBE} burn 30 >/dev/null 2>&1 & sleep 0.3"])
        assert r.json["exit_code"] == 0, r
        sleep = {"argv": ["/bin/sleep", "8"], "timeout_ms": 20000}
        t = threading.Thread(target=lambda: d.post(f"/v1/sandboxes/{sid}/exec", sleep,
                                                   new_conn=True))
        t.start()
        r = d.exec(sid, [PROBE, "burn", "30"], timeout_ms=20000)
        assert r.json["limit_hit"] == "cpu", r
        time.sleep(0.3)
        before = d.get(f"/v1/sandboxes/{sid}/usage").json["cpu_time_ms"]
        time.sleep(1.5)
        after = d.get(f"/v1/sandboxes/{sid}/usage").json["cpu_time_ms"]
        assert after - before < 100, (before, after)
        t.join(30)
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
