"""Re-adoption of a durable sandbox after a daemon restart trusts nothing it did not prove
(docs/api.md#restarts): a socket planted in place of the sandbox's endpoint while the daemon
is down (answering garbage or a hello that looks right) and a token whose pid was edited to
another live process are refused; the sandbox is marked failed, audited as a security event,
and its real processes are gone afterwards (killed through its cgroup)."""
import os
import socket
import sqlite3
import struct
import sys
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from daemon_util import Daemon, agentd_cgroups, pids_with, wait_until  # noqa: E402


@pytest.fixture
def d():
    dm = Daemon(durable=True).start()
    yield dm
    dm.cleanup()


def sandbox_with_a_process(d, marker):
    sid = d.create()
    r = d.post(f"/v1/sandboxes/{sid}/processes", {"argv": ["/usr/bin/python3", "-c", "import time; time.sleep(600)", marker]})
    assert r.status == 201, r
    assert wait_until(lambda: pids_with(marker))
    return sid


def refused(d, sid, marker):
    """What a refused adoption must leave: failed, a security record, nothing running."""
    r = d.get(f"/v1/sandboxes/{sid}")
    assert r.json["state"] == "failed" and "at daemon restart" in r.json["reason"], r
    recs = [a for a in d.get("/v1/audit").json["records"]
            if a["action"] in ("security", "adopt") and a["sandbox_id"] == sid]
    assert recs and recs[-1]["action"] == "security", recs
    assert wait_until(lambda: not pids_with(marker), timeout=15), pids_with(marker)
    assert wait_until(lambda: not (agentd_cgroups() & {sid}), timeout=15)
    assert not os.path.exists(os.path.join(d.state_dir, "durable", sid))
    assert [s["id"] for s in d.get("/v1/sandboxes").json["sandboxes"]] == []


def plant(path, answer):
    """A listener of ours where the sandbox's endpoint was: each connection gets answer."""
    os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dfd = os.open(os.path.dirname(path), os.O_PATH)   # the path is over sun_path's 108
    try:
        s.bind(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
    finally:
        os.close(dfd)
    s.listen(8)

    def serve():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                c.sendall(answer)
            except OSError:
                pass
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    return s


# magic "adr1", version 1, no fds, no entries, next id 0, a secret of zeros
FAKE_HELLO = struct.pack("<IIIIQ32s", 0x61647231, 1, 0, 0, 0, b"\0" * 32)


@pytest.mark.parametrize("answer", [b"\xff" * 64, FAKE_HELLO], ids=["garbage", "fake-hello"])
def test_a_planted_endpoint_is_refused(d, answer):
    marker = "agentd-planted-%d-%d" % (os.getpid(), len(answer))
    sid = sandbox_with_a_process(d, marker)
    d.stop()
    ep = os.path.join(d.state_dir, "durable", sid, sid + ".sock")
    assert os.path.exists(ep)
    s = plant(ep, answer)
    try:
        d.start()
        refused(d, sid, marker)
    finally:
        s.close()


def test_a_token_naming_another_live_process_is_refused(d):
    marker = "agentd-repid-%d" % os.getpid()
    sid = sandbox_with_a_process(d, marker)
    d.stop()
    db = sqlite3.connect(os.path.join(d.state_dir, "agentd.db"))
    (token,) = db.execute("SELECT durable_token FROM sandboxes WHERE id = ?", (sid,)).fetchone()
    fields = token.split(":")
    fields[1] = str(os.getpid())    # the pid of a live process that is not its init
    db.execute("UPDATE sandboxes SET durable_token = ? WHERE id = ?", (":".join(fields), sid))
    db.commit()
    db.close()
    d.start()
    refused(d, sid, marker)
