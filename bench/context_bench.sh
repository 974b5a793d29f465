#!/usr/bin/env bash
# bench/context_bench.sh: a code-context cell `1+1` through `agentd serve` once the context
# is warm (HTTP over the unix socket, one kept-alive connection, client included) against an
# exec of `python3 -c 1+1` in the same sandbox, in the same run; prints medians, p99 and the
# ratio (target: the cell under 2 ms, docs/contexts.md#performance).
# usage: bench/context_bench.sh [BUILD_DIR] [CELLS] [EXECS]
set -euo pipefail
BUILD=${1:-build}
N=${2:-2000}
M=${3:-100}
. "$(dirname "$0")/serve.sh"
serve_start "$BUILD"
ID=$(AGENTD_SOCKET="$SOCK" "$AGENTD" sandbox create --backend container)
CID=$(AGENTD_SOCKET="$SOCK" "$AGENTD" sandbox context "$ID" --language python)
echo "sandbox $ID, python context $CID: $N cells, $M execs"
/usr/bin/python3 - "$SOCK" "$ID" "$CID" "$N" "$M" <<'PY'
import http.client, json, socket, statistics, sys, time
sock, sid, cid, n, m = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sock)

c = Conn("agentd")
def call(path, body):
    data = json.dumps(body)
    t0 = time.perf_counter()
    c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    out = json.loads(r.read())
    dt = (time.perf_counter() - t0) * 1000
    assert r.status == 200, out
    return dt, out

def measure(path, body, count, check):
    lat = []
    for _ in range(count):
        dt, out = call(path, body)
        check(out)
        lat.append(dt)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]

cell = f"/v1/sandboxes/{sid}/contexts/{cid}/run"
for _ in range(50):   # warm: the interpreter, the connection, the daemon's caches
    call(cell, {"code": "1+1"})
cp50, cp99 = measure(cell, {"code": "1+1"}, n,
                     lambda o: o["result"] == {"text/plain": "2"} or sys.exit(f"bad {o}"))
ep50, ep99 = measure(f"/v1/sandboxes/{sid}/exec", {"argv": ["python3", "-c", "print(1+1)"]}, m,
                     lambda o: o["stdout"] == "2\n" or sys.exit(f"bad {o}"))
print(f"context cell 1+1           p50 {cp50:.3f} ms  p99 {cp99:.3f} ms  (target p50 < 2 ms)")
print(f"exec python3 -c 'print(1+1)' p50 {ep50:.3f} ms  p99 {ep99:.3f} ms")
print(f"ratio exec / context cell (medians): {ep50 / cp50:.1f}x")
PY
