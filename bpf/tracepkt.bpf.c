// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * Kernel side of tracepkt: recognise the probe's packets wherever the kernel
 * handles them and emit one fixed record per sighting. No policy lives
 * here: what to match comes from CFG, written by user space before load.
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

/* Never read: makes clang emit struct tp_event into the object's BTF, where
 * test/unit/layout.test.ts checks src/bpf/layout.ts against it. */
const volatile struct tp_event *const tp_event_btf_anchor = 0;
const volatile struct tp_packet *const tp_packet_btf_anchor = 0;

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
	__u8 saddr[16];
	__u8 daddr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct current_packet);
} tp_current SEC(".maps");

/* Processes that send the probe (ping, registered by user space before it
 * runs): their route lookups towards the target are the probe's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} tp_senders SEC(".maps");

/*
 * ICMP and ICMPv6 echo messages share this header; errors share its first
 * four bytes. Declared here because <linux/icmp.h> drags in libc headers
 * that do not build for -target bpf.
 */
struct icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 sequence;
};

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58

#include "filter.h"
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

/* Big enough for either IP header; one read serves both families. */
union ip_headers {
	struct iphdr v4;
	struct ipv6hdr v6;
};

/* The first 14 bytes of TCP (ports, and the flags at byte 13) or UDP (ports). */
struct l4_start {
	__be16 sport;
	__be16 dport;
	__u8 seq[4]; /* TCP */
	__u8 skip[5];
	__u8 tcp_flags;
};

/* What a record needs from a packet found to be the probe. */
struct probe_match {
	union ip_headers ip;   /* the outer IP header */
	__u8 l4_more[16];      /* read with it: see l4_in_read() */
	struct icmp_echo icmp; /* the outer ICMP header */
	struct icmp_echo echo; /* the echo: the outer one, or the one an error quotes */
	__u8 family;
	__u8 ttl;
	__u8 l4proto;     /* of the packet */
	__u8 inner_proto; /* of the packet an ICMP error quotes */
	__u8 tcp_flags;
	__u16 ip_len;
	__u16 sport;    /* of the packet, or of the one an ICMP error quotes */
	__u16 dport;
	__u8 l4_rest[4]; /* TCP: its sequence number (bytes 4-7), as read by read_ports */
};

/*
 * The probe's packets, by sk_buff address, once recognised: NAT and header
 * rewrites do not lose them. Forgotten when the kernel frees the packet
 * (it reuses the address); some free paths skip the tracepoints, so an
 * entry also holds only for the same family and protocol, a port in common
 * (NAT rewrites one side at a time), and CFG.track_ns after it was last seen.
 */
struct tracked {
	__u64 seen;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct tracked);
} tp_skbs SEC(".maps");

/*
 * When a packet was last remembered in tp_skbs. Untraced traffic is the
 * common case: while nothing was remembered within CFG.track_ns, no entry
 * can hold, and the per-packet map lookups and deletes are skipped.
 */
static volatile __u64 last_tracked_ns;

static __always_inline bool tracking(void)
{
	return last_tracked_ns && bpf_ktime_get_ns() - last_tracked_ns < CFG.track_ns;
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	struct tp_stats *stats = bpf_map_lookup_elem(&tp_stats, &zero);

	if (stats)
		stats->lost++;
}

static __always_inline bool is_echo(__u8 family, __u8 type)
{
	return family == 4 ? type == ICMP_ECHO || type == ICMP_ECHOREPLY
			   : type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY;
}

static __always_inline bool is_error(__u8 family, __u8 type)
{
	return family == 4 ? type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB
			   : type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

static __always_inline bool is_icmp(__u8 family, __u8 proto)
{
	return proto == (family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
}

/*
 * Reads an IP header at l3 (`size` bytes: more reads the start of what
 * follows too); returns where its payload starts and its protocol, or NULL.
 */
static __always_inline unsigned char *l4_of(unsigned char *l3, union ip_headers *ip, __u32 size, __u8 *family,
					    __u8 *proto)
{
	if (bpf_probe_read_kernel(ip, size, l3))
		return NULL;
	if (ip->v4.version == 4) {
		if (ip->v4.frag_off & bpf_htons(0x1fff))
			return NULL;
		*family = 4;
		*proto = ip->v4.protocol;
		return l3 + ip->v4.ihl * 4;
	}
	/* Probes carry no extension headers. */
	if (ip->v4.version == 6) {
		*family = 6;
		*proto = ip->v6.nexthdr;
		return l3 + sizeof(struct ipv6hdr);
	}
	return NULL;
}

/* Does the echo at l4 carry the probe's marker? */
static __always_inline bool marked(unsigned char *l4)
{
	__u64 marker;

	return !bpf_probe_read_kernel(&marker, sizeof(marker), l4 + CFG.marker_offset) && marker == CFG.marker;
}

static __always_inline bool matches_filter(union ip_headers *ip, __u8 family, __u8 proto, __u16 sport, __u16 dport)
{
	struct filter_input in = { .family = family, .proto = proto, .sport = sport, .dport = dport };

	if (family == 4) {
		__builtin_memcpy(in.saddr, &ip->v4.saddr, 4);
		__builtin_memcpy(in.daddr, &ip->v4.daddr, 4);
	} else {
		__builtin_memcpy(in.saddr, &ip->v6.saddr, 16);
		__builtin_memcpy(in.daddr, &ip->v6.daddr, 16);
	}
	return filter_match(&in);
}

/*
 * The first 16 bytes of the outer packet's L4 header, when they came with
 * the IP header's read (a 20-byte IPv4 header, or IPv6): every packet goes
 * through here, traced or not, and one read instead of two is the cheaper.
 */
static __always_inline const __u8 *l4_in_read(struct probe_match *m)
{
	const __u8 *raw = (const __u8 *)&m->ip;

	if (m->family == 6)
		return raw + sizeof(struct ipv6hdr);
	return m->ip.v4.ihl == 5 ? raw + sizeof(struct iphdr) : NULL;
}

/* Reads the ports (and TCP flags) at l4, or from `have` (l4_in_read) when not NULL; 0 without ports. */
static __always_inline void read_ports(unsigned char *l4, const __u8 *have, __u8 proto, __u16 *sport, __u16 *dport,
				       __u8 *flags, __u8 *rest)
{
	struct l4_start h = {};

	*sport = *dport = 0;
	*flags = 0;
	__builtin_memset(rest, 0, 4);
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return;
	if (have)
		__builtin_memcpy(&h, have, sizeof(h));
	else if (bpf_probe_read_kernel(&h, proto == IPPROTO_TCP ? sizeof(h) : 4, l4))
		return;
	*sport = bpf_ntohs(h.sport);
	*dport = bpf_ntohs(h.dport);
	if (proto == IPPROTO_TCP) {
		*flags = h.tcp_flags;
		__builtin_memcpy(rest, h.seq, 4);
	}
}

/*
 * Is the IP packet at l3 the probe? Ping probes: one of its echo requests or
 * replies, or an ICMP error quoting one (errors quote the packet, marker
 * included). Filtered tracing: a packet the filter matches, an ICMP error
 * quoting one, or a packet recognised before (the same sk_buff, maybe
 * rewritten by NAT since). Cheapest tests first.
 */
static __always_inline bool match_probe(unsigned char *l3, struct probe_match *m, struct sk_buff *skb)
{
	union ip_headers inner;
	unsigned char *l4, *inner_l4;
	__u8 inner_family, inner_proto;
	__u64 key = (__u64)skb;

	l4 = l4_of(l3, &m->ip, sizeof(m->ip) + sizeof(m->l4_more), &m->family, &m->l4proto);
	if (!l4 || (CFG.family && CFG.family != m->family))
		return false;
	if (m->family == 4) {
		m->ttl = m->ip.v4.ttl;
		m->ip_len = bpf_ntohs(m->ip.v4.tot_len);
	} else {
		m->ttl = m->ip.v6.hop_limit;
		m->ip_len = bpf_ntohs(m->ip.v6.payload_len) + sizeof(struct ipv6hdr);
	}
	if (is_icmp(m->family, m->l4proto)) {
		const __u8 *have = l4_in_read(m);

		if (have)
			__builtin_memcpy(&m->icmp, have, sizeof(m->icmp));
		else if (bpf_probe_read_kernel(&m->icmp, sizeof(m->icmp), l4))
			return false;
		m->echo = m->icmp;
	}

	if (CFG.match == TP_MATCH_MARKER) {
		if (!is_icmp(m->family, m->l4proto))
			return false;
		if (is_echo(m->family, m->icmp.type))
			return marked(l4);
		if (!is_error(m->family, m->icmp.type))
			return false;
		inner_l4 = l4_of(l4 + sizeof(struct icmp_echo), &inner, sizeof(inner), &inner_family, &inner_proto);
		if (!inner_l4 || inner_family != m->family || !is_icmp(inner_family, inner_proto))
			return false;
		if (bpf_probe_read_kernel(&m->echo, sizeof(m->echo), inner_l4) || !is_echo(m->family, m->echo.type))
			return false;
		m->inner_proto = inner_proto;
		return marked(inner_l4);
	}

	read_ports(l4, l4_in_read(m), m->l4proto, &m->sport, &m->dport, &m->tcp_flags, m->l4_rest);
	if (matches_filter(&m->ip, m->family, m->l4proto, m->sport, m->dport))
		goto ours;
	if (is_icmp(m->family, m->l4proto) && is_error(m->family, m->icmp.type)) {
		inner_l4 = l4_of(l4 + sizeof(struct icmp_echo), &inner, sizeof(inner), &inner_family, &inner_proto);
		if (inner_l4 && inner_family == m->family) {
			__u16 sport, dport;
			__u8 flags, rest[4];

			read_ports(inner_l4, NULL, inner_proto, &sport, &dport, &flags, rest);
			if (matches_filter(&inner, inner_family, inner_proto, sport, dport)) {
				m->inner_proto = inner_proto;
				m->sport = sport;
				m->dport = dport;
				if (is_icmp(inner_family, inner_proto))
					bpf_probe_read_kernel(&m->echo, sizeof(m->echo), inner_l4);
				return true;
			}
		}
	}
	if (skb && tracking()) {
		struct tracked *t = bpf_map_lookup_elem(&tp_skbs, &key);

		if (t && t->family == m->family && t->proto == m->l4proto && bpf_ktime_get_ns() - t->seen < CFG.track_ns &&
		    (m->sport == t->sport || m->dport == t->dport || m->sport == t->dport || m->dport == t->sport))
			goto ours;
	}
	return false;
ours:
	if (skb) {
		struct tracked t = {
			.seen = bpf_ktime_get_ns(), .sport = m->sport, .dport = m->dport, .family = m->family, .proto = m->l4proto,
		};

		bpf_map_update_elem(&tp_skbs, &key, &t, BPF_ANY);
		last_tracked_ns = t.seen;
	}
	return true;
}

static __always_inline struct tp_event *reserve(void)
{
	struct tp_event *e = bpf_ringbuf_reserve(&tp_events, sizeof(*e), 0);

	if (!e) {
		count_lost();
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = bpf_ktime_get_ns();
	return e;
}

static __always_inline void set_device(struct tp_event *e, struct net_device *dev)
{
	if (!dev)
		return;
	e->ifindex = dev->ifindex;
	bpf_probe_read_kernel_str(e->ifname, sizeof(e->ifname), dev->name);
}

static __always_inline void copy_addr(__u8 *to, const void *from, __u8 family)
{
	if (family == 4)
		__builtin_memcpy(to, from, 4);
	else
		__builtin_memcpy(to, from, 16);
}

static __always_inline __u32 dev_netns(struct net_device *dev)
{
	return dev ? dev->nd_net.net->ns.inum : 0;
}

/* Fills what every sighting of the probe's packet records. */
static __always_inline void fill_packet(struct tp_event *e, struct probe_match *m)
{
	e->family = m->family;
	e->ttl = m->ttl;
	e->ip_len = m->ip_len;
	e->icmp_type = m->icmp.type;
	e->icmp_code = m->icmp.code;
	e->inner_type = m->echo.type;
	e->icmp_id = bpf_ntohs(m->echo.id);
	e->icmp_seq = bpf_ntohs(m->echo.sequence);
	if (is_icmp(m->family, m->l4proto))
		__builtin_memcpy(&e->l4_rest, &m->icmp.id, 4);
	else
		__builtin_memcpy(&e->l4_rest, m->l4_rest, 4);
	e->l4proto = m->l4proto;
	e->inner_proto = m->inner_proto;
	e->sport = m->sport;
	e->dport = m->dport;
	e->tcp_flags = m->tcp_flags;
	if (m->family == 4) {
		copy_addr(e->saddr, &m->ip.v4.saddr, 4);
		copy_addr(e->daddr, &m->ip.v4.daddr, 4);
	} else {
		copy_addr(e->saddr, &m->ip.v6.saddr, 6);
		copy_addr(e->daddr, &m->ip.v6.daddr, 6);
	}
}

/* Where a packet was seen: filled by each hook from what it knows. */
struct sighting {
	struct sk_buff *skb;
	struct net_device *dev; /* may be NULL */
	__u32 netns;
	__u8 kind, hook, nf_hook, nf_pf, nf_index;
	__u64 location;
	__u32 reason;
	struct xt_table *xt; /* NF_TABLE: the table that judged */
};

/* With packet bytes: the larger record, its data read from the IP header on. */
static __always_inline struct tp_event *reserve_with_data(unsigned char *l3, __u16 ip_len)
{
	struct tp_packet *p = bpf_ringbuf_reserve(&tp_events, sizeof(*p), 0);
	__u32 snap = CFG.snap_len < TP_SNAP_MAX ? CFG.snap_len : TP_SNAP_MAX;

	if (!p) {
		count_lost();
		return NULL;
	}
	__builtin_memset(&p->event, 0, sizeof(p->event));
	p->event.time_ns = bpf_ktime_get_ns();
	p->caplen = ip_len < snap ? ip_len : snap;
	if (bpf_probe_read_kernel(p->data, sizeof(p->data), l3))
		p->caplen = 0;
	return &p->event;
}

/* Emits a record if the packet at l3 is the probe; says whether it was. */
static __always_inline bool emit(unsigned char *l3, struct sighting *at, struct probe_match *m)
{
	struct tp_event *e;

	if (!match_probe(l3, m, at->skb))
		return false;
	if (!at->netns)
		at->netns = dev_netns(at->dev);
	e = CFG.snap_len ? reserve_with_data(l3, m->ip_len) : reserve();
	if (!e)
		return true;
	e->skb = (__u64)at->skb;
	e->netns = at->netns;
	e->kind = at->kind;
	e->hook = at->hook;
	e->nf_hook = at->nf_hook;
	e->nf_pf = at->nf_pf;
	e->nf_index = at->nf_index;
	e->location = at->location;
	e->reason = at->reason;
	if (at->xt) {
		struct xt_table *xt = at->xt; /* CO-RE reads on the kernel's type only, not on struct sighting */

		e->table = BPF_CORE_READ(xt, priority);
		bpf_core_read_str(e->gateway, sizeof(e->gateway), &xt->name);
	}
	fill_packet(e, m);
	set_device(e, at->dev);
	bpf_ringbuf_submit(e, 0);
	return true;
}

/* A packet seen where the kernel handles its sk_buff: on its device. */
static __always_inline struct sighting skb_sighting(struct sk_buff *skb, __u8 kind, __u8 hook)
{
	struct sighting at = {
		.skb = skb,
		.dev = skb->dev, /* its namespace is read only for a match (emit) */
		.kind = kind,
		.hook = hook,
	};

	return at;
}

/* Transmit: the IP stack has set the network header by now, while skb->data
 * already points at the link-layer header. */
SEC("tp_btf/net_dev_queue")
int BPF_PROG(tp_net_dev_queue, struct sk_buff *skb)
{
	struct probe_match m = {};
	struct sighting at = skb_sighting(skb, TP_EVENT_HOP, TP_HOOK_NET_DEV_QUEUE);

	emit(skb->head + skb->network_header, &at, &m);
	return 0;
}

/* Receive: __netif_receive_skb_core fires this before it resets the network
 * header, when skb->data points at the network header (the link-layer header
 * has been pulled). Fires once per device, bridge and its ports included.
 * Also records whether this CPU is now receiving the probe (tp_current). */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tp_netif_receive_skb, struct sk_buff *skb)
{
	__u32 zero = 0;
	struct current_packet *cur = bpf_map_lookup_elem(&tp_current, &zero);
	struct probe_match m = {};
	struct sighting at = skb_sighting(skb, TP_EVENT_HOP, TP_HOOK_NETIF_RECEIVE_SKB);

	if (!cur)
		return 0;
	if (!emit(skb->data, &at, &m)) {
		cur->skb = 0;
		return 0;
	}
	cur->skb = (__u64)skb;
	cur->since = bpf_ktime_get_ns();
	cur->netns = at.netns;
	cur->family = m.family;
	if (m.family == 4) {
		copy_addr(cur->saddr, &m.ip.v4.saddr, 4);
		copy_addr(cur->daddr, &m.ip.v4.daddr, 4);
	} else {
		copy_addr(cur->saddr, &m.ip.v6.saddr, 6);
		copy_addr(cur->daddr, &m.ip.v6.daddr, 6);
	}
	return 0;
}

/* Drops: kfree_skb fires for packets freed as dropped (consume_skb, for
 * those freed after use, is another tracepoint). Its fourth argument
 * (rx_sk, 6.12+) is not needed: three arguments work on older kernels. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb, struct sk_buff *skb, void *location, int reason)
{
	struct probe_match m = {};
	struct sighting at = skb_sighting(skb, TP_EVENT_DROP, TP_HOOK_KFREE_SKB);
	__u64 key = (__u64)skb;

	at.location = (__u64)location;
	at.reason = reason;
	emit(skb->head + skb->network_header, &at, &m);
	if (tracking())
		bpf_map_delete_elem(&tp_skbs, &key);
	return 0;
}

/* A packet freed after use: its address may come back as another packet.
 * Loaded only for filtered tracing, the one that remembers addresses. */
SEC("tp_btf/consume_skb")
int BPF_PROG(tp_consume_skb, struct sk_buff *skb)
{
	__u64 key = (__u64)skb;

	if (tracking())
		bpf_map_delete_elem(&tp_skbs, &key);
	return 0;
}

static __always_inline bool is_zero_addr(const __u8 *a, __u8 family)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i >= 4 && family == 4)
			break;
		if (a[i])
			return false;
	}
	return true;
}

static __always_inline bool same_addr(const __u8 *a, const __u8 *b, __u8 family)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i >= 4 && family == 4)
			break;
		if (a[i] != b[i])
			return false;
	}
	return true;
}

/* Compared byte by byte from CFG itself: a cast dropping `volatile` would
 * let clang fold the unset-at-compile-time target to zeros. */
static __always_inline bool is_target(const __u8 *a, __u8 family)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i >= 4 && family == 4)
			break;
		if (a[i] != CFG.target[i])
			return false;
	}
	return true;
}

/*
 * The namespace of the task running now (a sender's own route lookup runs in
 * its process). Not inlined: clang would otherwise merge this load with the
 * one from tp_current, and the verifier refuses an instruction that reads
 * through two kinds of pointer.
 */
static __noinline __u32 task_netns(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct nsproxy *ns = task->nsproxy;

	return ns ? ns->net_ns->ns.inum : 0;
}

#define LOOPBACK_IFINDEX 1

/*
 * Route lookups. A lookup is the probe's when this CPU is receiving the
 * probe and the flow is between the same two addresses (either way), or
 * when a registered sender routes towards the target (ping's own lookups:
 * its source-address probe and its sends). The sender must be doing output
 * routing in its own namespace: packets the kernel handles on the back of
 * ping's system calls (softirqs) run with ping as the current task too.
 * `lookup_netns` is the lookup's namespace where known, else 0.
 * Returns the namespace to record, 0 if not the probe's.
 */
static __always_inline __u32 route_netns(__u8 family, const __u8 *saddr, const __u8 *daddr, int iif, __u32 lookup_netns,
					 __u64 *skb)
{
	__u32 zero = 0, tgid, netns;
	struct current_packet *cur = bpf_map_lookup_elem(&tp_current, &zero);

	if (CFG.family && CFG.family != family)
		return 0;
	/* Every address the flow names (the unset source aside) is one of the
	 * packet's: the packet being received made this lookup. */
	if (cur && cur->skb && cur->family == family && bpf_ktime_get_ns() - cur->since < CFG.current_ns &&
	    (same_addr(daddr, cur->saddr, family) || same_addr(daddr, cur->daddr, family)) &&
	    (is_zero_addr(saddr, family) || same_addr(saddr, cur->saddr, family) || same_addr(saddr, cur->daddr, family))) {
		*skb = cur->skb;
		return cur->netns;
	}
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (iif != LOOPBACK_IFINDEX || !bpf_map_lookup_elem(&tp_senders, &tgid) || !is_target(daddr, family))
		return 0;
	netns = task_netns();
	return lookup_netns && lookup_netns != netns ? 0 : netns;
}

SEC("tp_btf/fib_table_lookup")
int BPF_PROG(tp_fib_table_lookup, __u32 tb_id, const struct flowi4 *flp, const struct fib_nh_common *nhc, int err)
{
	__be32 saddr = flp->saddr, daddr = flp->daddr;
	__u8 proto = flp->__fl_common.flowic_proto;
	__u8 icmp_type = flp->uli.icmpt.type, icmp_code = flp->uli.icmpt.code;
	int iif = flp->__fl_common.flowic_iif;
	struct tp_event *e;
	__u64 skb = 0;
	/* IPv4 lookups do not say their namespace; the chosen device does. */
	__u32 netns = route_netns(4, (__u8 *)&saddr, (__u8 *)&daddr, iif, nhc && !err ? dev_netns(nhc->nhc_dev) : 0, &skb);

	if (!netns)
		return 0;
	e = reserve();
	if (!e)
		return 0;
	e->kind = TP_EVENT_ROUTE;
	e->hook = TP_HOOK_FIB;
	e->netns = netns;
	e->skb = skb;
	e->family = 4;
	e->proto = proto;
	e->icmp_type = icmp_type;
	e->icmp_code = icmp_code;
	e->table = tb_id;
	e->error = err;
	e->iif = iif;
	copy_addr(e->saddr, &saddr, 4);
	copy_addr(e->daddr, &daddr, 4);
	if (nhc && !err) {
		set_device(e, nhc->nhc_dev);
		e->gw_family = nhc->nhc_gw_family;
		bpf_probe_read_kernel(e->gateway, 16, &nhc->nhc_gw);
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/fib6_table_lookup")
int BPF_PROG(tp_fib6_table_lookup, const struct net *net, const struct fib6_result *res, struct fib6_table *table,
	     const struct flowi6 *flp)
{
	struct in6_addr saddr = flp->saddr, daddr = flp->daddr;
	__u8 proto = flp->__fl_common.flowic_proto;
	__u8 icmp_type = flp->uli.icmpt.type, icmp_code = flp->uli.icmpt.code;
	int iif = flp->__fl_common.flowic_iif;
	struct fib6_nh *nh = res->nh;
	struct tp_event *e;
	__u64 skb = 0;

	if (!route_netns(6, saddr.in6_u.u6_addr8, daddr.in6_u.u6_addr8, iif, net->ns.inum, &skb))
		return 0;
	e = reserve();
	if (!e)
		return 0;
	e->kind = TP_EVENT_ROUTE;
	e->hook = TP_HOOK_FIB6;
	e->netns = net->ns.inum;
	e->skb = skb;
	e->family = 6;
	e->proto = proto;
	e->icmp_type = icmp_type;
	e->icmp_code = icmp_code;
	e->table = table ? table->tb6_id : 0;
	e->route_type = res->fib6_type;
	e->iif = iif;
	copy_addr(e->saddr, &saddr, 6);
	copy_addr(e->daddr, &daddr, 6);
	if (nh) {
		set_device(e, nh->nh_common.nhc_dev);
		e->gw_family = nh->nh_common.nhc_gw_family;
		bpf_probe_read_kernel(e->gateway, 16, &nh->nh_common.nhc_gw);
	}
	bpf_ringbuf_submit(e, 0);
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
	struct probe_match m = {};
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

	emit(skb->head + skb->network_header, &at, &m);
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

/*
 * Kernels without BPF netfilter links (before 6.4) have no checkpoints: an
 * iptables-legacy table's verdict comes from the function that evaluates
 * the table, at its return (fexit: arguments and result). Loaded only
 * there, and only for the families whose module is loaded.
 */
static __always_inline int table_verdict(void *table, struct sk_buff *skb, const struct nf_hook_state *state,
					 unsigned int verdict)
{
	struct probe_match m = {};
	struct sighting at = {
		.skb = skb,
		.dev = state->in ? state->in : state->out,
		.netns = state->net->ns.inum,
		.kind = TP_EVENT_NF_TABLE,
		.hook = TP_HOOK_XT_TABLE,
		.nf_hook = state->hook,
		.nf_pf = state->pf,
		.reason = verdict,
		.xt = table,
	};

	emit(skb->head + skb->network_header, &at, &m);
	return 0;
}

SEC("fexit/ipt_do_table")
int BPF_PROG(tp_ipt_do_table, void *table, struct sk_buff *skb, const struct nf_hook_state *state, unsigned int verdict)
{
	return table_verdict(table, skb, state, verdict);
}

SEC("fexit/ip6t_do_table")
int BPF_PROG(tp_ip6t_do_table, void *table, struct sk_buff *skb, const struct nf_hook_state *state, unsigned int verdict)
{
	return table_verdict(table, skb, state, verdict);
}
