"""The daemon's audit log under abuse and over time (docs/api.md#audit): a sandbox that floods
the egress proxy with refused requests writes a bounded number of records that still account
for every request; the hash chain names a record changed behind the daemon's back; retention
under a small --state-max-bytes prunes sealed segments and the kept chain still verifies."""
import os
import sqlite3
import subprocess
import time

import pytest

from conftest import AGENTD
from daemon_util import Daemon, wait_until


def db_used_bytes(state_dir):
    """Bytes the state database uses (its pages, less the free ones), read-only."""
    db = sqlite3.connect(f"file:{state_dir}/agentd.db?mode=ro", uri=True)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()


def network_records(d, sid, since=0):
    out = []
    while True:
        recs = d.get(f"/v1/audit?since={since}").json["records"]
        if not recs:
            return out
        out += [r for r in recs if r["sandbox_id"] == sid and r["action"] == "network"]
        since = recs[-1]["seq"]


# Inside the sandbox: for SECONDS, requests through the proxy to refused targets: the same
# one over and over, and one new port every time (to get past aggregation); prints how many.
FLOOD = r'''
import socket, sys, time
same, first_new, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
n = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for port in (same, first_new + n % 40000):
        s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
        s.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % port)
        s.recv(4096)
        s.close()
        n += 1
print(n)
'''


@pytest.fixture(scope="module")
def d():
    dm = Daemon().start()
    yield dm
    dm.cleanup()


def test_a_sandbox_flooding_refusals_writes_bounded_records_that_count_every_one(d):
    sid = d.create(spec={"profile": "standard",
                         "network": {"mode": "allowlist", "allow": ["127.0.0.1:9"]}})
    try:
        before = d.get("/v1/audit").json["records"]
        since = before[-1]["seq"] if before else 0
        used0 = db_used_bytes(d.state_dir)
        r = d.exec(sid, ["/usr/bin/python3", "-c", FLOOD, "1", "20000", "6"],
                   timeout_ms=60000)
        assert r.status == 200 and r.json["exit_code"] == 0, r
        sent = int(r.json["stdout"])
        assert sent > 500, f"the flood was too slow to mean anything: {sent} requests"

        def accounted():
            recs = network_records(d, sid, since)
            return sum(x["count"] for x in recs) == sent and recs
        # the repeats are written at the end of their 10 s interval
        recs = wait_until(accounted, timeout=40, step=0.5)
        assert recs, (sent, network_records(d, sid, since))
        assert all(x["result"] in ("denied", "suppressed") for x in recs), recs
        # one record per target and interval, 32 new targets, the rest counted in one record
        assert len(recs) <= 80, (len(recs), sent)
        agg = [x for x in recs if x["result"] == "denied" and x["count"] > 1 and
               x["argv"]["port"] == 1]
        assert agg and agg[0]["argv"]["samples"], recs
        assert agg[0]["first_ms"] <= agg[0]["last_ms"]
        sup = [x for x in recs if x["result"] == "suppressed"]
        assert sup and sup[0]["argv"]["denied"] == sup[0]["count"] > 0, sup
        grown = db_used_bytes(d.state_dir) - used0
        # one record per request would be ~300 bytes each
        assert grown < 100 * 1024, (grown, sent)
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def verify(d, *args):
    return subprocess.run([AGENTD, "audit", "verify", *args], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "AGENTD_SOCKET": d.socket})


def test_a_record_changed_in_the_database_is_named_by_audit_verify():
    dm = Daemon("--backend", "host-direct").start()
    try:
        sid = dm.create(backend="host-direct")
        for i in range(5):
            assert dm.exec(sid, ["/bin/echo", str(i)]).status == 200
        dm.delete(f"/v1/sandboxes/{sid}")
        r = verify(dm)
        assert r.returncode == 0 and "audit chain intact" in r.stdout, r
        recs = dm.get("/v1/audit").json["records"]
        victim = [x for x in recs if x["action"] == "exec"][2]["seq"]
        db = sqlite3.connect(f"{dm.state_dir}/agentd.db")
        db.executescript("DROP TRIGGER audit_no_update;"
                         f"UPDATE audit SET result = 'exit 0, nothing to see' WHERE seq = {victim};")
        db.close()
        for args in ((), ("--state-dir", dm.state_dir)):
            r = verify(dm, *args)
            assert r.returncode == 1, r
            assert f"record {victim} was changed" in r.stderr, r
        r = dm.get("/v1/audit/verify")
        assert r.status == 200 and r.json["ok"] is False, r
        assert r.json["error"]["seq"] == victim, r.json
    finally:
        dm.cleanup()


def test_retention_under_a_small_budget_prunes_sealed_segments_and_verify_passes():
    dm = Daemon("--backend", "host-direct", "--state-max-bytes", "1M").start()
    try:
        sid = dm.create(backend="host-direct")
        big = "x" * 100000
        for _ in range(40):     # ~4 MB of records into a 1 MiB budget
            assert dm.exec(sid, ["/bin/true", big]).status == 200
        dm.delete(f"/v1/sandboxes/{sid}")
        assert "pruned" in dm.read_log(), dm.read_log()[-2000:]
        assert db_used_bytes(dm.state_dir) <= 1 << 20
        r = verify(dm, "--json")
        assert r.returncode == 0, r
        import json
        rep = json.loads(r.stdout)
        assert rep["ok"] and rep["pruned"][0] == 1 and rep["records"] < 42, rep
        # the seals are in the log with their hashes, to be kept elsewhere
        assert "sealed: records" in dm.read_log()
        r = verify(dm)
        assert "pruned (seals kept)" in r.stdout, r
    finally:
        dm.cleanup()
