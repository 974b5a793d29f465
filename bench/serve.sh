# bench/serve.sh: sourced by the daemon benchmarks — `agentd serve` of BUILD on a temporary
# socket and state dir, stopped and removed on exit. Sets AGENTD, DIR, SOCK and PID.
# usage: serve_start BUILD_DIR
serve_start() {
	AGENTD=$(readlink -f "$1/agentd")
	DIR=$(mktemp -d /var/tmp/agentd-bench-XXXXXX)
	chmod 0711 "$DIR"
	SOCK="$DIR/agentd.sock"
	"$AGENTD" serve --socket "$SOCK" --state-dir "$DIR/state" --destroy-on-exit 2>"$DIR/log" &
	PID=$!
	trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
	for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
}
