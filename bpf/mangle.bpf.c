// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * `tracepkt mangle`: alter or drop a share of the packets CFG selects, to
 * reproduce field bugs. XDP on a device's receive path, tc (a tcx link, or a
 * clsact filter on older kernels) on its transmit path. Checksums stay
 * valid. No policy: what to select and what to do comes from CFG, written by
 * user space before load (src/mangle/).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "mangle.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile struct tp_mangle_config CFG = {};

/* Never read: the enums' values reach the object's BTF, from which the build generates their TypeScript view. */
const volatile enum tp_mangle_action tp_mangle_action_btf_anchor = 0;
const volatile enum tp_mangle_select tp_mangle_select_btf_anchor = 0;
const volatile enum tp_limits tp_limits_btf_anchor = 0;

#include "pcap.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_mangle_stats);
} tp_mangle_counters SEC(".maps");

#define ICMP_ECHOREPLY 0
#define ICMPV6_ECHO_REPLY 129
#define TCP_FLAGS_OFFSET 13 /* the byte with FIN, SYN, RST, PSH, ACK, URG */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_CHECK_OFFSET 16
#define RATIO_ALL 1000000
#define HEADERS (sizeof(struct ethhdr) + 8 + sizeof(struct ipv6hdr) + 20) /* what the actions read and write: two tags at most */

/* A packet's headers within [data, end): l4 is NULL when not reachable. */
struct headers {
	struct iphdr *v4;
	struct ipv6hdr *v6;
	__u8 *l4;
	__u8 proto;
};

/* An 802.1Q / 802.1ad tag in the frame (no offload took it out): its TCI, then the protocol it carries. */
struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

static __always_inline bool parse(void *data, void *end, struct headers *h)
{
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__be16 proto;

	h->v4 = NULL;
	h->v6 = NULL;
	h->l4 = NULL;
	if ((void *)(eth + 1) > end)
		return false;
	proto = eth->h_proto;
	/* One or two tags stepped over: a filter may select by them (vlan 10), the action is on the IP packet. */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_tag *tag = l3;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(tag + 1) > end)
			return false;
		proto = tag->proto;
		l3 = tag + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return false;
		h->v4 = ip;
		h->proto = ip->protocol;
		if (!(ip->frag_off & bpf_htons(0x1fff))) /* later fragments carry no L4 header */
			h->l4 = (__u8 *)ip + ip->ihl * 4;
		return true;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return false;
		h->v6 = ip6;
		h->proto = ip6->nexthdr; /* extension headers: not followed */
		h->l4 = (__u8 *)(ip6 + 1);
		return true;
	}
	return false;
}

/*
 * Does CFG select this frame (`len` bytes, of which [data, end) are readable):
 * the action applies to it (for TCP flags: would change it), and the filter
 * matches?
 */
static __always_inline bool selected(struct headers *h, void *data, void *end, __u32 len)
{
	__u8 *l4 = h->l4;

	if (CFG.action & TP_MANGLE_TCP_FLAGS) {
		/* only segments it would change: not SYN, FIN or RST, not with the flags already */
		if (h->proto != IPPROTO_TCP || !l4 || l4 + 20 > (__u8 *)end)
			return false;
		if (l4[TCP_FLAGS_OFFSET] & (TCP_SYN | TCP_FIN | TCP_RST) ||
		    (l4[TCP_FLAGS_OFFSET] | CFG.tcp_flags) == l4[TCP_FLAGS_OFFSET])
			return false;
	}
	if (CFG.select == TP_SELECT_ECHO_REPLIES) {
		if (!l4 || l4 + 1 > (__u8 *)end)
			return false;
		if (h->v4 ? h->proto != IPPROTO_ICMP || l4[0] != ICMP_ECHOREPLY
			  : h->proto != IPPROTO_ICMPV6 || l4[0] != ICMPV6_ECHO_REPLY)
			return false;
	}
	/* The frame from its Ethernet header, read in place: the filter is compiled for Ethernet. */
	return !CFG.filter || pcap_filter(data, (__u64)end, 0, len) != 0;
}

static __always_inline bool by_chance(void)
{
	return CFG.ratio_ppm >= RATIO_ALL || bpf_get_prandom_u32() % RATIO_ALL < CFG.ratio_ppm;
}

/* RFC 1624: the checksum after one 16-bit word of what it covers changed from `from` to `to`. */
static __always_inline void csum_replace(__sum16 *sum, __be16 from, __be16 to)
{
	__u32 s = (__u16)~*sum + (__u16)~from + (__u16)to;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	*sum = ~(__u16)s;
}

/* TTL / hop limit to CFG.ttl, or random (1-255); the IPv4 header checksum follows. */
static __always_inline void set_ttl(struct headers *h)
{
	__u8 ttl = CFG.ttl ? CFG.ttl : 1 + bpf_get_prandom_u32() % 255;

	if (h->v4) {
		__be16 *word = (__be16 *)&h->v4->ttl; /* ttl and protocol share a checksummed word */
		__be16 before = *word;

		h->v4->ttl = ttl;
		csum_replace(&h->v4->check, before, *word);
	} else if (h->v6) { /* one of the two is set; said again for the verifier, which cannot tell */
		h->v6->hop_limit = ttl;
	}
}

static __always_inline struct tp_mangle_stats *counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tp_mangle_counters, &zero);
}

/* Receive path. TCP flags are not set here: see mangle.h. */
SEC("xdp")
int mangle_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct tp_mangle_stats *c = counters();
	struct headers h;

	if (!c)
		return XDP_PASS;
	c->seen++;
	if (!parse(data, end, &h) || !selected(&h, data, end, end - data) || (c->selected++, !by_chance()))
		return XDP_PASS;
	if (CFG.action & TP_MANGLE_DROP) {
		c->dropped++;
		return XDP_DROP;
	}
	if (CFG.action & TP_MANGLE_TTL) {
		set_ttl(&h);
		c->altered++;
	}
	return XDP_PASS;
}

/*
 * Transmit path. Returns TC_ACT_UNSPEC (TCX_NEXT) for packets it lets
 * through, so programs attached after it still run.
 */
SEC("tc")
int mangle_tc(struct __sk_buff *skb)
{
	struct tp_mangle_stats *c = counters();
	struct headers h;
	void *data, *end;
	bool altered = false;
	__u32 want;

	if (!c)
		return TC_ACT_UNSPEC;
	c->seen++;
	/* The headers in the linear part, where they can be read and written, and what the filter reads
	 * (short packets: as they are). */
	want = CFG.filter_reach > HEADERS ? CFG.filter_reach : HEADERS;
	bpf_skb_pull_data(skb, want < skb->len ? want : skb->len); /* more than there is would pull nothing */
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if (!parse(data, end, &h) || !selected(&h, data, end, skb->len) || (c->selected++, !by_chance()))
		return TC_ACT_UNSPEC;
	if (CFG.action & TP_MANGLE_DROP) {
		c->dropped++;
		return TC_ACT_SHOT;
	}
	if (CFG.action & TP_MANGLE_TTL) {
		set_ttl(&h);
		altered = true;
	}
	if ((CFG.action & TP_MANGLE_TCP_FLAGS) && h.l4 && h.l4 + 20 <= (__u8 *)end) { /* selected() checked the rest */
		__be16 *word = (__be16 *)(h.l4 + TCP_FLAGS_OFFSET - 1); /* data offset and flags */
		__be16 before = *word;
		__u32 check = (__u32)(h.l4 - (__u8 *)data) + TCP_CHECK_OFFSET;

		h.l4[TCP_FLAGS_OFFSET] |= CFG.tcp_flags;
		/* last: the helper knows checksums the device completes later (CHECKSUM_PARTIAL) */
		bpf_l4_csum_replace(skb, check, before, *word, sizeof(*word));
		altered = true;
	}
	if (altered)
		c->altered++;
	return TC_ACT_UNSPEC;
}
