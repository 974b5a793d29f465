#!/bin/sh
# bench/adopt.sh [N] [BUILD]: the time to adopt N durable container sandboxes (default 50)
# whose owner process exited — what a restarting daemon spends per sandbox in the library
# (docs/backends.md#durable-sandboxes). Root; the build must have tests enabled.
set -eu
n=${1:-50}
build=${2:-build}
exec /usr/bin/time -f "total %e s, max RSS %M KiB" "$build/tests/test_durable" bench "$n"
