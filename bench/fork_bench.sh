#!/usr/bin/env bash
# bench/fork_bench.sh: sandboxes made from a snapshot (POST /v1/sandboxes {"from_snapshot"})
# against plain ones, through `agentd serve`: the create latency (median of N, client
# included) of a plain create, a fork sharing the snapshot (overlay) and a fork copying it
# (from_snapshot_copy), then the host disk (du of the state dir) and memory (the scratch
# tmpfs in use, summed over the forks' `df`, and the host's Shmem) that ten forks of a
# snapshot of SIZE_MB of random data take, sharing and copying.
# usage: bench/fork_bench.sh [BUILD_DIR] [SIZE_MB] [N]
set -euo pipefail
BUILD=${1:-build}
SIZE_MB=${2:-50}
N=${3:-20}
. "$(dirname "$0")/serve.sh"
serve_start "$BUILD"
/usr/bin/python3 - "$SOCK" "$DIR/state" "$SIZE_MB" "$N" <<'PY'
import http.client, json, os, socket, statistics, subprocess, sys, time
sock, state, size_mb, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MIB = 1 << 20

class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sock)

c = Conn("agentd", timeout=300)
def call(method, path, body=None, ok=(200, 201)):
    c.request(method, path, body=json.dumps(body) if body is not None else None)
    r = c.getresponse()
    out = json.loads(r.read())
    assert r.status in ok, (r.status, out)
    return out

def sh(sid, script):
    out = call("POST", f"/v1/sandboxes/{sid}/exec", {"argv": ["/bin/sh", "-c", script]})
    assert out["exit_code"] == 0, out
    return out["stdout"]

def du(path):
    return int(subprocess.run(["du", "-sB1", path], capture_output=True, text=True,
                              check=True).stdout.split()[0])

def shmem():
    for line in open("/proc/meminfo"):
        if line.startswith("Shmem:"):
            return int(line.split()[1]) * 1024

spec = {"limits": {"max_write_bytes": (size_mb + 64) * MIB, "max_memory_bytes": 256 * MIB}}
src = call("POST", "/v1/sandboxes", {"spec": spec})["id"]
sh(src, f"head -c {size_mb * MIB} /dev/urandom > blob && mkdir -p /tmp/t && echo t > /tmp/t/f")
t0 = time.perf_counter()
snap = call("POST", f"/v1/sandboxes/{src}/snapshots", {"name": "bench"})
print(f"snapshot of {size_mb} MiB: {(time.perf_counter() - t0) * 1000:.0f} ms, "
      f"{snap['size_bytes'] / MIB:.1f} MiB on disk")

def timed_create(body):
    t0 = time.perf_counter()
    out = call("POST", "/v1/sandboxes", body)
    dt = (time.perf_counter() - t0) * 1000
    return dt, out

kinds = [("plain create", {"spec": spec}),
         ("fork, shared (overlay)", {"spec": spec, "from_snapshot": "bench"}),
         ("fork, copied", {"spec": spec, "from_snapshot": "bench", "from_snapshot_copy": True})]
for label, body in kinds:
    lat, mode = [], None
    for _ in range(n):
        dt, out = timed_create(body)
        lat.append(dt)
        mode = out.get("from_snapshot_mode")
        call("DELETE", f"/v1/sandboxes/{out['id']}")
    lat.sort()
    print(f"{label:24s} median {statistics.median(lat):7.1f} ms  p90 {lat[int(0.9 * n) - 1]:7.1f} ms"
          + (f"  ({mode})" if mode else ""))

for label, body in kinds[1:]:
    disk0, shm0 = du(state), shmem()
    forks = [timed_create(body)[1]["id"] for _ in range(10)]
    used = sum(int(sh(f, "df -B1 --output=used /workspace | tail -1")) for f in forks)
    disk1, shm1 = du(state), shmem()
    print(f"ten forks, {label:18s} host disk +{(disk1 - disk0) / MIB:7.1f} MiB, "
          f"scratch (tmpfs) in use {used / MIB:7.1f} MiB, host Shmem +{(shm1 - shm0) / MIB:7.1f} MiB")
    for f in forks:
        call("DELETE", f"/v1/sandboxes/{f}")
call("DELETE", f"/v1/sandboxes/{src}")
call("DELETE", "/v1/snapshots/bench")
PY
