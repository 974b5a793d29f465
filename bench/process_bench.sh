#!/usr/bin/env bash
# bench/process_bench.sh: start-a-process latency through `agentd serve` (POST
# .../processes of /bin/true, answered 201 once the process runs; client included,
# keep-alive), against an exec of /bin/true and a plain fork+exec+wait, all in the same run,
# with the ratios of the medians.
# usage: bench/process_bench.sh [BUILD_DIR] [STARTS]
set -euo pipefail
BUILD=${1:-build}
N=${2:-500}
AGENTD=$(readlink -f "$BUILD/agentd")
CLIENT=$(readlink -f "$BUILD/daemon_client")
DIR=$(mktemp -d /var/tmp/agentd-bench-XXXXXX)
chmod 0711 "$DIR"
SOCK="$DIR/agentd.sock"
"$AGENTD" serve --socket "$SOCK" --state-dir "$DIR/state" 2>"$DIR/log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
ID=$(AGENTD_SOCKET="$SOCK" "$AGENTD" sandbox create --backend container)
echo "sandbox $ID (container), $N process starts"
"$CLIENT" "$SOCK" "$ID" "$N" 1 processes
