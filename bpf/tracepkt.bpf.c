// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * Kernel side of tracepkt: recognise the probe's packets at the net
 * tracepoints and emit one fixed record per sighting. No policy lives here:
 * what to match comes from CFG, written by user space before load.
 */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "kernel.h"
#include "tracepkt.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile struct tp_config CFG = {};

/* Never read: makes clang emit struct tp_event into the object's BTF, where
 * test/unit/layout.test.ts checks src/bpf/layout.ts against it. */
const volatile struct tp_event *const tp_event_btf_anchor = 0;

/* One ring buffer for every program: records stay in order per CPU and
 * user space is woken once per batch. Its size is set before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} tp_events SEC(".maps");

/* Counters user space reports; per CPU, so no atomics on the hot path. */
struct tp_stats {
	__u64 lost; /* records dropped because the ring buffer was full */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_stats);
} tp_stats SEC(".maps");

/*
 * ICMP and ICMPv6 echo messages share this header. Declared here because
 * <linux/icmp.h> drags in libc headers that do not build for -target bpf.
 */
struct icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 sequence;
};

#define IPPROTO_ICMP 1
#define IPPROTO_ICMPV6 58
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

/* Big enough for either IP header; one read serves both families. */
union ip_headers {
	struct iphdr v4;
	struct ipv6hdr v6;
};

/* The parts of a packet a hop record needs, once it is known to be ours. */
struct probe_match {
	__u8 family;
	__u8 ttl;
	__u16 ip_len;
	unsigned char *l4;
};

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	struct tp_stats *stats = bpf_map_lookup_elem(&tp_stats, &zero);

	if (stats)
		stats->lost++;
}

/*
 * Is the IP packet at l3 one of the probe's ICMP echo requests or replies?
 * Cheapest tests first: most traffic stops at the protocol check.
 */
static __always_inline bool match_probe(unsigned char *l3, union ip_headers *ip,
					struct icmp_echo *icmp, struct probe_match *m)
{
	__u64 marker;

	if (bpf_probe_read_kernel(ip, sizeof(*ip), l3))
		return false;

	switch (ip->v4.version) {
	case 4:
		if (ip->v4.protocol != IPPROTO_ICMP || ip->v4.frag_off & bpf_htons(0x1fff))
			return false;
		m->family = 4;
		m->ttl = ip->v4.ttl;
		m->ip_len = bpf_ntohs(ip->v4.tot_len);
		m->l4 = l3 + ip->v4.ihl * 4;
		break;
	case 6:
		/* Echo probes carry no extension headers. */
		if (ip->v6.nexthdr != IPPROTO_ICMPV6)
			return false;
		m->family = 6;
		m->ttl = ip->v6.hop_limit;
		m->ip_len = bpf_ntohs(ip->v6.payload_len) + sizeof(struct ipv6hdr);
		m->l4 = l3 + sizeof(struct ipv6hdr);
		break;
	default:
		return false;
	}
	if (CFG.family && CFG.family != m->family)
		return false;

	if (bpf_probe_read_kernel(icmp, sizeof(*icmp), m->l4))
		return false;
	if (m->family == 4 ? icmp->type != ICMP_ECHO && icmp->type != ICMP_ECHOREPLY
			   : icmp->type != ICMPV6_ECHO_REQUEST && icmp->type != ICMPV6_ECHO_REPLY)
		return false;

	if (bpf_probe_read_kernel(&marker, sizeof(marker), m->l4 + CFG.marker_offset))
		return false;
	return marker == CFG.marker;
}

/* Where a record was seen: filled by each hook from what it knows. */
struct sighting {
	struct sk_buff *skb;
	struct net_device *dev; /* may be NULL at a netfilter hook */
	__u32 netns;
	__u8 kind, hook, nf_hook, nf_pf, nf_index;
};

static __always_inline void emit(unsigned char *l3, struct sighting *at)
{
	union ip_headers ip;
	struct icmp_echo icmp;
	struct probe_match m;
	struct tp_event *e;

	if (!match_probe(l3, &ip, &icmp, &m))
		return;

	e = bpf_ringbuf_reserve(&tp_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	e->skb = (__u64)at->skb;
	e->netns = at->netns;
	e->kind = at->kind;
	e->hook = at->hook;
	e->nf_hook = at->nf_hook;
	e->nf_pf = at->nf_pf;
	e->nf_index = at->nf_index;
	e->reserved = 0;
	e->family = m.family;
	e->ttl = m.ttl;
	e->icmp_type = icmp.type;
	e->icmp_code = icmp.code;
	e->ip_len = m.ip_len;
	e->icmp_id = bpf_ntohs(icmp.id);
	e->icmp_seq = bpf_ntohs(icmp.sequence);
	if (m.family == 4) {
		__builtin_memcpy(e->saddr, &ip.v4.saddr, 4);
		__builtin_memcpy(e->daddr, &ip.v4.daddr, 4);
		__builtin_memset(e->saddr + 4, 0, 12);
		__builtin_memset(e->daddr + 4, 0, 12);
	} else {
		__builtin_memcpy(e->saddr, &ip.v6.saddr, 16);
		__builtin_memcpy(e->daddr, &ip.v6.daddr, 16);
	}
	if (at->dev) {
		e->ifindex = at->dev->ifindex;
		bpf_probe_read_kernel_str(e->ifname, sizeof(e->ifname), at->dev->name);
	} else {
		e->ifindex = 0;
		e->ifname[0] = 0;
	}
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void emit_hop(struct sk_buff *skb, unsigned char *l3, __u8 hook)
{
	struct net_device *dev = skb->dev;
	struct sighting at = {
		.skb = skb,
		.dev = dev,
		.netns = dev->nd_net.net->ns.inum,
		.kind = TP_EVENT_HOP,
		.hook = hook,
	};

	emit(l3, &at);
}

/* Transmit: the IP stack has set the network header by now, while skb->data
 * already points at the link-layer header. */
SEC("tp_btf/net_dev_queue")
int BPF_PROG(tp_net_dev_queue, struct sk_buff *skb)
{
	emit_hop(skb, skb->head + skb->network_header, TP_HOOK_NET_DEV_QUEUE);
	return 0;
}

/* Receive: __netif_receive_skb_core fires this before it resets the network
 * header, when skb->data points at the network header (the link-layer header
 * has been pulled). Fires once per device, bridge and its ports included. */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tp_netif_receive_skb, struct sk_buff *skb)
{
	emit_hop(skb, skb->data, TP_HOOK_NETIF_RECEIVE_SKB);
	return 0;
}

/*
 * Netfilter checkpoints. User space attaches copy i through a BPF netfilter
 * link at a priority of its choice; seeing the probe at one checkpoint and
 * not at the next says which tables in between stopped it. Always NF_ACCEPT:
 * we watch, we never judge. Retyped to BPF_PROG_TYPE_NETFILTER before load
 * (libbpf 1.1.2 predates the section name).
 */
static __always_inline int checkpoint(struct bpf_nf_ctx *ctx, __u8 index)
{
	const struct nf_hook_state *state = ctx->state;
	struct sk_buff *skb = ctx->skb;
	struct sighting at = {
		.skb = skb,
		.dev = state->in ? state->in : state->out,
		.netns = state->net->ns.inum,
		.kind = TP_EVENT_NF_CHECKPOINT,
		.hook = TP_HOOK_NETFILTER,
		.nf_hook = state->hook,
		.nf_pf = state->pf,
		.nf_index = index,
	};

	emit(skb->head + skb->network_header, &at);
	return 1; /* NF_ACCEPT */
}

#define CHECKPOINT(i)                                        \
	SEC("netfilter")                                     \
	int tp_nf_checkpoint_##i(struct bpf_nf_ctx *ctx)     \
	{                                                    \
		return checkpoint(ctx, i);                   \
	}

CHECKPOINT(0) CHECKPOINT(1) CHECKPOINT(2) CHECKPOINT(3)
CHECKPOINT(4) CHECKPOINT(5) CHECKPOINT(6) CHECKPOINT(7)
CHECKPOINT(8) CHECKPOINT(9) CHECKPOINT(10) CHECKPOINT(11)
CHECKPOINT(12) CHECKPOINT(13) CHECKPOINT(14) CHECKPOINT(15)
