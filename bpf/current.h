/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* Which probe packet each CPU is receiving or sending: written by the hops, cleared by frees, read by routes. */
#ifndef TRACEPKT_CURRENT_H
#define TRACEPKT_CURRENT_H

/*
 * The packet this CPU is receiving, if it is the probe. Route lookups carry
 * no packet, but those made for a received packet (input routing, reverse
 * path checks, the route of an echo reply or an ICMP error it causes) run on
 * the same CPU, within its receive: this is how they are tied to the probe.
 * Every receive overwrites it.
 */
struct current_packet {
	__u64 skb; /* 0: not the probe */
	__u64 since; /* bpf_ktime_get_ns() at its receive: a slot older than CFG.current_ns is stale */
	__u32 netns;
	__u8 family;
	__u8 proto;
	__u8 saddr[16];
	__u8 daddr[16];
	/*
	 * The last packet this CPU handed to a device (net_dev_queue), if the
	 * probe: a tunnel device (noqueue, as they are made) looks up the way to
	 * its remote endpoint right after, inside its transmit. Every transmit
	 * overwrites it.
	 */
	__u64 queued_skb;
	__u64 queued_since;
	__u32 queued_netns; /* the device's namespace */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct current_packet);
} tp_current SEC(".maps");

#endif
