#!/usr/bin/env bash
# Sets up tracepkt on Debian 12 (or a derivative) as root: installs the
# Debian packages that are missing, the npm dependencies, and builds the BPF
# object, the Node-API addon and the TypeScript. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

# clang builds the CO-RE object (llvm's llvm-strip takes its DWARF out, llvm-objcopy its line info); libbpf/libelf/zlib link the addon, libpcap-dev too (tcpdump's
# filter language, compiled by libpcap at run time); the rest
# are what tracepkt and its tests run: ping sends probes, ip/nsenter build and
# enter namespaces, nft prints the rules that decided, bpftool, iptables and
# nft let the tests build rulesets and see what the kernel holds; tshark reads
# back the pcapng files tracepkt writes, chromium renders its HTML pages;
# docker.io and busybox-static run a real Docker engine in a test's own
# namespace (never started as a service: see below); debootstrap makes the minimal Debian root the
# release is installed into (and the agent's image built from); conntrack is the tests' witness of
# conntrack entries (conntrack -L); python3-kubernetes checks the Kubernetes manifests against the API;
# openssl makes the certificates of the mutual TLS tests.
PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev libpcap-dev linux-libc-dev make g++ gcc
  bpftool iproute2 iputils-ping util-linux procps nftables iptables tshark chromium tcpdump ethtool
  busybox-static debootstrap conntrack python3-kubernetes python3-yaml openssl)
# Debian's docker.io only where no Docker engine is installed (docker-ce's containerd.io conflicts with it).
command -v dockerd >/dev/null || PACKAGES+=(docker.io)

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages; tracepkt itself needs root to load eBPF)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  # Installed for the tests, Docker must not start as a service on this host (its bridge and
  # iptables rules would change the host's): services stay down while installing, and a
  # docker.io installed here is left disabled.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT # gone again whatever happens: it would hold every later service start
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  fi
fi

npm ci --no-audit --no-fund --loglevel=error
make all
echo "setup.sh: built. Run: ./bin/tracepkt demo"
