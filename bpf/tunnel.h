/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Encapsulations: where the packet inside a tunnel starts. Overlays carry
 * container traffic between nodes in VXLAN or Geneve (UDP), GRE, or IP in
 * IP; on the underlay the probe is the packet inside, and the outer headers
 * say where the tunnel takes it. Which UDP ports carry tunnels is user
 * space's choice (CFG.udp_tunnels). Needs CFG and bpf/packet.h.
 */
#ifndef TRACEPKT_TUNNEL_H
#define TRACEPKT_TUNNEL_H

#define IPPROTO_IPIP 4
#define IPPROTO_IPV6 41
#define IPPROTO_GRE 47
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_P_TEB 0x6558 /* transparent Ethernet bridging: an Ethernet frame inside */
#define GRE_CSUM 0x8000
#define GRE_KEY 0x2000
#define GRE_SEQ 0x1000
#define ETH_HEADER 14
#define VLAN_HEADER 4
#define UDP_HEADER 8
#define VXLAN_HEADER 8
#define GENEVE_HEADER 8

static __always_inline __u32 b24(const struct pkt_bytes *s, __u32 i)
{
	return ((__u32)b8(s, i) << 16) | ((__u32)b8(s, i + 1) << 8) | b8(s, i + 2);
}

static __always_inline __u32 b32(const struct pkt_bytes *s, __u32 i)
{
	return ((__u32)b16(s, i) << 16) | b16(s, i + 2);
}

static __always_inline bool is_ip_type(__u16 type)
{
	return type == ETH_P_IP || type == ETH_P_IPV6;
}

/* The IP packet inside the Ethernet frame at `at` (one or two VLAN tags skipped), or 0. */
static __always_inline __u32 past_ethernet(const struct pkt_bytes *s, __u32 n, __u32 at)
{
	__u32 type_at = at + 12;

	for (int i = 0; i < 2; i++) {
		__u16 type;

		if (type_at + 2 > n)
			return 0;
		type = b16(s, type_at);
		if (is_ip_type(type))
			return type_at + 2;
		if (type != ETH_P_8021Q && type != ETH_P_8021AD)
			return 0;
		type_at += VLAN_HEADER;
	}
	return 0;
}

/* What CFG.udp_tunnels names the UDP port: a tunnel, or TP_TUNNEL_NONE. */
static __always_inline __u8 udp_tunnel(__u16 port)
{
	for (int i = 0; i < TP_UDP_TUNNELS; i++) {
		if (!CFG.udp_tunnels[i].port)
			break;
		if (CFG.udp_tunnels[i].port == port)
			return CFG.udp_tunnels[i].tunnel;
	}
	return TP_TUNNEL_NONE;
}

/*
 * If the packet parsed as `outer` carries another inside (a tunnel), fills
 * `o` from the outer headers and returns where the inner IP header starts
 * in the fetched bytes; else 0. Fragments of an outer packet are not looked
 * into (only the first holds the inner headers, and it is the probe's only
 * once reassembled). Global: checked once per program.
 */
TP_GLOBAL(parse_tunnel)(const struct pkt_bytes *s, __u32 n, const struct packet *outer, struct tp_outer *o)
{
	__u32 l4, at = 0, id = 0;
	__u8 tunnel = TP_TUNNEL_NONE;

	if (!s || !outer || !o || !outer->l4_off || (outer->frag_flags & TP_FRAGMENT))
		return 0;
	l4 = outer->l4_off;
	if (l4 >= PKT_BYTES)
		return 0;
	if (outer->t.proto == IPPROTO_UDP) {
		__u32 h = l4 + UDP_HEADER;

		tunnel = udp_tunnel(outer->t.dport);
		if (tunnel == TP_TUNNEL_NONE || h + 8 > n)
			return 0;
		if (tunnel == TP_TUNNEL_VXLAN) {
			if (!(b8(s, h) & 0x08)) /* the I flag: a valid VNI */
				return 0;
			id = b24(s, h + 4);
			at = past_ethernet(s, n, h + VXLAN_HEADER);
		} else {
			__u16 type = b16(s, h + 2);
			__u32 inner = h + GENEVE_HEADER + (b8(s, h) & 0x3f) * 4;

			id = b24(s, h + 4);
			at = type == ETH_P_TEB ? past_ethernet(s, n, inner) : is_ip_type(type) ? inner : 0;
		}
	} else if (outer->t.proto == IPPROTO_GRE) {
		__u16 flags, type;

		if (l4 + 4 > n)
			return 0;
		flags = b16(s, l4);
		type = b16(s, l4 + 2);
		/* Only checksum, key and sequence number: routing, strict source routes, recursion
		 * and other versions (PPTP's) are not the GRE tunnels carry. */
		if (flags & 0x4fff)
			return 0;
		at = l4 + 4 + ((flags & GRE_CSUM) ? 4 : 0);
		if (flags & GRE_KEY) {
			id = b32(s, at);
			at += 4;
		}
		at += (flags & GRE_SEQ) ? 4 : 0;
		if (type == ETH_P_TEB) {
			tunnel = TP_TUNNEL_GRETAP;
			at = past_ethernet(s, n, at);
		} else if (is_ip_type(type)) {
			tunnel = TP_TUNNEL_GRE;
		} else {
			return 0;
		}
	} else if (outer->t.proto == IPPROTO_IPIP || outer->t.proto == IPPROTO_IPV6) {
		tunnel = TP_TUNNEL_IPIP;
		at = l4;
	}
	if (!at || at >= PKT_BYTES)
		return 0;
	copy16(o->saddr, outer->t.saddr);
	copy16(o->daddr, outer->t.daddr);
	o->tunnel_id = id;
	o->sport = outer->t.sport;
	o->dport = outer->t.dport;
	o->ip_len = outer->ip_len;
	o->tunnel = tunnel;
	o->family = outer->t.family;
	o->proto = outer->t.proto;
	o->ttl = outer->ttl;
	return at;
}

#ifdef TP_COMPAT
struct parse_tunnel_args {
	struct packet outer;
	struct tp_outer o;
};
TP_ARGS_FIT(struct parse_tunnel_args);

__noinline int parse_tunnel_slot(__u32 slot, __u32 n)
{
	struct parse_tunnel_args *a = args_at(slot);
	struct pkt_bytes *s = level_bytes();

	return a && s ? parse_tunnel_body(s, n, &a->outer, &a->o) : 0;
}

static __always_inline int parse_tunnel(const struct pkt_bytes *s, __u32 n, const struct packet *outer, struct tp_outer *o)
{
	__u32 slot;
	struct parse_tunnel_args *a = args_claim(&slot);
	int at = 0;

	if (a && s && outer && o) {
		a->outer = *outer;
		a->o = *o;
		at = parse_tunnel_slot(slot, n);
		*o = a->o;
	}
	args_release();
	return at;
}
#endif

#endif
