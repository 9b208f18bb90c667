/* SPDX-License-Identifier: MIT */
/*
 * The contract between the mangling programs (mangle.bpf.c) and TypeScript
 * (src/mangle/): the configuration written before load and the counters.
 * The build generates TypeScript's view of it from the object's BTF
 * (tools/gen-bindings.js).
 */
#ifndef TRACEPKT_MANGLE_H
#define TRACEPKT_MANGLE_H

#include "tracepkt.h"

/* What to do to a selected packet (bits). */
enum tp_mangle_action {
	TP_MANGLE_TTL = 1,       /* set the TTL / hop limit: to `ttl`, or random (1-255) when it is 0 */
	TP_MANGLE_TCP_FLAGS = 2, /* set `tcp_flags` on TCP segments without SYN, FIN or RST; tc only (on
				  * receive, a local sender's checksum may still be for the device to finish) */
	TP_MANGLE_DROP = 4,      /* drop it */
};

/* Which packets an action applies to, besides the filter. */
enum tp_mangle_select {
	TP_SELECT_ALL = 0,
	TP_SELECT_ECHO_REPLIES = 1, /* ICMP and ICMPv6 echo replies only */
};

struct tp_mangle_config {
	__u32 ratio_ppm; /* share of selected packets acted on, in millionths (1000000: all) */
	__u8 action;     /* enum tp_mangle_action bits */
	__u8 ttl;        /* TP_MANGLE_TTL: the value, or 0 for random */
	__u8 tcp_flags;  /* TP_MANGLE_TCP_FLAGS: bits as in the TCP header's byte 13 */
	__u8 select;     /* enum tp_mangle_select */
	__u8 filter;     /* 1: a pcap filter is placed in bpf/pcap.h's slot; 0: every packet */
	__u8 pad;
	__u16 filter_reach; /* bytes of the frame the filter may read: the transmit path makes them readable */
};

/* Per-CPU counters, summed by user space. */
struct tp_mangle_stats {
	__u64 seen;     /* packets through the hook */
	__u64 selected; /* the action applies (TCP flags: a segment they would change) and the filter matches */
	__u64 altered;  /* rewritten */
	__u64 dropped;  /* dropped */
};

#endif
