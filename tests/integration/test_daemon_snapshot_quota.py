"""Snapshots of a container sandbox cost the host what the files cost the sandbox: a sparse
file is copied as a sparse file (and restored as one), and every snapshot is charged by its
allocated size to the sandbox's limits.max_snapshot_bytes; one over it is refused and
leaves nothing behind."""
import os

import pytest

from daemon_util import allocated, container_daemon, sh_ok as sh

MIB = 1 << 20


@pytest.fixture(scope="module")
def d():
    dm = container_daemon()
    yield dm
    dm.cleanup()


# 100 MiB of hole between "head" and "tail", then the file's size, allocation and digest
SPARSE = ("printf head > sparse && printf tail | dd of=sparse bs=1 seek=104857600 "
          "conv=notrunc 2>/dev/null && stat -c '%s %b %B' sparse && sha256sum sparse")


def test_sparse_file_snapshots_as_holes_and_restores_as_one(d):
    sid = d.create(spec={"limits": {"max_write_bytes": 200 * MIB}})
    try:
        before = sh(d, sid, SPARSE)
        size, blocks, unit = (int(x) for x in before.split("\n")[0].split())
        assert size == 100 * MIB + 4 and blocks * unit < MIB, before
        r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "sparse"})
        assert r.status == 201, r
        snap_dir = os.path.join(d.state_dir, "snapshots", r.json["snapshot_id"])
        host = os.path.join(snap_dir, "workdir", "sparse")
        assert os.stat(host).st_size == 100 * MIB + 4
        assert allocated(snap_dir) < MIB, f"the snapshot takes {allocated(snap_dir)} bytes"

        sh(d, sid, "rm sparse && echo other > sparse")
        assert d.post(f"/v1/sandboxes/{sid}/restore",
                      {"snapshot_id": r.json["snapshot_id"]}).status == 200
        after = sh(d, sid, "stat -c '%s %b %B' sparse && sha256sum sparse")
        assert after.split("\n")[1] == before.split("\n")[1], (before, after)  # same content
        size, blocks, unit = (int(x) for x in after.split("\n")[0].split())
        assert size == 100 * MIB + 4 and blocks * unit < MIB, after  # holes kept
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_snapshots_are_charged_to_the_sandbox_quota(d):
    sid = d.create(spec={"limits": {"max_snapshot_bytes": 3 * MIB // 2}})
    try:
        sh(d, sid, "head -c 1048576 /dev/urandom > data")
        first = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "one"})
        assert first.status == 201, first
        snaps = os.path.join(d.state_dir, "snapshots")
        kept = set(os.listdir(snaps))
        # the second would take the total past 1.5 MiB: refused, with the limit named
        second = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "two"})
        assert second.status == 413, second
        assert "max_snapshot_bytes" in second.error["message"], second
        assert set(os.listdir(snaps)) == kept, "a refused snapshot left files behind"
        # the first one still restores
        sh(d, sid, "rm data")
        assert d.post(f"/v1/sandboxes/{sid}/restore",
                      {"snapshot_id": first.json["snapshot_id"]}).status == 200
        assert sh(d, sid, "wc -c < data").strip() == "1048576"
    finally:
        d.delete(f"/v1/sandboxes/{sid}")


def test_zero_quota_refuses_snapshots(d):
    sid = d.create(spec={"limits": {"max_snapshot_bytes": 0}})
    try:
        snaps = os.path.join(d.state_dir, "snapshots")
        before = set(os.listdir(snaps))
        r = d.post(f"/v1/sandboxes/{sid}/snapshots", {"name": "none"})
        assert r.status == 413 and "max_snapshot_bytes" in r.error["message"], r
        assert set(os.listdir(snaps)) == before
    finally:
        d.delete(f"/v1/sandboxes/{sid}")
