/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The filter language's interpreter (src/filter/ compiles it), shared by
 * the tracing and the mangling programs. The including object defines a
 * global `CFG` in .rodata with `filter_len` and `filter[TP_FILTER_MAX]`,
 * and IPPROTO_TCP / IPPROTO_UDP.
 */
#ifndef TRACEPKT_FILTER_H
#define TRACEPKT_FILTER_H

#include "tracepkt.h"
#include "bits.h"
#include "subprog.h"

/*
 * The filter runs with its program in .rodata, so the verifier knows every
 * instruction and walks only this filter's path. Each test is computed
 * without branches (no && or ||, no early return): a branch on packet data
 * would fork the verifier's walk at every instruction, and a 3-term filter
 * took ~15 ms to load per program. Branch-free, loading costs the same as
 * without a filter, whatever the packet.
 */

/* 1 when addr is within the instruction's network (addr & mask == net). */
static __always_inline __u32 in_net(const __u8 *addr, const volatile struct tp_filter_insn *in)
{
	__u32 diff = 0;

	for (int k = 0; k < 16; k += 4)
		diff |= (*(const __u32 *)(addr + k) ^ *(const volatile __u32 *)&in->addr[k]) &
			*(const volatile __u32 *)&in->mask[k];
	return same(diff, 0);
}

/* A packet's fields as the filter sees them (ports are 0 for other protocols). */
struct filter_input {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 family;
	__u32 proto;
	__u32 sport;
	__u32 dport;
};

/*
 * Runs CFG.filter on a packet's fields: 1 on a match. Global (not static), so
 * the verifier checks it once per program instead of once per call site and
 * per path leading there (IPv4/IPv6, packet or quoted packet: ~25 walks).
 */
TP_GLOBAL(filter_match)(const struct filter_input *p)
{
	__u32 has_ports, stack = 0;

	if (!p)
		return 0;
	has_ports = same(p->proto, IPPROTO_TCP) | same(p->proto, IPPROTO_UDP);

	for (int i = 0; i < TP_FILTER_MAX; i++) {
		const volatile struct tp_filter_insn *in = &CFG.filter[i];
		__u32 bit = 0, top, src, dst;

		if (i >= CFG.filter_len)
			break;
		src = (in->dir & TP_DIR_SRC) ? 1 : 0;
		dst = (in->dir & TP_DIR_DST) ? 1 : 0;
		switch (in->op) {
		case TP_OP_AND:
		case TP_OP_OR:
			top = stack & 1;
			stack >>= 1;
			bit = in->op == TP_OP_AND ? (stack & top) & 1 : (stack | top) & 1;
			stack = (stack & ~1u) | bit;
			continue;
		case TP_OP_NOT:
			stack ^= 1;
			continue;
		}
		switch (in->field) {
		case TP_FIELD_PROTO:
			bit = same(p->proto, in->value);
			break;
		case TP_FIELD_FAMILY:
			bit = same(p->family, in->value);
			break;
		case TP_FIELD_ADDR:
			bit = same(p->family, in->family) & ((src & in_net(p->saddr, in)) | (dst & in_net(p->daddr, in)));
			break;
		case TP_FIELD_PORT:
			bit = has_ports & ((src & same(p->sport, in->port)) | (dst & same(p->dport, in->port)));
			break;
		}
		stack = (stack << 1) | bit;
	}
	return stack & 1;
}

#ifdef TP_COMPAT
TP_ARGS_FIT(struct filter_input);

__noinline int filter_match_slot(__u32 slot)
{
	struct filter_input *in = args_at(slot);

	return in ? filter_match_body(in) : 0;
}

static __always_inline int filter_match(const struct filter_input *p)
{
	__u32 slot;
	struct filter_input *a = args_claim(&slot);
	int match = 0;

	if (a && p) {
		*a = *p;
		match = filter_match_slot(slot);
	}
	args_release();
	return match;
}
#endif

#endif
