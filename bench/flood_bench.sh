#!/usr/bin/env bash
# bench/flood_bench.sh: the token holder's GET /v1/health over TCP, with hyperfine, while
# N idle connections without a token are held open against the same listener (and re-opened
# as the daemon shuts them), then the same with no flood. The daemon's header timeout and
# per-peer bounds (src/daemon/peers.c) are what keep the first figure near the second.
# usage: bench/flood_bench.sh [BUILD_DIR] [N]
set -euo pipefail
BUILD=${1:-build}
N=${2:-300}
AGENTD=$(readlink -f "$BUILD/agentd")
DIR=$(mktemp -d /var/tmp/agentd-bench-XXXXXX)
chmod 0711 "$DIR"
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/token"
chmod 0600 "$DIR/token"
"$AGENTD" serve --socket "$DIR/agentd.sock" --state-dir "$DIR/state" --destroy-on-exit \
	--listen "127.0.0.1:$PORT" --token-file "$DIR/token" 2>"$DIR/log" &
PID=$!
FLOOD=
trap 'kill $FLOOD $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do [ -S "$DIR/agentd.sock" ] && break; sleep 0.05; done
HEALTH="curl -sf -o /dev/null -H 'Authorization: Bearer $(cat "$DIR/token")' http://127.0.0.1:$PORT/v1/health"
hyperfine -N --warmup 5 --runs 200 -n "health, no flood" "$HEALTH"
/usr/bin/python3 - "$PORT" "$N" <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
while True:
    held = [s for s in held if s.fileno() >= 0]
    while len(held) < n:
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            time.sleep(0.01)
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                s.close()
        except BlockingIOError:
            pass
        except OSError:
            s.close()
    time.sleep(0.05)
PY
FLOOD=$!
sleep 2
hyperfine -N --warmup 5 --runs 200 -n "health, $N idle connections without a token" "$HEALTH"
grep -o 'msg="connections shut before a request".*' "$DIR/log" | tail -1 || true
