#!/usr/bin/env bash
# bench/sdk_python_bench.sh: the round trip of `exec /bin/true` through the Python SDK
# (clients/python) against curl, on the same daemon and sandbox, interleaved round by round
# so both see the same load. Prints the median of N of each:
#   sdk            Sandbox.exec(["/bin/true"]) on the client's kept-alive connection
#   sdk-new-conn   a new Client (a new connection) per call
#   curl           `curl --unix-socket` as a process per call, as a shell script would
#   curl-internal  curl's own time_total of the same calls (no process start)
#   sdk-async      AsyncSandbox.exec on a kept-alive connection
# usage: bench/sdk_python_bench.sh [BUILD_DIR] [N]
set -euo pipefail
BUILD=${1:-build}
N=${2:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v curl >/dev/null || { echo "curl is needed (scripts/install-deps.sh)" >&2; exit 1; }
. "$(dirname "$0")/serve.sh"
serve_start "$BUILD"
ID=$(AGENTD_SOCKET="$SOCK" "$AGENTD" sandbox create --backend container)
echo "sandbox $ID (container), $N calls of each, interleaved"
PYTHONPATH="$ROOT/clients/python/src" /usr/bin/python3 - "$SOCK" "$ID" "$N" <<'PY'
import asyncio, statistics, subprocess, sys, time
import agentd
from agentd.aio import AsyncClient

sock, sid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = agentd.Client(sock)
sb = client.get(sid)
url = f"http://agentd/v1/sandboxes/{sid}/exec"
body = '{"argv": ["/bin/true"]}'
curl = ["curl", "-sS", "--unix-socket", sock, "-H", "Content-Type: application/json",
        "-d", body, "-o", "/dev/null", "-w", "%{http_code} %{time_total}", url]
times = {k: [] for k in ("sdk", "sdk-new-conn", "curl", "curl-internal", "sdk-async")}

def timed(key, fn):
    t0 = time.perf_counter()
    fn()
    times[key].append((time.perf_counter() - t0) * 1000)

def one_curl():
    out = subprocess.run(curl, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "200", out
    times["curl-internal"].append(float(out[1]) * 1000)

def sdk():
    assert sb.exec(["/bin/true"]).exit_code == 0

def sdk_new():
    with agentd.Client(sock) as c:
        assert agentd.Sandbox(c, sb.info).exec(["/bin/true"]).exit_code == 0

async def run_async(loop_n):
    async with AsyncClient(sock) as ac:
        asb = await ac.get(sid)
        for _ in range(loop_n):
            t0 = time.perf_counter()
            r = await asb.exec(["/bin/true"])
            times["sdk-async"].append((time.perf_counter() - t0) * 1000)
            assert r.exit_code == 0

for _ in range(10):     # warm the daemon, the sandbox and the connection
    sdk(); one_curl()
for k in times:
    times[k].clear()
for _ in range(n):
    timed("sdk", sdk)
    timed("sdk-new-conn", sdk_new)
    timed("curl", one_curl)
asyncio.run(run_async(n))
for k, v in times.items():
    v.sort()
    print(f"{k:14s} median {statistics.median(v):7.3f} ms   p90 {v[int(len(v) * 0.9) - 1]:7.3f} ms")
PY
