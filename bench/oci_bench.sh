#!/usr/bin/env bash
# bench/oci_bench.sh: what agentd's oci backend adds on top of the engine it drives. In one
# hyperfine run: a one-shot /bin/true through `agentd run` with container (host root), oci
# through runc (host root), podman and docker (a busybox image both import from a rootfs
# tar), against plain `runc run`, `podman run --rm --runtime runc` and `docker run --rm`
# of the same root; then create+destroy through the daemon (`agentd sandbox create` + `rm`)
# per backend. Prints medians and each agentd figure's ratio to its engine's own.
# Root. docker is left out (said why) when a private dockerd cannot start.
# usage: bench/oci_bench.sh [BUILD_DIR] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-10}
AGENTD=$(readlink -f "$BUILD/agentd")
for t in hyperfine podman runc busybox; do
  command -v "$t" >/dev/null || { echo "$t missing: run scripts/install-deps.sh" >&2; exit 1; }
done
OUT=$(mktemp -d /var/tmp/agentd-oci-bench-XXXXXX)
DOCKERD=""
SERVE=""
cleanup() {
  [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null || true
  podman --root "$OUT/podman" --runroot "$OUT/podman-run" rm -a -f --time=0 >/dev/null 2>&1 || true
  podman --root "$OUT/podman" --runroot "$OUT/podman-run" system reset --force >/dev/null 2>&1 || true
  if [ -n "$DOCKERD" ]; then kill "$DOCKERD" 2>/dev/null; wait "$DOCKERD" 2>/dev/null || true; fi
  umount -R -l "$OUT/docker" "$OUT/docker-exec" 2>/dev/null || true
  runc --root "$OUT/runc-state" delete -f agentd-bench-true >/dev/null 2>&1 || true
  rm -rf "$OUT"
}
trap cleanup EXIT

# the root: busybox, as a tar for the engines and a bundle for plain runc
mkdir -p "$OUT/bundle/rootfs"/{bin,etc,tmp,proc,sys,dev}
chmod 1777 "$OUT/bundle/rootfs/tmp"
cp "$(command -v busybox)" "$OUT/bundle/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$OUT/bundle/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$OUT/bundle/rootfs/etc/passwd"
tar -C "$OUT/bundle/rootfs" -cf "$OUT/rootfs.tar" .
(cd "$OUT/bundle" && runc spec)
/usr/bin/python3 - "$OUT/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = True
json.dump(c, open(sys.argv[1], "w"))
PY

IMAGE=agentd-bench/busybox:1
export AGENTD_PODMAN_ROOT="$OUT/podman" AGENTD_PODMAN_RUNROOT="$OUT/podman-run"
PODMAN="podman --root $OUT/podman --runroot $OUT/podman-run --runtime runc"
$PODMAN import "$OUT/rootfs.tar" "$IMAGE" >/dev/null
echo "{\"image\": \"localhost/$IMAGE\"}" > "$OUT/podman.json"
echo "{\"image\": \"$IMAGE\"}" > "$OUT/docker.json"

docker_why=""
if command -v dockerd >/dev/null && command -v docker >/dev/null; then
  dockerd --host "unix://$OUT/docker.sock" --data-root "$OUT/docker" --exec-root "$OUT/docker-exec" \
    --pidfile "$OUT/dockerd.pid" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --containerd-namespace agentd-bench --containerd-plugins-namespace agentd-bench-p \
    >"$OUT/dockerd.log" 2>&1 &
  DOCKERD=$!
  export DOCKER_HOST="unix://$OUT/docker.sock"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  if docker info >/dev/null 2>&1; then
    docker import "$OUT/rootfs.tar" "$IMAGE" >/dev/null
  else
    docker_why="dockerd did not start: $(tail -1 "$OUT/dockerd.log")"
    unset DOCKER_HOST
  fi
else
  docker_why="dockerd or the docker CLI is not installed"
fi

names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }
add "agentd-container" "$AGENTD run --backend container -- /bin/true"
add "agentd-oci-runc" "$AGENTD run --backend runc -- /bin/true"
add "runc-run" "runc --root $OUT/runc-state run -b $OUT/bundle agentd-bench-true"
add "agentd-oci-podman" "$AGENTD run --backend podman --policy $OUT/podman.json -- /bin/true"
add "podman-run" "$PODMAN run --rm --network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/$IMAGE /bin/true"
if [ -z "$docker_why" ]; then
  add "agentd-oci-docker" "$AGENTD run --backend docker --policy $OUT/docker.json -- /bin/true"
  add "docker-run" "docker run --rm --network=none $IMAGE /bin/true"
fi

# create+destroy through a daemon (the engine's environment is the daemon's)
"$AGENTD" serve --socket "$OUT/agentd.sock" --state-dir "$OUT/state" --destroy-on-exit \
  >"$OUT/serve.log" 2>&1 &
SERVE=$!
for _ in $(seq 100); do [ -S "$OUT/agentd.sock" ] && break; sleep 0.1; done
cd_cmd() { echo "sh -c 'id=\$(AGENTD_SOCKET=$OUT/agentd.sock $AGENTD sandbox create --backend $1 $2) && AGENTD_SOCKET=$OUT/agentd.sock $AGENTD sandbox rm \$id >/dev/null'"; }
add "create+destroy-container" "$(cd_cmd container "")"
add "create+destroy-oci-runc" "$(cd_cmd runc "")"
add "create+destroy-oci-podman" "$(cd_cmd podman "--policy $OUT/podman.json")"
[ -z "$docker_why" ] && add "create+destroy-oci-docker" "$(cd_cmd docker "--policy $OUT/docker.json")"

args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$OUT/r.json" "${args[@]}" >&2

[ -n "$docker_why" ] && echo "docker left out: $docker_why"
/usr/bin/python3 - "$OUT/r.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
peer = {"agentd-oci-runc": "runc-run", "agentd-oci-podman": "podman-run",
        "agentd-oci-docker": "docker-run", "agentd-container": "runc-run"}
print(f"{'command':28} {'median ms':>10} {'p95 ms':>8}  ratio")
for name, r in res.items():
    times = sorted(r["times"])
    p95 = times[int(0.95 * (len(times) - 1))]
    line = f"{name:28} {r['median']*1e3:10.1f} {p95*1e3:8.1f}"
    if name in peer and peer[name] in res:
        line += f"  {r['median']/res[peer[name]]['median']:.2f} x {peer[name]}"
    print(line)
PY
