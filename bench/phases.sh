#!/usr/bin/env bash
# bench/phases.sh: where the time of a one-shot `agentd run` goes, phase by phase. Runs
# `agentd run --trace-timing --backend BACKEND -- CMD` RUNS times and prints, for every
# mark (agentd's, its init's, the command's), the median time since main() and the median
# gap to the mark before it, in the order the marks happen.
# usage: bench/phases.sh [BUILD_DIR] [RUNS] [BACKEND] [CMD...]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-100}
BACKEND=${3:-container}
shift $(( $# < 3 ? $# : 3 ))
CMD=("$@")
[ ${#CMD[@]} -eq 0 ] && CMD=(/bin/true)
AGENTD=$(readlink -f "$BUILD/agentd")
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for _ in $(seq 5); do "$AGENTD" run --backend "$BACKEND" -- "${CMD[@]}" >/dev/null 2>&1; done
for i in $(seq "$RUNS"); do
  echo "run $i" >>"$OUT"
  "$AGENTD" run --trace-timing --backend "$BACKEND" -- "${CMD[@]}" 2>>"$OUT" >/dev/null
done
/usr/bin/python3 - "$OUT" "$RUNS" "$BACKEND" <<'PY'
import re, statistics, sys
runs, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith("run "):
        cur = {}
        runs.append(cur)
        continue
    m = re.match(r"trace:\s+([\d.]+) ms\s+\S+ ms\s+(\S+)\s+(.*)$", line.rstrip())
    if m and cur is not None:
        cur.setdefault(m.group(3), float(m.group(1)))
names = {}
for r in runs:
    for n, t in r.items():
        names.setdefault(n, []).append(t)
rows = sorted(((statistics.median(v), n, len(v)) for n, v in names.items()))
print(f"agentd run --backend {sys.argv[3]}: {sys.argv[2]} runs, medians (ms since main)")
prev = 0.0
for t, n, k in rows:
    print(f"  {t:8.3f} {t - prev:+8.3f}  {n}" + ("" if k == len(runs) else f"  ({k} runs)"))
    prev = t
PY
