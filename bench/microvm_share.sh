#!/usr/bin/env bash
# bench/microvm_share.sh (issue 15: vm-map): what a micro-VM sandbox whose files come over
# virtiofs costs: a cold `agentd run` (boot to ready, one exec, destroy), and the exec round
# trip, through `agentd serve` (curl on its socket), of /bin/true and of python3 (both loaded
# from the host's runtime over virtiofs).
# usage: bench/microvm_share.sh [BUILD_DIR] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-10}
. "$(dirname "$0")/serve.sh"
serve_start "$BUILD"
hyperfine --warmup 1 --runs 5 -N "$AGENTD run --backend microvm -- /bin/true"
ID=$(curl -sf --unix-socket "$SOCK" -d '{"backend":"microvm"}' http://agentd/v1/sandboxes |
	/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
exec_of() {
	echo "curl -sf --unix-socket $SOCK -d '{\"argv\":$1}' http://agentd/v1/sandboxes/$ID/exec"
}
hyperfine --warmup 2 --runs "$RUNS" \
	"$(exec_of '["/bin/true"]')" \
	"$(exec_of '["/usr/bin/python3","-c","pass"]')"
