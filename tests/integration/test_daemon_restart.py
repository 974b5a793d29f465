"""Sandboxes outlive the daemon (docs/api.md#restarts): a SIGTERM or a kill -9 of `agentd
serve` leaves its container sandboxes running, and the next daemon adopts them with their
files, background processes (and what they wrote while no daemon read), snapshots, code
contexts and forwarded ports; a foreground exec cut off by the restart is killed and audited;
a sandbox whose init died meanwhile is failed and leaves nothing; --destroy-on-exit keeps the
old behaviour; DELETE and the drain say what they did to an exec they cut short."""
import json
import os
import signal
import threading
import time

import pytest

from daemon_util import (Daemon, UnixHTTPConnection, agentd_cgroups, context_create,
                         context_run, echo_connection, forward_port, kill_sandbox_from_outside,
                         pids_with, wait_until)
from test_daemon_ports import ECHO

TICKER = "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"


@pytest.fixture
def durable():
    made = []

    def make(*a):
        dm = Daemon(*a, durable=True)
        made.append(dm)
        return dm.start()
    yield make
    for dm in made:
        dm.cleanup()


def stdout_of(d, sid, pid):
    conn = UnixHTTPConnection(d.socket, timeout=30)
    conn.request("GET", f"/v1/sandboxes/{sid}/processes/{pid}/output")
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 200, body
    lines = [json.loads(l) for l in body.splitlines() if l.strip()]
    return "".join(l.get("data", "") for l in lines if l.get("stream") == "stdout")


def ticks(text):
    return [int(w.split()[1]) for w in text.splitlines() if w.startswith("tick ")]


def audit(d, action):
    return [a for a in d.get("/v1/audit").json["records"] if a["action"] == action]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_restart_keeps_the_sandbox_and_what_runs_in_it(durable, sig):
    d = durable()
    sid = d.create()
    assert d.get(f"/v1/sandboxes/{sid}").json["durable"] is True
    assert d.exec(sid, ["/bin/sh", "-c", "echo kept > f"]).json["exit_code"] == 0
    ticker = d.post(f"/v1/sandboxes/{sid}/processes",
                    {"argv": ["/bin/sh", "-c", TICKER]}).json["pid"]
    echo = d.post(f"/v1/sandboxes/{sid}/processes",
                  {"argv": ["python3", "-c", ECHO, "9000"]}).json["pid"]
    fwd = forward_port(d, sid, 9000)
    echo_connection(("127.0.0.1", fwd["host_port"])).close()
    cid = context_create(d, sid)
    assert context_run(d, sid, cid, "x = 41")["status"] == "ok"
    r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "before"})
    assert r.status == 201, r
    snap = r.json["snapshot_id"]
    assert wait_until(lambda: len(ticks(stdout_of(d, sid, ticker))) >= 3)
    before = max(ticks(stdout_of(d, sid, ticker)))

    d.stop(sig)
    time.sleep(1.5)             # the ticker writes on while no daemon reads
    d.start()

    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.status == 200 and r.json["state"] == "ready" and r.json["durable"], r
    # the new daemon execs in it and finds the file
    r = d.exec(sid, ["/bin/cat", "f"])
    assert r.status == 200 and r.json["stdout"] == "kept\n", r
    # the background process runs on; what it wrote during the gap is readable
    p = d.get(f"/v1/sandboxes/{sid}/processes/{ticker}")
    assert p.status == 200 and p.json["state"] == "running", p
    assert wait_until(lambda: len([t for t in ticks(stdout_of(d, sid, ticker))
                                   if t > before + 3]) > 0, timeout=20)
    after = ticks(stdout_of(d, sid, ticker))
    assert after[0] <= before + 7, (before, after[:5])   # from the gap, not only later
    # the port answers, on the same host port when it is free
    ports = d.get(f"/v1/sandboxes/{sid}/ports").json["ports"]
    assert [p["port"] for p in ports] == [9000], ports
    echo_connection(("127.0.0.1", ports[0]["host_port"])).close()
    assert ports[0]["host_port"] == fwd["host_port"], (ports, fwd)
    assert d.get(f"/v1/sandboxes/{sid}/processes/{echo}").json["state"] == "running"
    # a snapshot taken before the restart still restores
    assert d.exec(sid, ["/bin/sh", "-c", "echo changed > f"]).json["exit_code"] == 0
    r = d.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap})
    assert r.status == 200, r
    assert d.exec(sid, ["/bin/cat", "f"]).json["stdout"] == "kept\n"
    # the context kept its variable
    run = context_run(d, sid, cid, "x + 1")
    assert run["status"] == "ok" and run["result"]["text/plain"] == "42", run
    adopted = audit(d, "adopt")
    assert adopted and adopted[-1]["sandbox_id"] == sid and \
        adopted[-1]["result"].startswith("ok"), adopted
    # and it ends as any sandbox
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    assert not (agentd_cgroups() & {sid})
    assert not os.path.exists(os.path.join(d.state_dir, "durable", sid))


def test_a_sandbox_whose_init_died_while_down_is_failed_and_leaves_nothing(durable):
    d = durable()
    marker = "agentd-gone-%d" % os.getpid()
    sid = d.create()
    keep = d.create()
    d.post(f"/v1/sandboxes/{sid}/processes", {"argv": ["/usr/bin/python3", "-c", "import time; time.sleep(600)", marker]})
    assert wait_until(lambda: pids_with(marker))
    d.stop()
    kill_sandbox_from_outside(sid, rounds=5)
    assert wait_until(lambda: not pids_with(marker))
    d.start()
    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.json["state"] == "failed" and "restart" in r.json["reason"], r
    assert d.get(f"/v1/sandboxes/{keep}").json["state"] == "ready"
    assert wait_until(lambda: not (agentd_cgroups() & {sid}), timeout=15)
    assert not os.path.exists(os.path.join(d.state_dir, "sandboxes", sid))
    assert not os.path.exists(os.path.join(d.state_dir, "durable", sid))
    assert [sb["id"] for sb in d.get("/v1/sandboxes").json["sandboxes"]] == [keep]
    failed = [a for a in audit(d, "adopt") if a["sandbox_id"] == sid]
    assert failed and "gone" in failed[-1]["result"], failed


def test_a_foreground_exec_cut_off_by_a_crash_is_killed_and_audited(durable):
    d = durable()
    marker = "agentd-lost-%d" % os.getpid()
    sid = d.create()
    c = UnixHTTPConnection(d.socket, timeout=90)
    c.request("POST", f"/v1/sandboxes/{sid}/exec",
              body=json.dumps({"argv": ["/usr/bin/python3", "-c", "import time; time.sleep(600)", marker]}))
    assert wait_until(lambda: pids_with(marker), timeout=15)
    d.kill9()
    c.close()
    # the init kills it once its owner is gone, without waiting for a new daemon
    assert wait_until(lambda: not pids_with(marker), timeout=15), pids_with(marker)
    d.start()
    lost = [a for a in audit(d, "exec") if a["sandbox_id"] == sid and a["argv"] and
            marker in a["argv"]]
    assert lost and "daemon restarted" in lost[-1]["result"], lost
    assert d.exec(sid, ["/bin/echo", "alive"]).json["stdout"] == "alive\n"


def test_destroy_on_exit_destroys_every_sandbox(durable):
    d = durable("--destroy-on-exit")
    sid = d.create()
    assert d.get(f"/v1/sandboxes/{sid}").json["durable"] is False
    d.restart()
    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.json["state"] == "destroyed" and r.json["reason"] == "daemon stopped", r
    assert not (agentd_cgroups() & {sid})


def test_a_process_backend_sandbox_is_not_durable(durable):
    d = durable()
    sid = d.create(backend="linux-native")
    assert d.get(f"/v1/sandboxes/{sid}").json["durable"] is False
    d.restart()
    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.json["state"] == "destroyed", r


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
def test_delete_during_an_exec_reports_it_cancelled(durable, stream):
    d = durable()
    sid = d.create()
    marker = "agentd-cancel-%d-%d" % (os.getpid(), stream)
    got = {}

    def run():
        c = UnixHTTPConnection(d.socket, timeout=60)
        c.request("POST", f"/v1/sandboxes/{sid}/exec",
                  body=json.dumps({"argv": ["/usr/bin/python3", "-c", "import time; time.sleep(600)", marker], "stream": stream}))
        r = c.getresponse()
        body = r.read()
        lines = [json.loads(l) for l in body.splitlines() if l.strip()]
        got["result"] = lines[-1]["exit"] if stream else lines[0]

    t = threading.Thread(target=run)
    t.start()
    assert wait_until(lambda: pids_with(marker), timeout=15)
    assert d.delete(f"/v1/sandboxes/{sid}").status == 200
    t.join(30)
    res = got["result"]
    assert res["cancelled"] is True and res["reason"] == "sandbox destroyed", res
    rec = [a for a in audit(d, "exec") if a["sandbox_id"] == sid]
    assert rec and "sandbox destroyed" in rec[-1]["result"], rec


def test_the_drain_reports_the_execs_it_cancelled(durable):
    d = durable()
    sid = d.create()
    marker = "agentd-drain-%d" % os.getpid()
    got = {}

    def run():
        c = UnixHTTPConnection(d.socket, timeout=60)
        c.request("POST", f"/v1/sandboxes/{sid}/exec",
                  body=json.dumps({"argv": ["/usr/bin/python3", "-c", "import time; time.sleep(600)", marker]}))
        got["result"] = json.loads(c.getresponse().read())

    t = threading.Thread(target=run)
    t.start()
    assert wait_until(lambda: pids_with(marker), timeout=15)
    d.restart()
    t.join(30)
    res = got["result"]
    assert res["cancelled"] is True and res["reason"] == "daemon shutting down", res
    assert not pids_with(marker)
    # the sandbox itself outlived the drain
    assert d.get(f"/v1/sandboxes/{sid}").json["state"] == "ready"


def test_a_sandbox_this_build_cannot_speak_to_is_left_for_a_later_daemon(durable):
    """A token of another version (as a downgrade would meet): neither adopted nor failed,
    nothing of it removed; a daemon that can speak to it adopts it later."""
    import sqlite3
    d = durable()
    marker = "agentd-later-%d" % os.getpid()
    sid = d.create()
    d.post(f"/v1/sandboxes/{sid}/processes",
           {"argv": ["/usr/bin/python3", "-c", "import time; time.sleep(600)", marker]})
    assert wait_until(lambda: pids_with(marker))
    d.stop()
    db = sqlite3.connect(os.path.join(d.state_dir, "agentd.db"))
    (token,) = db.execute("SELECT durable_token FROM sandboxes WHERE id = ?", (sid,)).fetchone()
    db.execute("UPDATE sandboxes SET durable_token = ? WHERE id = ?", ("v9" + token[2:], sid))
    db.commit()
    d.start()
    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.json["state"] == "ready" and "not adopted" in r.json["reason"], r
    assert d.exec(sid, ["/bin/true"]).status == 409   # known, not live
    assert pids_with(marker) and sid in agentd_cgroups()
    d.stop()
    db.execute("UPDATE sandboxes SET durable_token = ? WHERE id = ?", (token, sid))
    db.commit()
    db.close()
    d.start()
    assert d.exec(sid, ["/bin/echo", "back"]).json["stdout"] == "back\n"
    assert d.get(f"/v1/sandboxes/{sid}/processes").json["processes"][0]["state"] == "running"


def test_a_session_keeps_its_variables_across_a_restart(durable):
    d = durable()
    sess = d.post("/v1/agents/ag/sessions", {}).json["session_id"]
    base = f"/v1/agents/ag/sessions/{sess}"
    assert d.post(base + "/executions", {"code": "x = 41"}).json["status"] == "completed"
    d.kill9()
    d.start()
    r = d.post(base + "/executions", {"code": "print(x + 1)"})
    assert r.status == 200 and r.json["result"]["stdout"] == "42\n", r
    assert [e["status"] for e in d.get(base + "/executions").json["executions"]] == \
        ["completed", "completed"]
