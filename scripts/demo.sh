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
