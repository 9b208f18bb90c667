// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * Kernel side of tracepkt: recognise the probe's packets wherever the kernel
 * handles them and emit one fixed record per sighting. No policy lives
 * here: what to match comes from CFG, written by user space before load.
 * One CO-RE object, one unit per concern, each included once:
 *
 *   packet.h    reading a packet past the linear part, parsing its headers
 *   pcap.h      the slot a pcap-filter expression is placed in (src/filter/)
 *   tunnel.h    the packet inside an encapsulation (VXLAN, Geneve, GRE, IP in IP)
 *   identity.h  which packets are the probe's (marker, flow, filter), what follows a match
 *   conntrack.h the packet's conntrack entry, read for its records
 *   records.h   the ring buffer and the records (bpf/tracepkt.h)
 *   hops.h      transmit and receive on every device
 *   drops.h     the kernel freeing the probe's packet
 *   routes.h    the route lookups made for it
 *   neighbours.h the packet waiting for its next hop to answer ARP / neighbour discovery
 *   netfilter.h checkpoints and iptables-legacy verdicts
 *   programs.h  what the XDP and tc programs on the path returned for it (fexit on them)
 */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "kernel.h"
#include "tracepkt.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile struct tp_config CFG = {};

/*
 * Never read: they make clang emit the records' types into the object's BTF,
 * from which the build generates their TypeScript view (tools/gen-bindings.js).
 */
const volatile struct tp_hop *const tp_hop_btf_anchor = 0;
const volatile struct tp_drop *const tp_drop_btf_anchor = 0;
const volatile struct tp_checkpoint *const tp_checkpoint_btf_anchor = 0;
const volatile struct tp_table_verdict *const tp_table_verdict_btf_anchor = 0;
const volatile struct tp_route *const tp_route_btf_anchor = 0;
const volatile struct tp_neigh *const tp_neigh_btf_anchor = 0;
const volatile struct tp_snapshot *const tp_snapshot_btf_anchor = 0;
const volatile struct tp_prog_return *const tp_prog_return_btf_anchor = 0;
const volatile enum tp_limits tp_limits_btf_anchor = 0;
const volatile enum tp_event_kind tp_event_kind_btf_anchor = 0;
const volatile enum tp_hook tp_hook_btf_anchor = 0;
const volatile enum tp_frag_flags tp_frag_flags_btf_anchor = 0;
const volatile enum tp_match tp_match_btf_anchor = 0;
const volatile enum tp_reader tp_reader_btf_anchor = 0;
const volatile enum tp_tunnel tp_tunnel_btf_anchor = 0;
const volatile enum tp_ct_presence tp_ct_presence_btf_anchor = 0;

#include "packet.h"
#include "pcap.h"
#include "tunnel.h"
#include "identity.h"
#include "conntrack.h"
#include "records.h"
#include "hops.h"
#include "drops.h"
#include "routes.h"
#include "neighbours.h"
#include "netfilter.h"
#include "programs.h"
