#!/usr/bin/env bash
# build-guest.sh: the micro-VM's kernel and initramfs, from Debian packages at build time.
#   scripts/build-guest.sh BUILDDIR [AGENT]   (AGENT: the static agentd-guest, default
#                                              BUILDDIR/src/guest/agentd-guest)
# Writes BUILDDIR/guest/{vmlinux,initramfs.cpio.gz,manifest}. The kernel package
# (linux-image-cloud-amd64's versioned dependency) and busybox-static are fetched with
# `apt-get download` into a cache (AGENTD_GUEST_CACHE, default /var/cache/agentd-guest) and
# unpacked there with `dpkg-deb -x`: nothing is installed, /boot and the boot loader are
# never touched, and a rebuild with the cache filled needs no network.
set -euo pipefail

BUILD=$(realpath "${1:?usage: build-guest.sh BUILDDIR [AGENT]}")
AGENT=$(realpath "${2:-$BUILD/src/guest/agentd-guest}")
CACHE=${AGENTD_GUEST_CACHE:-/var/cache/agentd-guest}
OUT=$BUILD/guest
# What the guest loads, in this order where they are modules (=m); built-ins are skipped.
MODULES=(virtio_ring virtio virtio_mmio virtio_console virtio_blk virtio_balloon fuse virtiofs)

die() { echo "build-guest: $*" >&2; exit 1; }
[ -x "$AGENT" ] || die "no agent at $AGENT (build it first: ninja -C $BUILD agentd-guest)"
for t in apt-get apt-cache dpkg-deb cpio gzip lz4 readelf sha256sum; do
	command -v "$t" >/dev/null || die "$t is missing (scripts/install-deps.sh installs it)"
done
mkdir -p "$CACHE/debs" "$OUT"

# The candidate version of a package, or the newest one already in the cache when apt knows
# nothing (offline, or no package lists yet).
candidate() {
	local v
	v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
	[ -n "$v" ] && [ "$v" != "(none)" ] && { echo "$v"; return; }
	# shellcheck disable=SC2012
	ls "$CACHE/debs/$1"_*.deb 2>/dev/null | sort -V | tail -1 | sed -E "s|.*/$1_([^_]*)_.*|\1|; s|%3a|:|"
}

# The .deb of package $1 at version $2, downloaded once.
fetch() {
	local deb="$CACHE/debs/$1_${2//:/%3a}_amd64.deb"
	if [ ! -s "$deb" ]; then
		# stale package lists name versions the mirror dropped: refresh them once
		(cd "$CACHE/debs" && apt-get download -q "$1=$2" >/dev/null 2>&1) ||
			{ apt-get update -qq >/dev/null 2>&1 || true
			  (cd "$CACHE/debs" && apt-get download -q "$1=$2" >/dev/null 2>&1); } ||
			die "apt-get download $1=$2 failed (no network, or no such version)"
	fi
	[ -s "$deb" ] || die "no $deb after apt-get download"
	echo "$deb"
}

# Unpacks a .deb once into the cache; prints the directory.
unpack() {
	local dir="$CACHE/x/$(basename "$1" .deb)"
	if [ ! -e "$dir/.done" ]; then
		rm -rf "$dir" && mkdir -p "$dir"
		dpkg-deb -x "$1" "$dir"
		touch "$dir/.done"
	fi
	echo "$dir"
}

# The versioned kernel package behind the linux-image-cloud-amd64 meta-package.
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kpkg" ]; then
	# shellcheck disable=SC2012
	kpkg=$(ls "$CACHE/debs" 2>/dev/null | grep -E '^linux-image-[0-9].*-cloud-amd64_' | sort -V | tail -1 | cut -d_ -f1)
fi
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 (run apt-get update) and nothing cached"
kver_pkg=$(candidate "$kpkg")
bver=$(candidate busybox-static)
[ -n "$kver_pkg" ] && [ -n "$bver" ] || die "no version for $kpkg or busybox-static"
kdir=$(unpack "$(fetch "$kpkg" "$kver_pkg")")
bdir=$(unpack "$(fetch busybox-static "$bver")")

# The kernel and its modules must be the same build.
kver=${kpkg#linux-image-}
vmlinuz="$kdir/boot/vmlinuz-$kver"
moddir="$kdir/lib/modules/$kver"
[ -f "$vmlinuz" ] || die "$vmlinuz missing from $kpkg"
[ -d "$moddir" ] || die "modules dir $moddir missing: kernel and modules versions differ"

# The uncompressed ELF inside the bzImage (as the kernel's scripts/extract-vmlinux finds it):
# try each compressed payload's magic, keep the first that decompresses to an ELF.
extract_vmlinux() {
	local img=$1 out=$2 magic cmd off
	for pair in '\x02\x21\x4c\x18:lz4 -dc' '\x1f\x8b\x08:gzip -dc' '\xfd\x37\x7a\x58\x5a\x00:xz -dc' \
		'\x28\xb5\x2f\xfd:zstd -dcq'; do
		magic=${pair%%:*} cmd=${pair#*:}
		for off in $(LC_ALL=C grep -aboP "$magic" "$img" | cut -d: -f1); do
			tail -c +$((off + 1)) "$img" | $cmd >"$out" 2>/dev/null || true
			if [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
				return 0
			fi
		done
	done
	return 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# extracted once per kernel package, beside its unpacked files
if [ ! -s "$kdir/vmlinux" ]; then
	extract_vmlinux "$vmlinuz" "$tmp/vmlinux" || die "no ELF kernel found inside $vmlinuz"
	cp "$tmp/vmlinux" "$kdir/vmlinux.part" && mv "$kdir/vmlinux.part" "$kdir/vmlinux"
fi
cp "$kdir/vmlinux" "$tmp/vmlinux"
LC_ALL=C grep -aq "Linux version $kver " "$tmp/vmlinux" || die "vmlinux is not version $kver"
# QEMU boots an ELF kernel only through its PVH entry (XEN_ELFNOTE_PHYS32_ENTRY, type 18).
readelf -n "$tmp/vmlinux" | grep -A1 -w Xen | grep -qiE '0x00000012|PHYS32_ENTRY' ||
	die "vmlinux has no PVH entry note (CONFIG_PVH)"

# The modules: each with its depends= closure, dependencies first; vermagic checked.
root="$tmp/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,mnt,root,etc,lib/modules/"$kver"}
declare -A seen=()
order=()
add_module() {
	local name=$1 ko deps
	[ -n "${seen[$name]:-}" ] && return 0
	seen[$name]=1
	if grep -qE "/${name//_/[_-]}\.ko(\..*)?$" "$moddir/modules.builtin"; then
		return 0 # built in
	fi
	ko=$(find "$moddir/kernel" -name "$name.ko" -o -name "${name//_/-}.ko" | head -1)
	[ -n "$ko" ] || die "module $name is neither built in nor in $moddir"
	LC_ALL=C grep -aq "vermagic=$kver " "$ko" || die "$ko is not built for $kver"
	deps=$(LC_ALL=C grep -ao -m1 'depends=[A-Za-z0-9_,-]*' "$ko" | head -c 4096 | sed -n '1s/^depends=//p')
	for d in ${deps//,/ }; do add_module "$d"; done
	order+=("${ko#"$moddir"/}")
}
for m in "${MODULES[@]}"; do add_module "$m"; done
: >"$root/lib/modules/$kver/modules.dep"
for rel in "${order[@]}"; do
	mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
	cp "$moddir/$rel" "$root/lib/modules/$kver/$rel"
	echo "$rel:" >>"$root/lib/modules/$kver/modules.dep" # in load order: dependencies first
done

# busybox and its applet links, the agent as /init.
cp "$bdir/bin/busybox" "$root/bin/busybox"
for applet in $("$bdir/bin/busybox" --list-full); do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
install -m 0755 -s "$AGENT" "$root/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9n >"$tmp/initramfs.cpio.gz"

mv "$tmp/vmlinux" "$OUT/vmlinux"
mv "$tmp/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
{
	echo "kernel_version=$kver"
	echo "kernel_package=$kpkg $kver_pkg"
	echo "busybox_package=busybox-static $bver"
	echo "modules=${order[*]}"
	(cd "$OUT" && sha256sum vmlinux initramfs.cpio.gz) | awk '{print "sha256_" $2 "=" $1}'
	echo "sha256_agentd-guest=$(sha256sum "$AGENT" | cut -d' ' -f1)"
} >"$OUT/manifest"
echo "build-guest: $OUT (kernel $kver, ${#order[@]} modules)"
