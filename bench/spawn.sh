#!/usr/bin/env bash
# bench/spawn.sh: spawn latency of a one-shot sandboxed /bin/true per backend, against
# plain /bin/true and bubblewrap, in one hyperfine run; prints medians and ratios.
# usage: bench/spawn.sh [BUILD_DIR] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-200}
AGENTD=$(readlink -f "$BUILD/agentd")
command -v hyperfine >/dev/null || { echo "hyperfine missing: run scripts/install-deps.sh" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

cmds=(
  "/bin/true"
  "$AGENTD run --backend host-direct --allow-degraded -- /bin/true"
  "$AGENTD run --backend linux-native -- /bin/true"
  "$AGENTD run --backend container -- /bin/true"
)
names=("plain" "agentd-host-direct" "agentd-linux-native" "agentd-container")
if command -v bwrap >/dev/null; then
  cmds+=("bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev /bin/true")
  names+=("bwrap")
fi

args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$OUT/r.json" "${args[@]}" >&2

/usr/bin/python3 - "$OUT/r.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
plain = res["plain"]["median"]
print(f"{'command':24} {'median ms':>10} {'p95 ms':>8} {'x plain':>8}" + ("  x bwrap" if "bwrap" in res else ""))
for name, r in res.items():
    times = sorted(r["times"])
    p95 = times[int(0.95 * (len(times) - 1))]
    line = f"{name:24} {r['median']*1e3:10.3f} {p95*1e3:8.3f} {r['median']/plain:8.2f}"
    if "bwrap" in res:
        line += f"  {r['median']/res['bwrap']['median']:7.2f}"
    print(line)
PY
