#!/usr/bin/env bash
# bench/daemon_bench.sh: exec of /bin/true in a running container sandbox through
# `agentd serve` (client included, keep-alive), against a plain fork+exec of /bin/true in the
# same run; then p50/p99 and execs/s with 8 concurrent clients (median at most 2x:
# docs/README.md#targets).
# With a fourth argument "processes": the start of a background process (POST .../processes
# of /bin/true, answered 201 once it runs) against an exec of /bin/true and a plain
# fork+exec in the same run, with the ratios of the medians (container only).
# usage: bench/daemon_bench.sh [BUILD_DIR] [EXECS] [BACKEND] [processes]
set -euo pipefail
BUILD=${1:-build}
N=${2:-2000}
BACKEND=${3:-container}
AGENTD=$(readlink -f "$BUILD/agentd")
CLIENT=$(readlink -f "$BUILD/daemon_client")
DIR=$(mktemp -d /var/tmp/agentd-bench-XXXXXX)
chmod 0711 "$DIR"
SOCK="$DIR/agentd.sock"
"$AGENTD" serve --socket "$SOCK" --state-dir "$DIR/state" 2>"$DIR/log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
ID=$(AGENTD_SOCKET="$SOCK" "$AGENTD" sandbox create --backend "$BACKEND")
if [ "${4:-}" = processes ]; then
	echo "sandbox $ID ($BACKEND), $N process starts"
	"$CLIENT" "$SOCK" "$ID" "$N" 1 processes
	exit 0
fi
echo "sandbox $ID ($BACKEND), $N execs"
"$CLIENT" "$SOCK" "$ID" "$N" 8 | tee "$DIR/out"
/usr/bin/python3 - "$DIR/out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
d = float(re.search(r"^daemon clients=1 .*?p50_us=(\d+)", t, re.M).group(1))
p = [float(x) for x in re.search(r"p50_us=(\d+) \(before\) (\d+)", t).groups()]
plain = sum(p) / 2
print(f"ratio daemon exec / plain fork+exec (medians): {d / plain:.2f}x (target <= 2x, docs/README.md#targets)")
PY
