/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Which packets are the probe's: ping probes by the marker they carry, TCP/UDP
 * probes by their flow, passive traces by the filter; and what follows from a
 * match: the sk_buff remembered (NAT cannot lose it), a NAT'd tuple learned,
 * a first fragment's id kept for the later ones, an echo's identifier and
 * sequence kept for where its marker cannot be read. Needs CFG, bpf/packet.h
 * and bpf/pcap.h.
 */
#ifndef TRACEPKT_IDENTITY_H
#define TRACEPKT_IDENTITY_H

#include "current.h"

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

/*
 * The probe's packets, by sk_buff address, once recognised (filtered and
 * flow tracing): NAT and header rewrites do not lose them. Forgotten when
 * the kernel frees the packet (it reuses the address); some free paths skip
 * the tracepoints, so an entry also holds only for CFG.track_ns after it was
 * last seen, and only while the packet's tuple is the one remembered or
 * one side of it was rewritten (NAT rewrites one side at a time).
 */
struct tracked {
	__u64 seen;
	struct tp_tuple t;
	__u8 fixed[8]; /* what NAT never rewrites: TCP's sequence and acknowledgement numbers, else the first payload bytes */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct tracked);
} tp_skbs SEC(".maps");

/*
 * Flow tracing: the tuples NAT made of the probe's flow, learned from its
 * remembered sk_buffs (a DNAT'd request's new destination, so that the
 * server's reply from there is the probe's too). Both directions.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, struct tp_tuple);
	__type(value, __u64);
} tp_flows SEC(".maps");

/*
 * First fragments that matched, by what their later fragments share (IPv4
 * identification or IPv6 fragment id, protocol, addresses): later
 * fragments carry no L4 header to match, and follow the first.
 */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 family;
	__u8 proto;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct frag_key);
	__type(value, __u64);
} tp_frags SEC(".maps");

/*
 * Ping probes by what every echo of them carries besides the marker
 * (addresses, identifier, sequence), learned where the marker was read:
 * where it cannot be (it lies in a frag_list), they are recognised so.
 */
struct echo_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 id;
	__u16 seq;
	__u8 family;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct echo_key);
	__type(value, __u8);
} tp_echoes SEC(".maps");

/*
 * Packets that entered an encrypting tunnel device (WireGuard), by sk_buff
 * address: what the probe was before the device sealed it. The device
 * encrypts it in the same sk_buff and sends it on as UDP, where nothing of
 * the probe can be read; the sk_buff says it is still the probe. Forgotten
 * with the packet, like tp_skbs.
 */
struct sealed {
	__u64 seen;
	struct packet p;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct sealed);
} tp_sealed SEC(".maps");

/*
 * When each map was last written. Untraced traffic is the common case:
 * while nothing was remembered within CFG.track_ns, no entry can hold, and
 * the per-packet lookups are skipped.
 */
static volatile __u64 last_tracked_ns, last_flow_ns, last_frag_ns, last_echo_ns, last_sealed_ns;

static __always_inline bool recent(__u64 when)
{
	return when && bpf_ktime_get_ns() - when < CFG.track_ns;
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

static __always_inline bool has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

/* Fills the tuple's ports from the L4 header's first bytes (TCP and UDP only). */
static __always_inline void read_ports(struct packet *p)
{
	if (p->l4_off && has_ports(p->t.proto)) {
		p->t.sport = (p->l4[0] << 8) | p->l4[1];
		p->t.dport = (p->l4[2] << 8) | p->l4[3];
	}
}

/* What a record needs from a packet found to be the probe. */
struct probe_match {
	struct packet p;
	struct packet quoted;  /* ICMP errors: the packet they quote */
	struct tp_outer outer; /* a packet in a tunnel: the outer headers (p is the packet inside) */
	bool error;            /* an ICMP error about the probe */
};

/* Does the echo whose ICMP header is at `l4` carry the marker? 1 yes, 0 no, -1 not fetched. */
static __always_inline int marked(const struct pkt_bytes *s, __u32 n, __u32 l4)
{
	__u64 marker;

	if (!read8(s, n, l4 + CFG.marker_offset, &marker))
		return -1;
	return marker == CFG.marker;
}

static __always_inline void echo_key_of(struct echo_key *k, const struct packet *p, bool reverse)
{
	__builtin_memset(k, 0, sizeof(*k));
	copy16(k->saddr, reverse ? p->t.daddr : p->t.saddr);
	copy16(k->daddr, reverse ? p->t.saddr : p->t.daddr);
	k->id = (p->l4[4] << 8) | p->l4[5];
	k->seq = (p->l4[6] << 8) | p->l4[7];
	k->family = p->t.family;
}

/* Is this echo the probe's? By its marker, or where that is unreadable, as an echo seen marked. */
static __always_inline bool probe_echo(const struct pkt_bytes *s, __u32 n, const struct packet *p)
{
	struct echo_key k;
	int m = marked(s, n, p->l4_off);
	__u8 one = 1;

	if (m == 0)
		return false;
	echo_key_of(&k, p, false);
	if (m < 0)
		return recent(last_echo_ns) && bpf_map_lookup_elem(&tp_echoes, &k);
	/* Its answer carries the same identifier and sequence, the other way. */
	bpf_map_update_elem(&tp_echoes, &k, &one, BPF_ANY);
	echo_key_of(&k, p, true);
	bpf_map_update_elem(&tp_echoes, &k, &one, BPF_ANY);
	last_echo_ns = bpf_ktime_get_ns();
	return true;
}

static __always_inline bool same_side(const __u8 *a, __u16 ap, const __u8 *b, __u16 bp)
{
	if (ap != bp)
		return false;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return false;
	}
	return true;
}

static __always_inline void reverse_tuple(struct tp_tuple *to, const struct tp_tuple *from)
{
	*to = *from;
	copy16(to->saddr, from->daddr);
	copy16(to->daddr, from->saddr);
	to->sport = from->dport;
	to->dport = from->sport;
}

/* Compared field by field from CFG itself: a cast dropping `volatile` would
 * let clang fold the unset-at-compile-time flow to zeros. */
static __always_inline bool is_cfg_flow(const struct tp_tuple *t, bool reverse)
{
	if (t->family != CFG.flow.family || t->proto != CFG.flow.proto)
		return false;
	if (t->sport != (reverse ? CFG.flow.dport : CFG.flow.sport) || t->dport != (reverse ? CFG.flow.sport : CFG.flow.dport))
		return false;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (t->saddr[i] != (reverse ? CFG.flow.daddr[i] : CFG.flow.saddr[i]) ||
		    t->daddr[i] != (reverse ? CFG.flow.saddr[i] : CFG.flow.daddr[i]))
			return false;
	}
	return true;
}

/* Flow tracing: the probe's own tuple either way, or one NAT made of it. */
static __always_inline bool in_flow(const struct tp_tuple *t)
{
	if (is_cfg_flow(t, false) || is_cfg_flow(t, true))
		return true;
	return recent(last_flow_ns) && bpf_map_lookup_elem(&tp_flows, t);
}

static __always_inline void learn_flow(const struct tp_tuple *t)
{
	struct tp_tuple back;
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&tp_flows, t, &now, BPF_ANY);
	reverse_tuple(&back, t);
	bpf_map_update_elem(&tp_flows, &back, &now, BPF_ANY);
	last_flow_ns = now;
}

/*
 * Does the pcap filter select the packet that starts `at` bytes into what
 * was fetched (n bytes), `len` bytes long? Global: the filter is verified
 * once per program, not once per call site and path leading there.
 */
TP_GLOBAL(filter_packet)(const struct pkt_bytes *s, __u32 n, __u32 at, __u32 len)
{
	if (!s)
		return 0;
	return pcap_filter(s->b, n, at, len) != 0;
}

#ifdef TP_COMPAT
__noinline int filter_packet_slot(__u32 n, __u32 at, __u32 len)
{
	struct pkt_bytes *s = level_bytes();

	return s ? filter_packet_body(s, n, at, len) : 0;
}

static __always_inline int filter_packet(const struct pkt_bytes *s, __u32 n, __u32 at, __u32 len)
{
	return s ? filter_packet_slot(n, at, len) : 0;
}
#endif

/* A packet of what was fetched, where it starts and how long it is: what the filter looks at. */
struct filtered {
	const struct pkt_bytes *s;
	__u32 n;    /* bytes fetched */
	__u32 at;   /* where the packet starts in them */
	__u32 len;  /* its length from there */
};

static __always_inline bool matches_filter(const struct filtered *f)
{
	return !CFG.filter || filter_packet(f->s, f->n, f->at, f->len);
}

/* By the mode's own rule: the flow, or the filter. */
static __always_inline bool selected(const struct tp_tuple *t, const struct filtered *f)
{
	return CFG.match == TP_MATCH_FLOW ? in_flow(t) : matches_filter(f);
}

static __always_inline void frag_key_of(struct frag_key *k, const struct packet *p)
{
	__builtin_memset(k, 0, sizeof(*k));
	copy16(k->saddr, p->t.saddr);
	copy16(k->daddr, p->t.daddr);
	k->id = p->frag_id;
	k->family = p->t.family;
	/* IPv4's 16-bit id is unique per protocol; IPv6's 32-bit one is enough, and a later fragment's
	 * next header is the fragment header's (destination options, say), not the first's L4. */
	k->proto = p->t.family == 4 ? p->t.proto : 0;
}

/* The bytes of a packet NAT never rewrites: TCP's sequence and acknowledgement numbers; else the first payload bytes. */
static __always_inline void fixed_bytes(const struct packet *p, __u8 *out)
{
	__builtin_memcpy(out, p->t.proto == IPPROTO_TCP ? &p->l4[4] : &p->l4[8], 8);
}

/*
 * A packet remembered by its sk_buff is still the probe's while its tuple is
 * the one remembered, or one side of it changed (NAT: a new destination, or a
 * new source, never both at once), and what NAT never rewrites did not
 * change: some free paths skip the tracepoints (TCP frees an acknowledged
 * segment with __kfree_skb), and the kernel hands the address to another
 * packet, maybe the next segment of the same connection (the same tuple) or
 * another client's of the same server (a tuple that differs on one side).
 * ICMP echoes have no ports: their identifier changes with the source under
 * masquerade, so only addresses count there. In flow tracing, the rewritten
 * tuple joins the flow.
 */
static __always_inline bool remembered(struct sk_buff *skb, struct packet *p)
{
	__u64 key = (__u64)skb;
	struct tracked *t;
	bool src, dst;
	__u8 fixed[8];
	__u64 now_fixed, then_fixed;

	if (!skb || !recent(last_tracked_ns))
		return false;
	t = bpf_map_lookup_elem(&tp_skbs, &key);
	if (!t || !recent(t->seen) || t->t.family != p->t.family || t->t.proto != p->t.proto)
		return false;
	src = same_side(t->t.saddr, t->t.sport, p->t.saddr, p->t.sport);
	dst = same_side(t->t.daddr, t->t.dport, p->t.daddr, p->t.dport);
	if (!src && !dst)
		return false;
	fixed_bytes(p, fixed);
	__builtin_memcpy(&now_fixed, fixed, 8);
	__builtin_memcpy(&then_fixed, t->fixed, 8);
	if (now_fixed != then_fixed)
		return false;
	if (!(src && dst) && CFG.match == TP_MATCH_FLOW)
		learn_flow(&p->t);
	return true;
}

static __always_inline void remember(struct sk_buff *skb, const struct packet *p)
{
	__u64 key = (__u64)skb;
	struct tracked t = { .seen = bpf_ktime_get_ns(), .t = p->t };

	if (!skb) /* XDP: a frame without an sk_buff has nothing to be remembered by */
		return;
	fixed_bytes(p, t.fixed);
	bpf_map_update_elem(&tp_skbs, &key, &t, BPF_ANY);
	last_tracked_ns = t.seen;
}

/*
 * Ping probes: one of its echo requests or replies (by the marker), or an
 * ICMP error quoting one.
 */
static __always_inline bool match_marker(const struct pkt_bytes *s, __u32 n, struct probe_match *m)
{
	struct packet *p = &m->p;
	__u8 type = p->l4[0];

	if (!is_icmp(p->t.family, p->t.proto) || !p->l4_off)
		return false;
	if (is_echo(p->t.family, type))
		return probe_echo(s, n, p);
	if (!is_error(p->t.family, type) || !parse_ip(s, n, p->l4_off + ICMP_HEADER, 1, &m->quoted))
		return false;
	if (m->quoted.t.family != p->t.family || !is_icmp(p->t.family, m->quoted.t.proto) || !m->quoted.l4_off ||
	    !is_echo(p->t.family, m->quoted.l4[0]))
		return false;
	m->error = true;
	return probe_echo(s, n, &m->quoted);
}

/*
 * Filtered and flow tracing: a packet the filter or the flow selects, a
 * later fragment of one, an ICMP error quoting one, or a packet recognised
 * before (the same sk_buff, maybe rewritten by NAT since). What matches is
 * remembered. Cheapest tests first.
 */
static __always_inline bool match_selected(struct view *v, const struct pkt_bytes *s, __u32 n, __u32 at,
					   struct probe_match *m)
{
	struct packet *p = &m->p;
	struct filtered packet = { .s = s, .n = n, .at = at, .len = v->len > at ? v->len - at : 0 };

	/* An ICMP error is about the packet it quotes, whichever rule selects it. */
	if (p->l4_off && is_icmp(p->t.family, p->t.proto) && is_error(p->t.family, p->l4[0]) &&
	    parse_ip(s, n, p->l4_off + ICMP_HEADER, 1, &m->quoted) && m->quoted.t.family == p->t.family) {
		__u32 q = p->l4_off + ICMP_HEADER;
		/* Its length is the one it had (an error quotes only its start): what `greater` judges. */
		struct filtered quoted = { .s = s, .n = n, .at = q, .len = m->quoted.ip_len };

		read_ports(&m->quoted);
		m->error = true;
		if (selected(&m->quoted.t, &quoted) || selected(&p->t, &packet))
			return true;
		m->error = false;
	}
	if (p->frag_offset) {
		struct frag_key k;

		frag_key_of(&k, p);
		if (recent(last_frag_ns) && bpf_map_lookup_elem(&tp_frags, &k))
			goto ours;
		if (CFG.match == TP_MATCH_FLOW)
			return false; /* a flow is known by its ports, which later fragments lack */
	}
	if (selected(&p->t, &packet))
		goto ours;
	/* A filter on the outer packet (udp port 4789, the tunnel endpoints) selects what it carries. */
	if (at && CFG.match == TP_MATCH_FILTER) {
		struct filtered outer = { .s = s, .n = n, .at = 0, .len = v->len };

		if (matches_filter(&outer))
			goto ours;
	}
	if (remembered(v->skb, p))
		goto ours;
	return false;
ours:
	remember(v->skb, p);
	if ((p->frag_flags & TP_FRAGMENT) && !p->frag_offset) {
		struct frag_key k;
		__u64 now = bpf_ktime_get_ns();

		frag_key_of(&k, p);
		bpf_map_update_elem(&tp_frags, &k, &now, BPF_ANY);
		last_frag_ns = now;
	}
	return true;
}

#define WG_TRANSPORT_DATA 4 /* WireGuard's message type for a sealed packet: 4, then three zero bytes */
#define WG_DATA_HEADER 16    /* type, receiver index, counter */

/* A probe entering a WireGuard device (dev->rtnl_link_ops->kind): kept by its sk_buff. */
static __always_inline void seal_if_wireguard(struct sk_buff *skb, struct net_device *dev, const struct packet *p)
{
	static const char wireguard[10] = "wireguard";
	const struct rtnl_link_ops *ops = dev ? dev->rtnl_link_ops : 0;
	char kind[10] = {};
	__u64 key = (__u64)skb;
	struct sealed s = {};

	if (!ops || bpf_probe_read_kernel_str(kind, sizeof(kind), ops->kind) != sizeof(kind))
		return;
#pragma unroll
	for (int i = 0; i < sizeof(kind); i++)
		if (kind[i] != wireguard[i])
			return;
	s.seen = bpf_ktime_get_ns();
	s.p = *p;
	bpf_map_update_elem(&tp_sealed, &key, &s, BPF_ANY);
	last_sealed_ns = s.seen;
}

/*
 * Whether a WireGuard packet's size is that of the probe sealed: the header,
 * the probe padded to a multiple of 16 (at most to the device's MTU, which
 * only bounds it here), the 16-byte tag. Another packet in a reused sk_buff
 * (some free paths skip the tracepoints) is seldom that size.
 */
static __always_inline bool sealed_size(const struct packet *p, __u16 probe_len)
{
	__u32 sealed = p->ip_len - p->l4_off - UDP_HEADER - WG_DATA_HEADER - 16;
	__u32 padded = (probe_len + 15) & ~15U;

	return sealed >= probe_len && sealed <= padded;
}

/*
 * A sealed probe: UDP carrying WireGuard transport data, in an sk_buff that
 * entered a WireGuard device as the probe (the device encrypts in place and
 * the sk_buff crosses veth pairs as it is). The outer packet is what the
 * record's tunnel says; the probe is what it was when sealed.
 */
static __always_inline bool match_sealed(struct sk_buff *skb, struct probe_match *m)
{
	struct packet *p = &m->p;
	struct sealed *s;
	__u64 key = (__u64)skb;

	if (!recent(last_sealed_ns) || p->t.proto != IPPROTO_UDP || !p->l4_off || p->l4[8] != WG_TRANSPORT_DATA ||
	    p->l4[9] | p->l4[10] | p->l4[11] || p->ip_len < p->l4_off + UDP_HEADER + WG_DATA_HEADER)
		return false;
	s = bpf_map_lookup_elem(&tp_sealed, &key);
	if (!s || !recent(s->seen) || !sealed_size(p, s->p.ip_len))
		return false;
	copy16(m->outer.saddr, p->t.saddr);
	copy16(m->outer.daddr, p->t.daddr);
	m->outer.sport = p->t.sport;
	m->outer.dport = p->t.dport;
	m->outer.ip_len = p->ip_len;
	m->outer.tunnel = TP_TUNNEL_WIREGUARD;
	m->outer.family = p->t.family;
	m->outer.proto = IPPROTO_UDP;
	m->outer.ttl = p->ttl;
	*p = s->p;
	return true;
}

/*
 * Is the packet the probe? Its headers parsed (in a tunnel, the packet
 * inside: its bytes may lie further, fetched then), then the mode's own test.
 */
static __always_inline bool match_probe(struct view *v, struct probe_match *m, struct pkt_bytes *buf)
{
	struct packet *p = &m->p;
	struct pkt_bytes *s;
	__u32 n = 0, inner;

	/* A filter that reads further than the headers gets all the bytes there are to fetch at once. */
	if (CFG.match == TP_MATCH_FILTER && CFG.filter_reach > PKT_FIRST)
		s = fetch(v, buf, &n, PKT_BYTES);
	else
		s = fetch(v, buf, &n, PKT_FIRST);
	if (!s || !parse_ip(s, n, 0, 1, p))
		return false;
	read_ports(p);
	inner = parse_tunnel(s, n, p, &m->outer);
	if (inner) {
		/* Read again only when the probe inside may lie past what was read. */
		if (n < v->len && n < PKT_BYTES && inner + PKT_FIRST > n && !(s = fetch(v, buf, &n, PKT_BYTES)))
			return false;
		__builtin_memset(p, 0, sizeof(*p));
		if (!parse_ip(s, n, inner, 1, p))
			return false;
		read_ports(p);
	} else if (match_sealed(v->skb, m)) {
		return true;
	}
	if (CFG.family && CFG.family != p->t.family)
		return false;
	if (!(CFG.match == TP_MATCH_MARKER ? match_marker(s, n, m) : match_selected(v, s, n, inner, m)))
		return false;
	/* The probe readable again (decrypted): its sealed form is over, whatever comes in this sk_buff next. */
	if (recent(last_sealed_ns)) {
		__u64 key = (__u64)v->skb;

		bpf_map_delete_elem(&tp_sealed, &key);
	}
	return true;
}

/*
 * The kernel is done with this packet: its address may come back as another
 * one. Its remembered identity goes; and if this CPU was receiving it, the
 * route lookups that follow are no longer made for it.
 */
static __always_inline void forget(struct sk_buff *skb)
{
	__u64 key = (__u64)skb;
	__u32 zero = 0;
	struct current_packet *cur = bpf_map_lookup_elem(&tp_current, &zero);

	if (cur && cur->skb == key)
		cur->skb = 0;
	if (cur && cur->queued_skb == key)
		cur->queued_skb = 0;
	if (recent(last_tracked_ns))
		bpf_map_delete_elem(&tp_skbs, &key);
	if (recent(last_sealed_ns))
		bpf_map_delete_elem(&tp_sealed, &key);
}

#endif
