#!/usr/bin/env bash
# bench/microvm.sh: the microvm backend's costs (docs/microvm.md#lifecycle), each against the
# container backend and a plain fork+exec in the same run, with the ratios:
#   1. cold boot to ready: `agentd run --backend microvm` of busybox true: jail, QEMU,
#      kernel, agent HELLO, SETUP, the command, power-off, destroy (hyperfine); once with
#      the policy's files shared (virtiofsd: the default) and once without file sharing
#      (AGENTD_MICROVM_TEMPLATES=nofiles-cold);
#   2. template start: the run without file sharing started from the memory-snapshot
#      template (AGENTD_MICROVM_TEMPLATES=nofiles; the warmup builds it);
#   3. exec round trip in a running sandbox through `agentd serve` (CLI client included:
#      `agentd sandbox exec`), microvm (a sandbox from the template) against container
#      against a plain fork+exec;
#   4. per-VM host memory: the RSS of a live sandbox's QEMU (and virtiofsd where the build
#      shares files by virtiofs), and /usr/bin/time -v of a one-shot run cold and from the
#      template (its peak RSS is QEMU's: the descendants agentd waited for).
# The accelerator is the probe's (KVM only when the real guest booted under it): under KVM
# the goals are printed beside the figures (template start < 150 ms, exec < 1 ms).
# usage: bench/microvm.sh [BUILD_DIR] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-10}
AG=$(readlink -f "$BUILD/agentd")
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
[ -f "$BUILD/guest/vmlinux" ] || { echo "needs the guest: ninja -C $BUILD guest"; exit 1; }
WR=$(mktemp -d /var/tmp/agentd-bench-vm-XXXXXX)
export AGENTD_WORK_ROOT="$WR/work"
. "$(dirname "$0")/serve.sh"
# the daemon's sandboxes (exec round trip, memory): without file sharing, from the template
AGENTD_MICROVM_TEMPLATES=nofiles serve_start "$BUILD"
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR" "$WR"' EXIT

accel=$("$AG" probe --backend microvm --json | /usr/bin/python3 -c '
import json, sys
b = json.load(sys.stdin)["backends"][0]
f = b.get("platform_features", [])
print("kvm" if "accelerator-kvm" in f else "tcg" if "accelerator-tcg" in f else "unavailable: " + b.get("unavailable_reason", "?"))')
echo "microvm accelerator: $accel"
case $accel in kvm|tcg) ;; *) exit 1 ;; esac

VM=(--backend microvm --workdir /tmp -- /bin/busybox true)
CT=(--backend container -- /bin/true)
J="$WR/hf"
mkdir -p "$J"
echo "== 1, 2: one-shot run: cold boot, template start, container, fork+exec ($RUNS runs)"
hyperfine -N -w 1 -r "$RUNS" --export-json "$J/shared.json" \
	-n "microvm cold boot, files shared" "$AG run ${VM[*]}"
AGENTD_MICROVM_TEMPLATES=nofiles-cold hyperfine -N -w 1 -r "$RUNS" --export-json "$J/cold.json" \
	-n "microvm cold boot" "$AG run ${VM[*]}"
AGENTD_MICROVM_TEMPLATES=nofiles hyperfine -N -w 1 -r "$RUNS" --export-json "$J/tmpl.json" \
	-n "microvm template start" "$AG run ${VM[*]}" \
	-n "container" "$AG run ${CT[*]}" -n "fork+exec" "/bin/true"

echo "== 3: exec round trip through agentd serve ($RUNS runs)"
export AGENTD_SOCKET="$SOCK"
VID=$("$AG" sandbox create --backend microvm --workdir /tmp)
CID=$("$AG" sandbox create --backend container)
hyperfine -N -w 2 -r "$((RUNS * 3))" --export-json "$J/exec.json" \
	-n "microvm exec" "$AG sandbox exec $VID -- /bin/busybox true" \
	-n "container exec" "$AG sandbox exec $CID -- /bin/true" -n "fork+exec" "/bin/true"

echo "== 4: host memory of one live VM"
/usr/bin/python3 - "$PID" <<'PY'
import os, sys
daemon = int(sys.argv[1])
def ppid(p):
    with open(f"/proc/{p}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
def rss_kib(p):
    for l in open(f"/proc/{p}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
    return 0
tot = {}
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm = open(f"/proc/{p}/comm").read().strip()
        if not (comm.startswith("qemu-system") or comm.startswith("virtiofsd")):
            continue
        q = int(p)
        while q > 1 and q != daemon:
            q = ppid(q)
        if q == daemon:
            tot.setdefault(comm.split("-")[0], []).append(rss_kib(p))
    except (OSError, ValueError, IndexError):
        pass
for k, v in sorted(tot.items()):
    print(f"{k}: {len(v)} process(es), RSS {sum(v) / 1024:.1f} MiB")
if "virtiofsd" not in tot:
    print("virtiofsd: none found")
PY
"$AG" sandbox rm "$VID" "$CID" >/dev/null
# /usr/bin/time -v: the peak RSS of agentd run and the descendants it waited for (the jail's
# init, QEMU): QEMU's peak, a cold boot's against a template start's
for t in nofiles-cold nofiles; do
	AGENTD_MICROVM_TEMPLATES=$t /usr/bin/time -v "$AG" run "${VM[@]}" 2>"$J/time$t.txt" >/dev/null
	how=$([ $t = nofiles ] && echo "template start" || echo "cold boot, no files shared")
	grep -E "Elapsed|Maximum resident" "$J/time$t.txt" | sed "s/^\s*/agentd run ($how), with QEMU: /"
done

/usr/bin/python3 - "$J" "$accel" <<'PY'
import json, sys
j, accel = sys.argv[1], sys.argv[2]
def med(f, name):
    for r in json.load(open(f"{j}/{f}.json"))["results"]:
        if r["command"] == name:
            return r["median"] * 1000
cold, tmpl = med("cold", "microvm cold boot"), med("tmpl", "microvm template start")
shared = med("shared", "microvm cold boot, files shared")
ctr, fork = med("tmpl", "container"), med("tmpl", "fork+exec")
vx, cx, fx = med("exec", "microvm exec"), med("exec", "container exec"), med("exec", "fork+exec")
print(f"\n== medians ({accel})")
print(f"run, cold, shared   {shared:9.1f} ms   {shared / ctr:6.1f}x container  {shared / fork:8.0f}x fork+exec")
print(f"run, cold boot      {cold:9.1f} ms   {cold / ctr:6.1f}x container  {cold / fork:8.0f}x fork+exec")
print(f"run, template start {tmpl:9.1f} ms   {tmpl / ctr:6.1f}x container  {tmpl / fork:8.0f}x fork+exec"
      f"   ({cold / tmpl:.1f}x faster than cold)")
print(f"run, container      {ctr:9.1f} ms")
print(f"exec round trip     {vx:9.1f} ms   {vx / cx:6.1f}x container exec  ({cx:.1f} ms)  "
      f"{vx / fx:6.0f}x fork+exec ({fx:.2f} ms)")
if accel == "kvm":
    print(f"goals under KVM: template start < 150 ms: {'met' if tmpl < 150 else 'NOT met'}; "
          f"exec round trip (less the container's client cost) < 1 ms: "
          f"{'met' if vx - cx < 1 else 'NOT met'}")
else:
    print("KVM goals (template start < 150 ms, exec < 1 ms) not measured: no usable KVM here")
PY
