#!/usr/bin/env bash
# bench/oci-runtime.sh: agentd as an OCI runtime (build/agentd-runc) against runc, in the
# same hyperfine runs, through the engines that call it and raw:
#   podman run --rm IMG /bin/true      --runtime runc  vs  --runtime agentd-runc
#   ctr run --rm IMG ID /bin/true      --runc-binary runc vs agentd-runc (runc v2 shim, a
#                                      containerd the script starts on a private socket)
#   raw: create + start + delete --force of a bundle (/bin/true), runc vs agentd-runc
# Prints each median and agentd-runc's ratio to runc's (goal: <= 1.0). Images are built
# here from busybox-static (nothing is pulled). Root. Everything lives in one temporary
# directory (podman storage, containerd root/state/socket, the runtimes' --root) and is
# removed at exit, engines stopped, cgroups removed.
# usage: bench/oci-runtime.sh [BUILD_DIR] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
AGENTD_RUNC=$(readlink -f "$BUILD")/agentd-runc
RUNC=$(command -v runc)
for t in hyperfine podman runc containerd ctr busybox; do
  command -v "$t" >/dev/null || { echo "$t missing: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x "$AGENTD_RUNC" ] || { echo "$AGENTD_RUNC missing: build first (ninja -C $BUILD)" >&2; exit 1; }
OUT=$(mktemp -d /var/tmp/agentd-rt-bench-XXXXXX)
export CG=agentd-rt-bench-$$
CTRD=""
PODMAN="podman --root $OUT/podman --runroot $OUT/podman-run --tmpdir $OUT/podman-tmp --cgroup-manager cgroupfs"
CTR="ctr --address $OUT/containerd.sock --namespace $CG"
cleanup() {
  set +e
  $PODMAN --runtime "$RUNC" rm -a -f --time=0 >/dev/null 2>&1
  $PODMAN --runtime "$RUNC" system reset --force >/dev/null 2>&1
  if [ -n "$CTRD" ]; then
    for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL "$t"; $CTR tasks delete "$t"; done >/dev/null 2>&1
    for c in $($CTR containers ls -q 2>/dev/null); do $CTR containers rm "$c"; done >/dev/null 2>&1
    kill "$CTRD"; wait "$CTRD" 2>/dev/null
  fi
  for r in "$RUNC" "$AGENTD_RUNC"; do "$r" --root "$OUT/rt-state" delete --force bench >/dev/null 2>&1; done
  grep -o " $OUT[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for d in /sys/fs/cgroup/*/"$CG"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; ; done 2>/dev/null
  rm -rf "$OUT"
}
trap cleanup EXIT

# the image: busybox-static, a rootfs tar (podman import), an OCI layout tar (ctr import)
# and a bundle (raw runtime calls)
/usr/bin/python3 - "$OUT" "$HERE/../tests/integration" <<'PY'
import json, os, subprocess, sys
out, lib = sys.argv[1], sys.argv[2]
sys.path.insert(0, lib)
import oci_engines as e
root = e.make_rootfs(os.path.join(out, "bundle", "rootfs"))
tar = os.path.join(out, "rootfs.tar")
subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", tar, "."], check=True)
e.make_oci_layout_tar(tar, os.path.join(out, "oci.tar"), e.CTR_IMAGE)
subprocess.run([e.RUNC, "spec", "--bundle", os.path.join(out, "bundle")], check=True)
p = os.path.join(out, "bundle", "config.json")
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = True
c["linux"]["cgroupsPath"] = "/" + os.environ["CG"] + "/bench"
json.dump(c, open(p, "w"))
PY
IMAGE=localhost/agentd-rt/busybox:1
CTR_IMAGE=docker.io/agentd-rt/busybox:1
$PODMAN --runtime "$RUNC" import "$OUT/rootfs.tar" "$IMAGE" >/dev/null

cat > "$OUT/containerd.toml" <<EOF
version = 2
root = "$OUT/containerd-root"
state = "$OUT/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$OUT/containerd.sock"
[ttrpc]
  address = "$OUT/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
containerd --config "$OUT/containerd.toml" >"$OUT/containerd.log" 2>&1 &
CTRD=$!
for _ in $(seq 1 120); do $CTR version >/dev/null 2>&1 && break; sleep 0.5; done
$CTR images import "$OUT/oci.tar" >/dev/null

PODOPTS="--network=none --ulimit=nofile=1024:1024 --ulimit=nproc=1024:1024 --cgroup-parent=/$CG"
CTROPTS="--runc-root $OUT/ctr-runc-root --cgroup /$CG/bench"
RAW() { echo "$1 --root $OUT/rt-state create --bundle $OUT/bundle bench </dev/null >/dev/null 2>&1 && $1 --root $OUT/rt-state start bench && $1 --root $OUT/rt-state delete --force bench"; }

hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$OUT/podman.json" \
  -n podman-runc "$PODMAN --runtime $RUNC run --rm $PODOPTS $IMAGE /bin/true" \
  -n podman-agentd-runc "$PODMAN --runtime $AGENTD_RUNC run --rm $PODOPTS $IMAGE /bin/true"
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$OUT/ctr.json" \
  -n ctr-runc "$CTR run --rm --runc-binary $RUNC $CTROPTS $CTR_IMAGE bench /bin/true" \
  -n ctr-agentd-runc "$CTR run --rm --runc-binary $AGENTD_RUNC $CTROPTS $CTR_IMAGE bench /bin/true"
hyperfine --shell=bash --warmup 2 --runs "$RUNS" --export-json "$OUT/raw.json" \
  -n raw-runc "$(RAW "$RUNC")" -n raw-agentd-runc "$(RAW "$AGENTD_RUNC")"

/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
print("\nmedians (ms) and agentd-runc / runc:")
for name in ("podman", "ctr", "raw"):
    r = {x["command"]: x["median"] * 1000 for x in json.load(open(f"{sys.argv[1]}/{name}.json"))["results"]}
    a, b = r[f"{name}-runc"], r[f"{name}-agentd-runc"]
    print(f"  {name:7s} runc {a:8.1f}   agentd-runc {b:8.1f}   ratio {b / a:5.2f}")
PY
