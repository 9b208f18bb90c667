#!/usr/bin/env bash
# `npm run image`: the agent as a container image, without a registry and without a Docker daemon,
# written to release/tracepkt-agent_VERSION.tar (the `docker save` format: load it with
# `docker load -i`, or on a Kubernetes node with `ctr -n k8s.io images import`).
#
# Its root file system is a minimal Debian 12 (debootstrap --variant=minbase) with the release's .deb
# installed by apt (which fetches the runtime packages it depends on, no compiler), then stripped of
# apt's lists and caches. One layer; the entry point is `tracepkt agent`, which takes its options
# from the command line (deploy/kubernetes/tracepkt.yaml gives them).
#
# Needs: root (debootstrap, chroot), debootstrap, a Debian mirror in the apt sources. The .deb is
# made first (npm run package), from the tree as it is. The image runs with the host's kernel: see the
# README, "Kubernetes", for the privileges it needs and why.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot)"
command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"

VERSION=$(node -p "require('./package.json').version")
DEB=release/tracepkt_${VERSION}_amd64.deb
tools/package.sh >/dev/null
[ -f "$DEB" ] || die "no $DEB"
MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || die "no Debian mirror in the apt sources"

WORK=$(mktemp -d /tmp/tracepkt-image.XXXXXX)
ROOT=$WORK/root
cleanup() {
  # Never delete through a mount that is still there.
  umount -l "$ROOT/proc" 2>/dev/null || true
  grep -q " $ROOT/" /proc/self/mounts || rm -rf "$WORK"
}
trap cleanup EXIT

echo "image: debootstrap bookworm from $MIRROR" >&2
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
cp "$DEB" "$ROOT/tmp/"
# Security updates too: the image runs privileged, next to everything on the node.
SECURITY=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep security | head -n1 || true)
echo "deb ${SECURITY:-http://deb.debian.org/debian-security} bookworm-security main" >>"$ROOT/etc/apt/sources.list"
mount -t proc proc "$ROOT/proc"
chroot "$ROOT" apt-get update -qq >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; die "apt-get update failed"; }
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$DEB")" >>"$WORK/apt.log" 2>&1 ||
  { tail -20 "$WORK/apt.log" >&2; die "installing the .deb failed"; }
umount "$ROOT/proc"
if chroot "$ROOT" sh -c 'command -v cc || command -v gcc || command -v clang' >/dev/null; then die "a compiler came with the packages"; fi
# What an image does not need: apt's lists and caches, documentation, the package we installed from.
chroot "$ROOT" apt-get clean
# Nor what belongs to the machine that built it (its resolver, its name, its logs).
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* "$ROOT/tmp/$(basename "$DEB")" \
  "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/cache/ldconfig/aux-cache
: >"$ROOT/etc/resolv.conf"; echo tracepkt-agent >"$ROOT/etc/hostname"

# The docker-archive: the layer, the image's configuration (named by its digest) and a manifest.
OUT=$WORK/image
mkdir -p "$OUT/layer"
tar -C "$ROOT" --numeric-owner --sort=name -cf "$OUT/layer/layer.tar" .
node - "$OUT" "$VERSION" <<'NODE'
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const [out, version] = process.argv.slice(2);
const sha = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const layer = sha(path.join(out, 'layer', 'layer.tar'));
fs.renameSync(path.join(out, 'layer'), path.join(out, layer));
const config = {
  architecture: 'amd64',
  os: 'linux',
  created: new Date().toISOString(),
  config: {
    Entrypoint: ['/usr/bin/tracepkt', 'agent'],
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    Labels: { 'org.opencontainers.image.title': 'tracepkt agent', 'org.opencontainers.image.version': version },
  },
  rootfs: { type: 'layers', diff_ids: [`sha256:${layer}`] },
  history: [{ created: new Date().toISOString(), created_by: 'tools/image.sh: debootstrap --variant=minbase bookworm; apt-get install ./tracepkt.deb' }],
};
const text = JSON.stringify(config);
const id = crypto.createHash('sha256').update(text).digest('hex');
fs.writeFileSync(path.join(out, `${id}.json`), text);
fs.writeFileSync(path.join(out, 'manifest.json'), JSON.stringify([{ Config: `${id}.json`, RepoTags: [`tracepkt-agent:${version}`], Layers: [`${layer}/layer.tar`] }]));
NODE
mkdir -p release
tar -C "$OUT" --sort=name -cf "release/tracepkt-agent_${VERSION}.tar" .
ls -l "release/tracepkt-agent_${VERSION}.tar"
