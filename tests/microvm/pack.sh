#!/usr/bin/env bash
# pack.sh: a hostile test initramfs — the real guest initramfs (its kernel modules) with the
# hostile agent laid over its /init (Linux unpacks concatenated archives in order, later
# entries replacing earlier ones).
#   tests/microvm/pack.sh REAL_INITRAMFS HOSTILE_INIT OUT [nohello]
set -euo pipefail
real=$1 init=$2 out=$3 mode=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
install -m 0755 "$init" "$tmp/init"
files=(init)
if [ "$mode" = nohello ]; then
	: >"$tmp/hostile-nohello"
	files+=(hostile-nohello)
fi
cp "$real" "$out.tmp"
(cd "$tmp" && printf '%s\n' "${files[@]}" | cpio --quiet -o -H newc -R 0:0) | gzip -1 >>"$out.tmp"
mv "$out.tmp" "$out"
