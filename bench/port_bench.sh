#!/usr/bin/env bash
# bench/port_bench.sh: throughput of a forwarded port (`agentd serve`, POST .../ports) against
# a direct loopback connection in the same run: a sender on the host moves BYTES to a sink,
# once to a sink on the host's 127.0.0.1 and once through the forward to a sink listening
# inside a container sandbox, ROUNDS times each (best of each kept); prints the ratio
# (target >= 0.8x: docs/api.md#ports).
# usage: bench/port_bench.sh [BUILD_DIR] [BYTES] [ROUNDS]
set -euo pipefail
BUILD=${1:-build}
BYTES=${2:-1073741824}
ROUNDS=${3:-3}
. "$(dirname "$0")/serve.sh"
serve_start "$BUILD"
export AGENTD_SOCKET="$SOCK"
ID=$("$AGENTD" sandbox create --backend container)
# The sink: accept, read to EOF, answer the byte count, for as many connections as come.
SINK='
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept(); n = 0
    while True:
        k = c.recv_into(buf)
        if not k: break
        n += k
    c.sendall(b"%d\n" % n); c.close()
'
# inside: a background process of the sandbox
"$AGENTD" sandbox spawn "$ID" -- python3 -c "$SINK" 8000 >/dev/null
PORT=$("$AGENTD" sandbox port "$ID" 8000)
PORT=${PORT##*:}
/usr/bin/python3 - "$PORT" "$BYTES" "$ROUNDS" "$SINK" <<'PY'
import socket, subprocess, sys, time
fwd_port, total, rounds, sink = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# the direct sink on the host, on a free port
s = socket.socket(); s.bind(("127.0.0.1", 0)); direct_port = s.getsockname()[1]; s.close()
host_sink = subprocess.Popen([sys.executable, "-c", sink, str(direct_port)], stdout=subprocess.PIPE)
host_sink.stdout.readline()
chunk = b"x" * (1 << 20)

def send(port, total=total):
    c = socket.create_connection(("127.0.0.1", port))
    t0 = time.monotonic(); left = total
    while left:
        left -= c.send(chunk[:min(left, len(chunk))])
    c.shutdown(socket.SHUT_WR)
    got = int(c.makefile().readline())
    dt = time.monotonic() - t0
    c.close()
    assert got == total, (got, total)
    return total / dt / 1e6

deadline = time.monotonic() + 30
while True:   # the sink inside may still be starting: until then the forward resets
    try:
        send(fwd_port, 1 << 20); break
    except (OSError, ValueError):
        if time.monotonic() > deadline: raise
        time.sleep(0.2)
send(fwd_port)   # warm up
best = {"direct": 0.0, "forwarded": 0.0}
for _ in range(rounds):
    best["direct"] = max(best["direct"], send(direct_port))
    best["forwarded"] = max(best["forwarded"], send(fwd_port))
host_sink.kill()
print(f"{total / 2**20:.0f} MiB, best of {rounds}: direct loopback {best['direct']:.0f} MB/s, "
      f"forwarded port {best['forwarded']:.0f} MB/s")
print(f"ratio forwarded / direct: {best['forwarded'] / best['direct']:.2f}x (target >= 0.8x)")
PY
