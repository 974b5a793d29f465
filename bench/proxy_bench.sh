#!/usr/bin/env bash
# proxy_bench.sh: the egress proxy's cost, measured in the same run.
#   throughput: a 100 MiB download from a loopback server, direct (network "host") vs
#               through the proxy (network "allow:127.0.0.1:PORT"), RUNS alternating rounds;
#   latency:    connect + first response byte of a small request, p50 over REQS requests,
#               direct vs proxied; the difference is what the proxy adds.
# The same client runs inside a container sandbox both times; the server sends with
# sendfile so that it is not the bottleneck.
# usage: bash bench/proxy_bench.sh [BUILD_DIR] [RUNS] [REQS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-5}
REQS=${3:-1000}
AGENTD="$BUILD/agentd"
PY=/usr/bin/python3
[ -x "$AGENTD" ] || { echo "build first: make build" >&2; exit 1; }

DIR=$(mktemp -d /var/tmp/agentd-proxy-bench.XXXXXX)
chmod 755 "$DIR"
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
head -c $((100 << 20)) /dev/zero > "$DIR/blob"
chmod 644 "$DIR/blob"

cat > "$DIR/server.py" <<'PYEOF'
import os, socket, sys, threading
blob = sys.argv[1]
size = os.path.getsize(blob)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(1024)
print(srv.getsockname()[1], flush=True)
def serve(c):
    with c:
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(65536)
            if not d:
                return
            req += d
        if req.split(b" ", 2)[1].endswith(b"/blob"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
            with open(blob, "rb") as f:
                c.sendfile(f)
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
while True:
    c, _ = srv.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF

cat > "$DIR/client.py" <<'PYEOF'
import os, socket, statistics, sys, time
mode, port, what, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
dest = ("127.0.0.1", 3128) if mode == "proxy" else ("127.0.0.1", port)
def request(path):
    s = socket.create_connection(dest)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    target = "http://127.0.0.1:%d%s" % (port, path) if mode == "proxy" else path
    s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % target.encode())
    return s
if what == "throughput":
    buf = bytearray(1 << 20)
    rates = []
    for _ in range(n):
        t0 = time.perf_counter()
        s = request("/blob")
        got = 0
        while True:
            k = s.recv_into(buf)
            if not k:
                break
            got += k
        dt = time.perf_counter() - t0
        s.close()
        assert got > 100 << 20, got
        rates.append(got / dt / (1 << 20))
    print("%.0f" % statistics.median(rates))
else:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        s = request("/")
        s.recv(1)
        lat.append((time.perf_counter() - t0) * 1e6)
        s.close()
    lat.sort()
    print("%.0f %.0f" % (lat[len(lat) // 2], lat[len(lat) * 99 // 100]))
PYEOF

$PY "$DIR/server.py" "$DIR/blob" > "$DIR/port" &
SERVER_PID=$!
for _ in $(seq 50); do [ -s "$DIR/port" ] && break; sleep 0.1; done
PORT=$(cat "$DIR/port")

direct() { "$AGENTD" run --ro "$DIR" --profile permissive --net host -- $PY "$DIR/client.py" direct "$PORT" "$@"; }
proxied() { "$AGENTD" run --ro "$DIR" --net "allow:127.0.0.1:$PORT" -- $PY "$DIR/client.py" proxy "$PORT" "$@" 2>/dev/null; }

echo "proxy_bench: 100 MiB download, $RUNS alternating rounds (median); latency over $REQS requests (kernel $(uname -r), $(nproc) CPUs)"
# Direct and proxied alternate, one download each per round, so that load from elsewhere on
# the machine hits both alike; the ratio is the median of the rounds' ratios.
RATIOS=() D_ALL=() P_ALL=()
for _ in $(seq "$RUNS"); do
	d=$(direct throughput 1)
	p=$(proxied throughput 1)
	D_ALL+=("$d") P_ALL+=("$p")
	RATIOS+=("$(awk -v d="$d" -v p="$p" 'BEGIN { printf "%.3f", p / d }')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
D_TP=$(median "${D_ALL[@]}")
P_TP=$(median "${P_ALL[@]}")
RATIO=$(median "${RATIOS[@]}")
read -r D_P50 D_P99 <<<"$(direct latency "$REQS")"
read -r P_P50 P_P99 <<<"$(proxied latency "$REQS")"
awk -v d="$D_TP" -v p="$P_TP" -v r="$RATIO" -v dl="$D_P50" -v pl="$P_P50" -v d99="$D_P99" -v p99="$P_P99" 'BEGIN {
	printf "throughput   direct %6d MiB/s   proxied %6d MiB/s   ratio %.2f  (target >= 0.80)\n", d, p, r
	printf "latency p50  direct %6d us      proxied %6d us      added %.3f ms (target < 0.5 ms)\n", dl, pl, (pl - dl) / 1000
	printf "latency p99  direct %6d us      proxied %6d us\n", d99, p99
}'
