#!/usr/bin/env bash
# demo.sh: the README's main job — run an agent's Python code in a sandbox chosen by
# `auto`, on the embedded defaults (strict profile), and show what it could and could not do.
set -euo pipefail
BUILD=${1:-build}
AGENTD="$BUILD/agentd"

echo "== agentd backends"
"$AGENTD" backends
echo
echo "== agentd run (auto backend, strict profile): agent code tries to get out"
cat > "${TMPDIR:-/tmp}/agentd-demo.py" <<'PY'
import os, socket
print("uid:", os.getuid(), "cwd:", os.getcwd())
def attempt(what, fn):
    try:
        fn()
        print(f"  {what}: ALLOWED")
    except Exception as e:
        print(f"  {what}: blocked ({type(e).__name__}: {e.strerror if hasattr(e, 'strerror') and e.strerror else e})")
attempt("read /etc/shadow", lambda: open("/etc/shadow").read())
attempt("write /usr/agentd-demo", lambda: open("/usr/agentd-demo", "w").write("x"))
attempt("connect 1.1.1.1:443", lambda: socket.create_connection(("1.1.1.1", 443), timeout=2))
open("result.txt", "w").write("computed 6*7=%d\n" % (6 * 7))
print("  wrote", os.path.abspath("result.txt"), "->", open("result.txt").read().strip())
PY
"$AGENTD" run -i -- /usr/bin/python3 - < "${TMPDIR:-/tmp}/agentd-demo.py"
echo
echo "== the same run, as the JSON an agent platform reads"
"$AGENTD" run --json --timeout 10s -- /bin/sh -c 'echo hello from $(id -u); exit 3' || true
rm -f "${TMPDIR:-/tmp}/agentd-demo.py"

echo
echo "== agentd serve: the same, as a daemon an agent platform talks to over a unix socket"
DEMO_DIR=$(mktemp -d /var/tmp/agentd-demo-XXXXXX)
chmod 0711 "$DEMO_DIR"
export AGENTD_SOCKET="$DEMO_DIR/agentd.sock"
start_daemon() {
  "$AGENTD" serve --state-dir "$DEMO_DIR/state" 2>>"$DEMO_DIR/daemon.log" &
  DAEMON_PID=$!
  for _ in $(seq 100); do [ -S "$AGENTD_SOCKET" ] && break; sleep 0.05; done
}
# Sandboxes outlive the daemon: on any failure the demo's sandbox goes first, then the
# daemon and its state dir, so nothing is left running.
stop_daemon() {
  [ -n "${ID:-}" ] && "$AGENTD" sandbox rm "$ID" >/dev/null 2>&1
  kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  rm -rf "$DEMO_DIR"
}
trap stop_daemon EXIT
start_daemon
curl -s --unix-socket "$AGENTD_SOCKET" http://agentd/v1/health; echo
ID=$("$AGENTD" sandbox create --name demo --memory 256M)
echo "sandbox created: $ID"
echo "-- first exec: the agent's code computes something and keeps it in a file"
"$AGENTD" sandbox exec "$ID" -- /usr/bin/python3 -c '
import json, os
json.dump({"answer": 6 * 7, "pid": os.getpid()}, open("state.json", "w"))
print("saved state.json in", os.getcwd())'
echo "-- second exec: the file is still there (the sandbox persists between execs)"
"$AGENTD" sandbox exec "$ID" -- /usr/bin/python3 -c '
import json; s = json.load(open("state.json")); print("read back: answer =", s["answer"])'
echo "-- copy it out with agentd sandbox cp"
"$AGENTD" sandbox cp "$ID:state.json" "$DEMO_DIR/state.json"
echo "host copy: $(cat "$DEMO_DIR/state.json")"
echo "-- a code context keeps its variables between cells"
if CID=$("$AGENTD" sandbox context "$ID" --language python 2>"$DEMO_DIR/context.err"); then
  "$AGENTD" sandbox run-code "$ID" "$CID" -c 'x = 41'
  "$AGENTD" sandbox run-code "$ID" "$CID" -c 'print("x + 1 =", x + 1)'
  echo "-- a server started in the background answers the host through a forwarded port"
  "$AGENTD" sandbox spawn "$ID" -- /usr/bin/python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null
  ADDR=$("$AGENTD" sandbox port "$ID" 8000)
  echo "   GET http://$ADDR/state.json (served inside the sandbox):"
  for _ in $(seq 100); do curl -sf "http://$ADDR/state.json" && break; sleep 0.1; done; echo
  "$AGENTD" sandbox ps "$ID"
  echo "-- the daemon restarts (an upgrade, a crash): the sandbox lives on and is adopted"
  kill "$DAEMON_PID" && wait "$DAEMON_PID" 2>/dev/null || true
  start_daemon
  "$AGENTD" sandbox run-code "$ID" "$CID" -c 'print("after the restart: x =", x)'
  ADDR=$("$AGENTD" sandbox ports "$ID" | awk '$1 == 8000 {print $2}')
  echo "   GET http://$ADDR/state.json, the same server:"
  for _ in $(seq 100); do curl -sf "http://$ADDR/state.json" && break; sleep 0.1; done; echo
else
  echo "   not on this sandbox's backend: $(cat "$DEMO_DIR/context.err")"
fi
"$AGENTD" sandbox ls
"$AGENTD" sandbox rm "$ID" >/dev/null
echo "removed $ID; the audit log has:"
ID=
curl -s --unix-socket "$AGENTD_SOCKET" "http://agentd/v1/audit" | /usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["records"]:
    print("  #%(seq)s uid=%(client_uid)s %(action)-14s %(result)-10s" % r, r["argv"] or "")'
stop_daemon
trap - EXIT
echo "daemon stopped"
