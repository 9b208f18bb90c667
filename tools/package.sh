#!/usr/bin/env bash
# `npm run package`: a release that installs without a compiler, written to release/:
#   tracepkt_VERSION_amd64.deb   apt install ./tracepkt_*.deb   (tracepkt on PATH; depends on runtime packages only)
#   tracepkt-VERSION.tgz         npm install -g ./tracepkt-*.tgz (the prebuilt addon and the BPF objects inside;
#                                                                 needs libbpf1, libelf1, zlib1g at run time)
# Both carry the same files: the compiled JavaScript, the BPF objects (CO-RE: one build for every kernel,
# plus the objects for kernels before 5.12), and the Node-API addon under prebuilds/linux-x64/ (Node-API:
# one build for every Node from 18 on). Built here, where the compiler is.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "package: $*" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || die "builds amd64 packages only (this machine is $(uname -m))"
command -v dpkg-deb >/dev/null || die "dpkg-deb missing (Debian's dpkg)"
make all >/dev/null

VERSION=$(node -p "require('./package.json').version")
OUT=release
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
rm -rf "$OUT" && mkdir -p "$OUT"

# What the tool needs at run time, nothing else (no sources, tests, compiler inputs).
app() {
  local to=$1
  mkdir -p "$to/dist" "$to/prebuilds/linux-x64" "$to/bin"
  cp -r dist/src "$to/dist/src"
  mkdir -p "$to/dist/bpf" && cp dist/bpf/*.bpf.o "$to/dist/bpf/"
  cp build/Release/bpf_addon.node "$to/prebuilds/linux-x64/tracepkt.napi.node"
  cp bin/tracepkt "$to/bin/tracepkt"
  cp package.json README.md LICENSE "$to/"
}

# ---- the Debian package ----
DEB=$STAGE/deb
app "$DEB/usr/lib/tracepkt"
mkdir -p "$DEB/usr/bin" "$DEB/DEBIAN" "$DEB/usr/share/doc/tracepkt"
ln -s ../lib/tracepkt/bin/tracepkt "$DEB/usr/bin/tracepkt"
cp LICENSE "$DEB/usr/share/doc/tracepkt/copyright"
SIZE=$(du -sk "$DEB/usr" | cut -f1)
cat >"$DEB/DEBIAN/control" <<CONTROL
Package: tracepkt
Version: $VERSION
Architecture: amd64
Maintainer: tracepkt developers <tracepkt@users.noreply.github.com>
Installed-Size: $SIZE
Depends: nodejs (>= 18), libbpf1 (>= 1:1.1), libelf1, zlib1g, libpcap0.8 (>= 1.10), iproute2, iputils-ping, nftables, util-linux, procps
Recommends: iptables, bpftool
Section: net
Priority: optional
Homepage: https://github.com/tracepkt/tracepkt
Description: follow one packet through the Linux kernel
 tracepkt sends a probe (or watches existing traffic) and shows its journey:
 every interface and network namespace it crossed, the netfilter tables and
 rules that judged it, the routing decisions, and where and why it died.
 eBPF programs built once (CO-RE): nothing is compiled on this machine.
CONTROL
dpkg-deb --root-owner-group -Zxz --build "$DEB" "$OUT/tracepkt_${VERSION}_amd64.deb" >/dev/null

# ---- the npm tarball ----
NPM=$STAGE/npm
app "$NPM"
# The package's own manifest: what it holds, no build step on install (no binding.gyp, gypfile false).
node -e '
  const fs = require("fs"), p = JSON.parse(fs.readFileSync(process.argv[1]));
  delete p.devDependencies; delete p.scripts;
  p.files = ["dist/src", "dist/bpf", "prebuilds", "bin", "README.md", "LICENSE"];
  p.cpu = ["x64"];
  fs.writeFileSync(process.argv[1], JSON.stringify(p, null, 2) + "\n");' "$NPM/package.json"
(cd "$NPM" && npm pack --silent --pack-destination "$OLDPWD/$OUT" >/dev/null)

ls -l "$OUT"
