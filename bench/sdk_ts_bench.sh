#!/usr/bin/env bash
# bench/sdk_ts_bench.sh: the round trip of an exec of /bin/true in a running container
# sandbox through the TypeScript SDK (clients/typescript, one kept-alive connection) against
# curl on the same daemon, same run: curl as one process per request (hyperfine: what a shell
# script pays), and curl with N requests on one kept-alive connection (--next), per request.
# usage: bench/sdk_ts_bench.sh [BUILD_DIR] [EXECS]
set -euo pipefail
BUILD=${1:-build}
N=${2:-1000}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/serve.sh"
serve_start "$BUILD"
ID=$(AGENTD_SOCKET="$SOCK" "$AGENTD" sandbox create --backend container)
URL="http://agentd/v1/sandboxes/$ID/exec"
BODY='{"argv":["/bin/true"]}'
echo "sandbox $ID (container), $N execs each"

node "$HERE/sdk_ts_exec.mjs" "$SOCK" "$ID" "$N"

# curl, N requests on one connection: each --next repeats the request on the kept-alive socket
args=(-s -o /dev/null --unix-socket "$SOCK" -H 'Content-Type: application/json' -d "$BODY" "$URL")
all=("${args[@]}")
for _ in $(seq 2 "$N"); do all+=(--next "${args[@]}"); done
for _ in $(seq 20); do curl "${args[@]}"; done # warm-up
t0=$(date +%s%N)
curl "${all[@]}"
t1=$(date +%s%N)
echo "curl-keepalive execs=$N mean_us=$(( (t1 - t0) / N / 1000 ))"

# curl, one process per request (startup included)
hyperfine -N --warmup 20 --runs "$N" --style basic --export-json "$DIR/h.json" \
	"curl -s -o /dev/null --unix-socket $SOCK -H Content-Type:application/json -d $BODY $URL" \
	>/dev/null
/usr/bin/python3 - "$DIR/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"curl-process runs={len(r['times'])} p50_us={r['median']*1e6:.0f} mean_us={r['mean']*1e6:.0f}")
PY
