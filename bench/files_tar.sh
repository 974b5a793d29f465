#!/usr/bin/env bash
# bench/files_tar.sh: tar upload throughput of the files API (PUT .../files/tar into a
# container sandbox's workdir) against `tar -x` of the same archive into a host tmpfs dir,
# in one hyperfine run; prints MB/s of each and their ratio.
# usage: bench/files_tar.sh [BUILD_DIR] [RUNS] [MB]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-5}
MB=${3:-100}
AGENTD=$(readlink -f "$BUILD/agentd")
command -v hyperfine >/dev/null || { echo "hyperfine missing: run scripts/install-deps.sh" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl missing: run scripts/install-deps.sh" >&2; exit 1; }
OUT=$(mktemp -d /var/tmp/agentd-files-bench-XXXXXX)
SHM=$(mktemp -d /dev/shm/agentd-files-bench-XXXXXX)
DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  rm -rf "$OUT" "$SHM"
}
trap cleanup EXIT

# A tree of mixed files: 1 KiB..256 KiB sources and data (90%), a few multi-MiB blobs,
# nested directories, some executables; MB megabytes in all.
/usr/bin/python3 - "$OUT/tree" "$MB" <<'PY'
import os, random, sys
root, total = sys.argv[1], int(sys.argv[2]) << 20
rnd = random.Random(12)
made, i = 0, 0
while made < total:
    d = os.path.join(root, f"pkg{i % 40}", f"mod{i % 7}")
    os.makedirs(d, exist_ok=True)
    size = rnd.choice([1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10]) if i % 50 else 4 << 20
    size = min(size, total - made)
    with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
        f.write(os.urandom(size // 2) + bytes(size - size // 2))
    if i % 9 == 0:
        os.chmod(os.path.join(d, f"f{i}.bin"), 0o755)
    made += size
    i += 1
print(f"tree: {i} files, {made >> 20} MiB", file=sys.stderr)
PY
tar -C "$OUT/tree" -cf "$OUT/tree.tar" .
BYTES=$(stat -c %s "$OUT/tree.tar")

SOCK="$OUT/agentd.sock"
"$AGENTD" serve --socket "$SOCK" --state-dir "$OUT/state" --destroy-on-exit --max-file-size $(( (BYTES >> 20) + 64 ))M \
  >"$OUT/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
SID=$(curl -sf --unix-socket "$SOCK" -X POST http://agentd/v1/sandboxes \
  -d "{\"backend\": \"container\", \"spec\": {\"limits\": {\"max_write_bytes\": $(( 4 * BYTES )), \"max_memory_bytes\": 1073741824}}}" \
  | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
API="http://agentd/v1/sandboxes/$SID/files"

hyperfine --warmup 1 --runs "$RUNS" --export-json "$OUT/r.json" \
  -n "agentd-put-tar" \
  --prepare "curl -sf --unix-socket $SOCK -X DELETE '$API?path=up&recursive=1' >/dev/null || true" \
  "curl -sf --unix-socket $SOCK -X PUT -H 'Content-Type: application/x-tar' --data-binary @$OUT/tree.tar '$API/tar?path=up' -o /dev/null" \
  -n "tar-x-host-tmpfs" \
  --prepare "rm -rf $SHM/x && mkdir $SHM/x" \
  "tar -C $SHM/x -xf $OUT/tree.tar" >&2

# the extraction alone (the handler's time, after the body arrived): the audit's duration
curl -sf --unix-socket "$SOCK" http://agentd/v1/audit >"$OUT/audit.json"

/usr/bin/python3 - "$OUT/r.json" "$BYTES" "$OUT/audit.json" <<'PY'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
mb = int(sys.argv[2]) / 1e6
ext = [r["duration_ms"] / 1e3 for r in json.load(open(sys.argv[3]))["records"]
       if r.get("action") == "file_tar_put" and r.get("result", "").startswith("extracted")]
put, tar = res["agentd-put-tar"]["median"], res["tar-x-host-tmpfs"]["median"]
print(f"archive {mb:.1f} MB")
print(f"{'command':20} {'median s':>9} {'MB/s':>8}")
for name, t in (("agentd-put-tar", put), ("tar-x-host-tmpfs", tar)):
    print(f"{name:20} {t:9.3f} {mb / t:8.1f}")
print(f"ratio agentd/tar-x throughput: {tar / put:.2f} (end to end, the body through HTTP)")
if ext:
    e = statistics.median(ext)
    print(f"{'agentd-extract-only':20} {e:9.3f} {mb / e:8.1f}   (audit duration_ms, {len(ext)} runs)")
    print(f"ratio extract-only/tar-x throughput: {tar / e:.2f}")
PY
