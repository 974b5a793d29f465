#!/usr/bin/env bash
# bench/restart_bench.sh: restart time of `agentd serve` with N live container sandboxes —
# from SIGTERM to the new daemon answering /v1/health with all N adopted and ready — against
# creating N fresh sandboxes through the same daemon, in the same run; prints both (timed
# by /usr/bin/time) and their ratio (docs/api.md#restarts).
# usage: bench/restart_bench.sh [BUILD_DIR] [N]
set -euo pipefail
BUILD=${1:-build}
N=${2:-50}
AGENTD=$(readlink -f "$BUILD/agentd")
DIR=$(mktemp -d /var/tmp/agentd-bench-XXXXXX)
chmod 0711 "$DIR"
SOCK="$DIR/agentd.sock"
export AGENTD SOCK DIR N

serve() {
	"$AGENTD" serve --socket "$SOCK" --state-dir "$DIR/state" --max-sandboxes 200 "$@" >/dev/null \
		2>>"$DIR/log" &
	echo $! >"$DIR/pid"
}
export -f serve
healthy() {
	until curl -sf --unix-socket "$SOCK" http://agentd/v1/health >/dev/null; do sleep 0.005; done
}
export -f healthy
# the last daemon destroys what is left (--destroy-on-exit), then the dir goes
finish() {
	kill "$(cat "$DIR/pid")" 2>/dev/null || true
	while kill -0 "$(cat "$DIR/pid")" 2>/dev/null; do sleep 0.05; done
	serve --destroy-on-exit
	healthy
	kill "$(cat "$DIR/pid")"
	while kill -0 "$(cat "$DIR/pid")" 2>/dev/null; do sleep 0.05; done
	rm -rf "$DIR"
}
trap finish EXIT

create_all() {
	for _ in $(seq "$N"); do
		curl -sf --unix-socket "$SOCK" -X POST -d '{"backend":"container"}' \
			http://agentd/v1/sandboxes >/dev/null
	done
}
export -f create_all
restart() {
	pid=$(cat "$DIR/pid")
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
	serve
	healthy
}
export -f restart

serve
healthy
T_CREATE=$( { /usr/bin/time -f %e bash -c create_all; } 2>&1 | tail -1)
T_RESTART=$( { /usr/bin/time -f %e bash -c restart; } 2>&1 | tail -1)
READY=$(curl -sf --unix-socket "$SOCK" http://agentd/v1/sandboxes |
	/usr/bin/python3 -c 'import json,sys; print(sum(s["state"] == "ready" and s["durable"]
	for s in json.load(sys.stdin)["sandboxes"]))')
echo "sandboxes: $N, adopted and ready after the restart: $READY"
echo "create $N fresh sandboxes: ${T_CREATE} s"
echo "restart with $N live sandboxes (SIGTERM to /v1/health): ${T_RESTART} s"
/usr/bin/python3 -c "import sys; c, r = float(sys.argv[1]), float(sys.argv[2]);
print('restart / create: %.2f' % (r / c if c else float('nan')))" "$T_CREATE" "$T_RESTART"
[ "$READY" = "$N" ]
