#!/bin/bash
# The far node of two-hosts.test.ts, run inside a qemu guest of test/kernel-matrix/kvm-run
# (KVM_TAP wires its eth0 to a tap device on this machine; its root is this machine's, read-only, so it
# runs the same build). It builds its half of a VXLAN overlay (VNI 42, port 4789) with a container
# namespace c2 behind a bridge, a firewall that drops pings to c2's second address, and serves the
# agent until the test asks it to stop. Meanwhile it runs the commands the test asks for (the
# coordinator, a look at what the kernel holds): the test writes one, a word per line, to
# N.cmd; its output goes to N.out and N.err, its exit status to N.rc.
# $1: a directory shared read-write with the test.
set -euo pipefail
RW=$1
modprobe -a veth bridge vxlan nfnetlink nf_tables nf_conntrack nft_ct
ip link set eth0 address 52:54:00:12:34:56 up
ip addr add 192.168.77.2/24 dev eth0
ip netns add c2
ip link add vc2 type veth peer name eth0 netns c2
ip -n c2 link set eth0 address 02:00:00:00:00:02 up
ip -n c2 link set lo up
ip -n c2 addr add 10.200.0.2/24 dev eth0
ip -n c2 addr add 10.200.0.3/24 dev eth0
# As orchestrators do: the other container's neighbour programmed, no ARP across the tunnel first.
ip -n c2 neigh replace 10.200.0.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent
ip link add vx0 type vxlan id 42 local 192.168.77.2 remote 192.168.77.1 dstport 4789 dev eth0
ip link add br0 type bridge
ip link set vc2 master br0
ip link set vx0 master br0
ip link set vc2 up; ip link set vx0 up; ip link set br0 up
ip netns exec c2 nft -f - <<'NFT'
table ip far_fw {
  chain input {
    type filter hook input priority 0; policy accept;
    ip daddr 10.200.0.3 icmp type echo-request counter drop comment "far firewall"
  }
}
NFT
install -m 600 "$RW/token" /tmp/token
bin/tracepkt agent --listen 192.168.77.2:7447 --token-file /tmp/token --name far 2>"$RW/agent.log" &
agent=$!
for _ in $(seq 9000); do
  [ -e "$RW/stop" ] && break
  kill -0 $agent 2>/dev/null || break
  for cmd in "$RW"/*.cmd; do
    [ -e "$cmd" ] || continue
    n=${cmd%.cmd}
    mapfile -t words <"$cmd"
    rm -f "$cmd"
    "${words[@]}" >"$n.out" 2>"$n.err" && rc=0 || rc=$?
    echo $rc >"$n.rc.tmp" && mv "$n.rc.tmp" "$n.rc"
  done
  sleep 0.1
done
kill -INT $agent 2>/dev/null || true
wait $agent && rc=0 || rc=$?
# What the agent left behind: nothing of tracepkt's may stay in the kernel.
bpftool prog show 2>/dev/null | grep -c ' name tp_' >"$RW/leftover-programs" || true
{ nft list tables; ip netns exec c2 nft list tables; } 2>/dev/null | grep -c tracepkt >"$RW/leftover-tables" || true
echo $rc >"$RW/agent.rc"
