"""A sandbox's ttl and idle timeout (docs/api.md#timeouts) against a real `agentd serve`:
each ends in a destroy or a suspend at its deadline, activity (an exec, a files call, a cell,
bytes through a forwarded port) postpones an idle expiry while a background process alone
does not, POST .../timeout extends, shortens and clears, the daemon's --default-ttl and
--max-ttl bound what clients ask, and every expiry is an audit record and a metric; across
a daemon restart deadlines hold, and one passed while no daemon ran expires at adoption.
Timeouts are short (1-2 s); the polls that wait for them are generous (a loaded machine)."""
import os
import shutil
import signal
import tempfile
import time

import pytest

from daemon_util import Daemon, echo_connection, forward_port, wait_until
from test_daemon_ports import ECHO
from test_daemon_restart import durable  # noqa: F401 (fixture: a daemon whose sandboxes outlive it)
from wsclient import WS

WAIT = 30       # seconds a poll waits for an expiry that is due in 1-2 s


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def create(d, **kw):
    r = d.post("/v1/sandboxes", {"backend": "container", **kw})
    assert r.status == 201, r
    return r.json


def state(d, sid):
    """The sandbox's state; a GET only looks, so polling it is no activity."""
    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.status == 200, r
    return r.json


def wait_state(d, sid, want, timeout=WAIT):
    got = wait_until(lambda: state(d, sid)["state"] == want, timeout=timeout, step=0.1)
    assert got, state(d, sid)
    return state(d, sid)


def expire_records(d, sid, want=0):
    """The results of sid's expire records, once there are want of them (the record is
    written when the destroy or suspend is done, just after the state shows it)."""
    def results():
        recs = d.get("/v1/audit").json["records"]
        return [r["result"] for r in recs if r["action"] == "expire" and r["sandbox_id"] == sid]
    wait_until(lambda: len(results()) >= want, timeout=10)
    return results()


def expired_metric(d, reason, action):
    want = f'agentd_sandboxes_expired_total{{reason="{reason}",action="{action}"}} '
    for line in d.get("/v1/metrics").body.decode().splitlines():
        if line.startswith(want):
            return int(line.split()[-1])
    raise AssertionError("no metric line " + want)


def test_get_shows_the_timeouts(d):
    before = int(time.time() * 1000)
    s = create(d, ttl_ms=600000, idle_timeout_ms=300000, on_expire="suspend")
    assert s["ttl_ms"] == 600000 and s["idle_timeout_ms"] == 300000, s
    assert s["on_expire"] == "suspend"
    assert before + 600000 <= s["expires_at_ms"] <= int(time.time() * 1000) + 600000, s
    assert s["idle_deadline_ms"] == s["last_activity_ms"] + 300000, s
    plain = create(d)
    assert plain["ttl_ms"] is None and plain["expires_at_ms"] is None, plain
    assert plain["idle_timeout_ms"] is None and plain["idle_deadline_ms"] is None, plain
    assert plain["on_expire"] == "destroy", plain
    listed = {x["id"]: x for x in d.get("/v1/sandboxes").json["sandboxes"]}
    assert listed[s["id"]]["expires_at_ms"] == s["expires_at_ms"]
    for sid in (s["id"], plain["id"]):
        d.delete(f"/v1/sandboxes/{sid}")


def test_ttl_destroys_at_its_deadline(d):
    n = expired_metric(d, "ttl", "destroy")
    t0 = time.monotonic()
    sid = create(d, ttl_ms=1500)["id"]
    gone = wait_state(d, sid, "destroyed")
    assert time.monotonic() - t0 >= 1.4
    assert gone["reason"] == "ttl expired", gone
    assert expire_records(d, sid, 1) == ["destroy: ttl expired"]
    assert expired_metric(d, "ttl", "destroy") == n + 1
    assert d.exec(sid, ["/bin/true"]).status == 409


def test_ttl_suspends_and_a_resume_starts_it_again(d):
    n = expired_metric(d, "ttl", "suspend")
    sid = create(d, ttl_ms=1500, on_expire="suspend")["id"]
    assert d.exec(sid, ["/bin/sh", "-c", "echo kept > f"]).json["exit_code"] == 0
    s = wait_state(d, sid, "suspended")
    assert s["ttl_ms"] == 1500 and s["expires_at_ms"] is None, s     # spent
    assert expire_records(d, sid, 1) == ["suspend: ttl expired"]
    assert expired_metric(d, "ttl", "suspend") == n + 1
    time.sleep(0.5)
    assert state(d, sid)["state"] == "suspended"     # a spent ttl does not fire again
    r = d.post(f"/v1/sandboxes/{sid}/resume")
    assert r.status == 200 and r.json["state"] == "ready", r
    assert r.json["expires_at_ms"] >= int(time.time() * 1000) + 1000, r.json
    assert d.exec(sid, ["/bin/cat", "f"]).json["stdout"] == "kept\n"
    wait_state(d, sid, "suspended")                  # the new period ends as the first
    assert len(expire_records(d, sid, 2)) == 2
    d.delete(f"/v1/sandboxes/{sid}")


def test_idle_destroys(d):
    n = expired_metric(d, "idle", "destroy")
    sid = create(d, idle_timeout_ms=1500)["id"]
    gone = wait_state(d, sid, "destroyed")
    assert gone["reason"] == "idle timeout", gone
    assert expire_records(d, sid, 1) == ["destroy: idle timeout"]
    assert expired_metric(d, "idle", "destroy") == n + 1


def test_idle_suspends_not_again_while_suspended_and_resume_restarts_the_clock(d):
    n = expired_metric(d, "idle", "suspend")
    sid = create(d, idle_timeout_ms=1500, on_expire="suspend")["id"]
    s = wait_state(d, sid, "suspended")
    assert s["idle_deadline_ms"] is None, s
    time.sleep(2.5)
    assert expire_records(d, sid, 1) == ["suspend: idle timeout"]      # once
    assert expired_metric(d, "idle", "suspend") == n + 1
    r = d.post(f"/v1/sandboxes/{sid}/resume")
    assert r.status == 200, r
    now = int(time.time() * 1000)
    assert now <= r.json["idle_deadline_ms"] <= now + 1600, r.json
    assert d.exec(sid, ["/bin/true"]).json["exit_code"] == 0
    wait_state(d, sid, "suspended")
    assert expire_records(d, sid, 2) == ["suspend: idle timeout"] * 2
    d.delete(f"/v1/sandboxes/{sid}")


def use_for(seconds, call):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        call()
        time.sleep(0.6)


@pytest.mark.parametrize("what", ["exec", "files"])
def test_execs_and_files_calls_postpone_idle_expiry(d, what):
    sid = create(d, idle_timeout_ms=2000)["id"]

    def call():
        if what == "exec":
            assert d.exec(sid, ["/bin/true"]).status == 200
        else:
            r = d.request("PUT", f"/v1/sandboxes/{sid}/files?path=f", raw=b"x")
            assert r.status == 200, r
    use_for(5, call)
    assert state(d, sid)["state"] == "ready"         # 5 s of use outlived a 2 s idle timeout
    assert expire_records(d, sid) == []
    wait_state(d, sid, "destroyed")                   # and it expires once left alone


def test_a_running_exec_is_activity(d):
    sid = create(d, idle_timeout_ms=1000)["id"]
    t0 = time.monotonic()
    r = d.exec(sid, ["/bin/sleep", "3"])
    assert r.status == 200 and r.json["exit_code"] == 0, r
    assert time.monotonic() - t0 >= 2.9
    wait_state(d, sid, "destroyed")


def test_a_context_cell_is_activity(d):
    sid = create(d, idle_timeout_ms=1500)["id"]
    r = d.post(f"/v1/sandboxes/{sid}/contexts", {"language": "sh"})
    assert r.status == 201, r
    cid = r.json["id"]
    for _ in range(5):
        time.sleep(0.7)
        run = d.post(f"/v1/sandboxes/{sid}/contexts/{cid}/run", {"code": "echo hi"})
        assert run.status == 200, run
    assert state(d, sid)["state"] == "ready"
    wait_state(d, sid, "destroyed")


def test_a_background_process_alone_is_not_activity(d):
    sid = create(d, idle_timeout_ms=1500)["id"]
    r = d.post(f"/v1/sandboxes/{sid}/processes",
               {"argv": ["/bin/sh", "-c", "while :; do echo busy; sleep 0.1; done"]})
    assert r.status == 201, r
    t0 = time.monotonic()
    gone = wait_state(d, sid, "destroyed")
    assert gone["reason"] == "idle timeout", gone
    assert time.monotonic() - t0 < WAIT


def test_bytes_through_a_forwarded_port_are_activity(d):
    sid = create(d, idle_timeout_ms=2000)["id"]
    assert d.post(f"/v1/sandboxes/{sid}/processes",
                  {"argv": ["python3", "-c", ECHO, "9000"]}).status == 201
    fwd = forward_port(d, sid, 9000)
    with echo_connection(("127.0.0.1", fwd["host_port"])) as s:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
            time.sleep(0.5)
        assert state(d, sid)["state"] == "ready"
    wait_state(d, sid, "destroyed")


def test_typing_through_an_attachment_is_activity_a_silent_one_is_not(d):
    sid = create(d, idle_timeout_ms=2000)["id"]
    r = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": ["/bin/sh"], "tty": True})
    assert r.status == 201, r
    ws = WS(d.socket, sid, r.json["pid"], query="offset=0")
    for i in range(8):
        ws.send_input(b"echo typed-%d\r" % i)
        ws.read_until(b"typed-%d\r\n" % i)
        time.sleep(0.6)
    assert state(d, sid)["state"] == "ready"          # ~5 s of typing, a 2 s idle timeout
    wait_state(d, sid, "destroyed")                   # still attached, but silent
    ws.shut()


def test_timeout_route_shortens_extends_and_clears(d):
    sid = create(d, ttl_ms=600000)["id"]
    r = d.post(f"/v1/sandboxes/{sid}/timeout", {"ttl_ms": 1000})      # shorter
    assert r.status == 200 and r.json["ttl_ms"] == 1000, r
    wait_state(d, sid, "destroyed")

    sid = create(d, ttl_ms=1500, idle_timeout_ms=1500)["id"]
    r = d.post(f"/v1/sandboxes/{sid}/timeout", {"ttl_ms": 600000, "idle_timeout_ms": 600000})
    assert r.status == 200, r
    assert r.json["expires_at_ms"] >= int(time.time() * 1000) + 590000, r.json
    time.sleep(3)
    assert state(d, sid)["state"] == "ready"          # extended past both first deadlines
    r = d.post(f"/v1/sandboxes/{sid}/timeout", {"ttl_ms": 0, "idle_timeout_ms": 0})
    assert r.status == 200, r
    assert r.json["expires_at_ms"] is None and r.json["idle_deadline_ms"] is None, r.json
    r = d.post(f"/v1/sandboxes/{sid}/timeout", {"on_expire": "suspend", "idle_timeout_ms": 1000})
    assert r.status == 200 and r.json["on_expire"] == "suspend", r
    wait_state(d, sid, "suspended")
    recs = [x for x in d.get("/v1/audit").json["records"]
            if x["action"] == "timeout" and x["sandbox_id"] == sid]
    assert [x["result"] for x in recs] == [
        "ttl_ms=600000 idle_timeout_ms=600000", "ttl_ms=0 idle_timeout_ms=0",
        "idle_timeout_ms=1000 on_expire=suspend"], recs
    d.delete(f"/v1/sandboxes/{sid}")


@pytest.mark.parametrize("body,word", [
    ({}, "expected ttl_ms"),
    ({"ttl_ms": 1000, "ttl": 5}, "unknown field 'ttl'"),
    ({"ttl_ms": -1}, "ttl_ms"),
    ({"ttl_ms": "1s"}, "ttl_ms: expected integer"),
    ({"idle_timeout_ms": 1.5}, "idle_timeout_ms"),
    ({"on_expire": "pause"}, "on_expire"),
])
def test_bad_timeout_requests_are_400s_that_change_nothing(d, body, word):
    s = create(d, ttl_ms=600000)
    r = d.post(f"/v1/sandboxes/{s['id']}/timeout", body)
    assert r.status == 400 and word in r.error["message"], r
    assert state(d, s["id"])["expires_at_ms"] == s["expires_at_ms"]
    r = d.post("/v1/sandboxes", {"backend": "container", **body}) if body else None
    assert r is None or r.status == 400, r
    d.delete(f"/v1/sandboxes/{s['id']}")
    assert d.post(f"/v1/sandboxes/{'0' * 32}/timeout", {"ttl_ms": 1}).status == 404


def test_default_and_max_bound_what_clients_ask():
    dm = Daemon("--default-ttl", "2s", "--max-ttl", "1m", "--max-idle", "30s").start()
    try:
        r = dm.post("/v1/sandboxes", {"backend": "container", "ttl_ms": 120000})
        assert r.status == 400, r
        assert "--max-ttl" in r.error["message"] and "60000" in r.error["message"], r
        r = dm.post("/v1/sandboxes", {"backend": "container", "ttl_ms": 0})
        assert r.status == 400 and "--max-ttl" in r.error["message"], r
        r = dm.post("/v1/sandboxes", {"backend": "container", "idle_timeout_ms": 60000})
        assert r.status == 400 and "--max-idle" in r.error["message"], r
        assert dm.get("/v1/sandboxes").json["sandboxes"] == []       # nothing was made
        s = create(dm)                                   # asks none: the default
        assert s["ttl_ms"] == 2000 and s["idle_timeout_ms"] == 30000, s   # the max as default
        r = dm.post(f"/v1/sandboxes/{s['id']}/timeout", {"ttl_ms": 61000})
        assert r.status == 400 and "--max-ttl" in r.error["message"], r
        r = dm.post(f"/v1/sandboxes/{s['id']}/timeout", {"idle_timeout_ms": 0})
        assert r.status == 400 and "--max-idle" in r.error["message"], r
        gone = wait_state(dm, s["id"], "destroyed")
        assert gone["reason"] == "ttl expired", gone
    finally:
        dm.cleanup()


def test_serve_refuses_a_default_above_its_max():
    dm = Daemon("--default-ttl", "2h", "--max-ttl", "1h")
    with pytest.raises(RuntimeError, match="--default-ttl is above --max-ttl"):
        dm.start()
    dm.cleanup()


def test_cli_create_and_timeout(d):
    r = d.cli("sandbox", "create", "--ttl", "10m", "--idle", "1s", "--on-expire", "suspend")
    assert r.returncode == 0, r
    sid = r.stdout.decode().strip()
    s = state(d, sid)
    assert (s["ttl_ms"], s["idle_timeout_ms"], s["on_expire"]) == (600000, 1000, "suspend"), s
    r = d.cli("sandbox", "timeout", sid, "--ttl", "0", "--idle", "5m", "--json")
    assert r.returncode == 0, r
    s = state(d, sid)
    assert s["expires_at_ms"] is None and s["idle_timeout_ms"] == 300000, s
    r = d.cli("sandbox", "timeout", sid, "--on-expire", "later")
    assert r.returncode == 125 and b"destroy or suspend" in r.stderr, r
    r = d.cli("sandbox", "timeout", sid)
    assert r.returncode == 125 and b"--ttl, --idle or --on-expire" in r.stderr, r
    d.delete(f"/v1/sandboxes/{sid}")


def test_suspend_is_refused_at_create_where_the_backend_cannot_suspend():
    """A daemon run as uid 65534 without a delegated cgroup: host-direct has no freezer, so
    "suspend" is refused when it is asked (fail closed), not discovered at the deadline."""
    userdir = tempfile.mkdtemp(prefix="agentd-it-ttl-", dir="/var/tmp")
    os.chmod(userdir, 0o755)
    os.mkdir(os.path.join(userdir, "run"), 0o700)
    os.chown(os.path.join(userdir, "run"), 65534, 65534)
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env",
              f"XDG_RUNTIME_DIR={userdir}/run", f"HOME={userdir}"]
    dm = Daemon("--backend", "host-direct", prefix=prefix)
    os.chown(dm.dir, 65534, 65534)
    try:
        dm.start()
        body = {"backend": "host-direct", "allow_degraded": True}
        r = dm.post("/v1/sandboxes", {**body, "ttl_ms": 60000, "on_expire": "suspend"})
        assert r.status == 400, r
        assert "cannot suspend" in r.error["message"], r
        assert "no freezer" in r.error["message"], r
        assert dm.get("/v1/sandboxes").json["sandboxes"] == []
        sid = create(dm, **body)["id"]
        r = dm.post(f"/v1/sandboxes/{sid}/timeout", {"on_expire": "suspend"})
        assert r.status == 400 and "cannot suspend" in r.error["message"], r
        assert state(dm, sid)["on_expire"] == "destroy"
    finally:
        dm.cleanup()
        shutil.rmtree(userdir, ignore_errors=True)


# ------------------------------------------------------------------ across a daemon restart
# Durable sandboxes (docs/api.md#restarts) keep their deadlines: they are stored, and the
# next daemon acts on them after adopting the sandbox, at once for one that passed while no
# daemon ran.

@pytest.mark.parametrize("on_expire,final", [("destroy", "destroyed"), ("suspend", "suspended")])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_ttl_expires_after_a_restart(durable, sig, on_expire, final):
    d = durable()
    s = create(d, ttl_ms=6000, on_expire=on_expire)
    d.restart(sig)
    after = state(d, s["id"])
    assert after["state"] == "ready", after
    assert after["expires_at_ms"] == s["expires_at_ms"], after
    gone = wait_state(d, s["id"], final)
    assert int(time.time() * 1000) >= s["expires_at_ms"]
    assert expire_records(d, s["id"], 1) == [f"{on_expire}: ttl expired"]


@pytest.mark.parametrize("on_expire,final", [("destroy", "destroyed"), ("suspend", "suspended")])
def test_an_idle_timeout_expires_after_a_restart(durable, on_expire, final):
    d = durable()
    sid = create(d, idle_timeout_ms=6000, on_expire=on_expire)["id"]
    d.restart()
    assert state(d, sid)["idle_timeout_ms"] == 6000
    wait_state(d, sid, final)
    assert expire_records(d, sid, 1) == [f"{on_expire}: idle timeout"]


@pytest.mark.parametrize("on_expire,final", [("destroy", "destroyed"), ("suspend", "suspended")])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_deadline_passed_while_no_daemon_ran_expires_right_after_adoption(durable, sig,
                                                                             on_expire, final):
    d = durable()
    s = create(d, ttl_ms=1500, on_expire=on_expire)
    assert d.exec(s["id"], ["/bin/sh", "-c", "echo kept > f"]).json["exit_code"] == 0
    d.stop(sig)
    time.sleep(2.5)                                   # the deadline passes meanwhile
    d.start()
    gone = wait_state(d, s["id"], final, timeout=10)
    if final == "destroyed":
        assert gone["reason"] == "ttl expired", gone
    else:
        r = d.post(f"/v1/sandboxes/{s['id']}/resume")
        assert r.status == 200, r
        assert d.exec(s["id"], ["/bin/cat", "f"]).json["stdout"] == "kept\n"
    assert expire_records(d, s["id"], 1) == [f"{on_expire}: ttl expired"]
    assert expired_metric(d, "ttl", on_expire) == 1


def test_the_last_activity_is_stored_at_a_stop(durable):
    """Activity is written lazily, but a stop writes what is left: the next daemon's idle
    clock runs from the last exec, not from the creation."""
    d = durable()
    sid = create(d, idle_timeout_ms=600000)["id"]
    time.sleep(1)
    assert d.exec(sid, ["/bin/true"]).status == 200
    before = state(d, sid)
    d.restart()
    after = state(d, sid)
    assert after["last_activity_ms"] == before["last_activity_ms"], (before, after)
    assert after["idle_deadline_ms"] == before["idle_deadline_ms"], (before, after)
