#!/usr/bin/env bash
# Installs exactly what agentd's build, demo and tests need from Debian 12.
# Idempotent: a fast no-op when every package is already present.
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build   # build
  libseccomp-dev                                 # seccomp-bpf filters (seccomp.c)
  libjansson-dev                                 # policy / JSON output
  libmicrohttpd-dev                              # agentd serve: the HTTP/1.1 server
  libsqlite3-dev                                 # agentd serve: state and audit log
  nettle-dev                                     # WebSocket SHA-1 (attach), image sha256
  libarchive-dev                                 # files API, images: tar, gzip/zstd/xz (dlopen'ed)
  tmux                                           # tests: a person's terminal (exec -it)
  libcmocka-dev                                  # unit tests
  clang libclang-rt-14-dev                       # libFuzzer + sanitizer runtimes
  python3 python3-pytest                         # integration tests
  python3-matplotlib                             # code-context tests: a plot as PNG
  nodejs                                         # code-context tests: node contexts
  iproute2 procps curl                           # tests: ip, ps; demo: curl --unix-socket
  openssl util-linux                             # network tests: TLS certificate, unshare
  hyperfine bubblewrap                           # bench/ peers and timing
  busybox-static                                 # image tests: the test images' rootfs
  # issue 13: oci-runtime
  runc crun tini                                 # oci backend: runtimes; tini-static: the init
  golang-go golang-github-opencontainers-runtime-tools-dev  # tests: the config.json validator
  golang-github-xeipuuv-gojsonschema-dev         # (runtime-spec schema, offline)
  # issue 13: oci-engine
  podman docker.io containerd                    # the oci backend's engines (podman --runtime runc, dockerd)
  mmdebstrap                                     # issue 13: agentd image build --from debian:SUITE
  # issue 14: sdk-py
  python3-mypy python3-pip python3-setuptools    # Python SDK: mypy --strict, offline pip install
  # issue 15: vm-guest — the micro-VM: QEMU, and what scripts/build-guest.sh needs to turn
  # Debian's cloud kernel and busybox-static into a PVH vmlinux and an initramfs
  qemu-system-x86 cpio lz4 binutils e2fsprogs     # (e2fsprogs: the tests' ext4 root disk)
  # issue 15: vm-map
  qemu-system-common                             # microvm: /usr/lib/qemu/virtiofsd (the guest's files)
  # issue 16: rt-engines — agentd-runc under real engines (runc, podman, containerd, docker.io above)
  conmon                                         # podman's monitor (what calls the runtime)
  python3-yaml                                   # tests: contrib/kubernetes' RuntimeClass manifest
)

# npm (tests: typescript for the TS SDK's type check, the MCP SDK for agentd mcp; both from
# committed lockfiles): Debian's package only where no npm is on the PATH: nodesource's
# nodejs bundles npm and conflicts with Debian's npm package.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
