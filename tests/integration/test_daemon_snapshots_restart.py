"""Snapshots across the restart of a daemon whose sandboxes outlive it (the default since
durable-daemon): the snapshot, its source and the sandboxes sharing it are all there after a
SIGTERM or a kill -9. (Apart from test_daemon_snapshots.py: a durable daemon leaves its
sandboxes' handles at exit, which the sanitizer build reports as leaks, as for
test_daemon_restart.py.)"""
import signal

import pytest

from daemon_util import container_daemon, sh_ok as sh
from test_daemon_snapshots import snapshot


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_snapshots_and_shared_forks_outlive_a_durable_daemon(sig):
    """With sandboxes that outlive the daemon (the default): across a SIGTERM or a kill -9
    restart the snapshot stays, the adopted source still restores it, a fork sharing it is
    adopted with its overlays (its own changes kept, the snapshot still in use) and a new
    fork is made from it."""
    d = container_daemon(durable=True)
    try:
        src = d.create()
        sh(d, src, "echo base > f && echo t > /tmp/t")
        snap = snapshot(d, src, "durable-tpl")
        r = d.post("/v1/sandboxes", {"from_snapshot": "durable-tpl"})
        assert r.status == 201, r
        fork, mode = r.json["id"], r.json["from_snapshot_mode"]
        sh(d, fork, "echo fork >> f")
        d.restart(sig)
        assert d.get(f"/v1/sandboxes/{src}").json["state"] == "ready"
        assert d.get("/v1/snapshots/durable-tpl").json["id"] == snap["id"]
        assert sh(d, fork, "cat f /tmp/t") == "base\nfork\nt\n"
        sh(d, src, "rm f")
        assert d.post(f"/v1/sandboxes/{src}/restore",
                      {"snapshot_id": "durable-tpl"}).status == 200
        assert sh(d, src, "cat f") == "base\n"
        if mode == "overlay":
            assert d.delete("/v1/snapshots/durable-tpl").status == 409
        again = d.create(from_snapshot="durable-tpl")
        assert sh(d, again, "cat f") == "base\n"
        for s in (again, fork, src):
            assert d.delete(f"/v1/sandboxes/{s}").status == 200
        assert d.delete("/v1/snapshots/durable-tpl").status == 200
    finally:
        d.cleanup()
