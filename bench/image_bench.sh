#!/usr/bin/env bash
# bench/image_bench.sh: what an image root costs the container backend, in one hyperfine
# run: a sandbox made and destroyed through `agentd serve` (POST then DELETE
# /v1/sandboxes), and a one-shot `agentd run -- /bin/true`, each with the host's runtime as
# the root and with an image as the root (the tests' two-layer busybox image,
# tests/integration/image_util.py, imported once); prints the medians and the ratios.
# usage: bench/image_bench.sh [BUILD_DIR] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-30}
command -v hyperfine >/dev/null || { echo "hyperfine missing: run scripts/install-deps.sh" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl missing: run scripts/install-deps.sh" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/serve.sh"
serve_start "$BUILD"
export AGENTD_IMAGE_DIR="$DIR/state/images"   # the daemon's store, and the CLI's runs'
/usr/bin/python3 -c "import sys; sys.path.insert(0, '$HERE/../tests/integration'); \
import image_util; image_util.write_oci_layout('$DIR/oci')"
"$AGENTD" image import --state-dir "$DIR/state" "$DIR/oci" >/dev/null
TAG=agentd-test/busybox:two-layers
API="--unix-socket $SOCK http://agentd/v1/sandboxes"
cycle() { # one create and destroy, with the policy $1
	echo "id=\$(curl -sf $API -d '{\"backend\":\"container\",\"spec\":$1}' | sed 's/^{\"id\":\"\\([0-9a-f]*\\)\".*/\\1/') && curl -sf -X DELETE $API/\$id -o /dev/null"
}
hyperfine --warmup 2 --runs "$RUNS" --export-json "$DIR/r.json" \
  -n "create+destroy, host root" "$(cycle '{}')" \
  -n "create+destroy, image root" "$(cycle "{\"image\":\"$TAG\"}")" \
  -n "run /bin/true, host root" "$AGENTD run --backend container -- /bin/true" \
  -n "run /bin/true, image root" "$AGENTD run --backend container --image $TAG -- /bin/true" \
  -n "run /bin/true, image writable root" \
     "$AGENTD run --backend container --image $TAG --writable-root -- /bin/true"
/usr/bin/python3 - "$DIR/r.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
for k, v in r.items():
    print(f"{k:40s} {v:8.1f} ms")
for what in ("create+destroy", "run /bin/true"):
    host, img = r[f"{what}, host root"], r[f"{what}, image root"]
    print(f"{what}: image root / host root = {img / host:.2f}")
PY
