/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * What the XDP and tc programs on the path did with the packet: fexit on
 * each such program (someone else's: user space aims each copy at one
 * before load, in a second instance of this object that shares the first's
 * maps) records the program's return code when it has seen the probe.
 * Tracing a program never changes what it does. The packet is read as the
 * program left it.
 */
#ifndef TRACEPKT_PROGRAMS_H
#define TRACEPKT_PROGRAMS_H

#define ETH_HEADER 14
#define ETH_P_IP_BE 0x0008    /* htons(0x0800) */
#define ETH_P_IPV6_BE 0xDD86  /* htons(0x86DD) */

static __always_inline void prog_returned(struct sighting *at, struct view *v, __u32 copy, int ret, __u8 ingress)
{
	struct probe_match m = {};
	struct tp_prog_return *r;
	bool ours = match_probe(v, &m, claim_bytes());

	release_bytes();
	if (!ours || !(r = reserve_packet(struct tp_prog_return, TP_EVENT_PROG_RETURN, at, &m, v)))
		return;
	r->ret = ret;
	r->copy = copy;
	r->ingress = ingress;
	bpf_ringbuf_submit(r, 0);
}

/* A tc or tcx program returned: its sk_buff, seen from its network header (set on both sides by then). */
static __always_inline void tc_returned(__u32 copy, struct sk_buff *skb, int ret)
{
	struct sighting at = { .skb = skb, .l3 = skb->head + skb->network_header, .dev = skb->dev, .hook = TP_HOOK_TC, .borrowed = true };
	struct view v;

	if (!view_of(skb, at.l3, &v))
		return;
	/* Not the hook's own argument to the verifier (a traced program's context): no dynptr on it. */
	v.borrowed = true;
	prog_returned(&at, &v, copy, ret, BPF_CORE_READ_BITFIELD_PROBED(skb, tc_at_ingress));
}

/*
 * An XDP program returned: the frame it had, from its link-layer header
 * (one or two VLAN tags stepped over) to data_end. No sk_buff: the view
 * reads the frame's bytes alone (a multi-buffer frame's later parts are not read).
 */
static __always_inline void xdp_returned(__u32 copy, struct xdp_buff *xdp, int ret)
{
	unsigned char *data = xdp->data, *end = xdp->data_end, *l3 = data;
	struct net_device *dev = xdp->rxq ? xdp->rxq->dev : NULL;
	struct sighting at = { .dev = dev, .hook = TP_HOOK_XDP };
	struct view v = { .borrowed = true };
	__be16 proto = 0;

	if (dev && dev->hard_header_len) {
		l3 = data + ETH_HEADER;
		bpf_probe_read_kernel(&proto, sizeof(proto), data + 12);
		for (int i = 0; i < 2 && (proto == ETH_P_8021Q_BE || proto == ETH_P_8021AD_BE); i++) {
			bpf_probe_read_kernel(&proto, sizeof(proto), l3 + 2);
			l3 += 4;
		}
		if (proto != ETH_P_IP_BE && proto != ETH_P_IPV6_BE)
			return;
	}
	if (end <= l3 || end - l3 > 0xffff)
		return;
	v.l3 = l3;
	v.linear = v.len = end - l3;
	at.l3 = l3;
	prog_returned(&at, &v, copy, ret, 1);
}

/*
 * The copies. Section "fexit" names no target: libbpf takes the one user
 * space sets (bpf_program__set_attach_target) and loads only copies given one.
 * The kernel hands fexit the program's context as its own type: struct
 * xdp_buff for XDP, struct sk_buff for tc.
 */
#define TP_PROG_RETURN_COPY(i)                                                   \
	SEC("fexit")                                                             \
	int BPF_PROG(tp_xdp_return_##i, struct xdp_buff *xdp, int ret)           \
	{                                                                        \
		xdp_returned(i, xdp, ret);                                       \
		return 0;                                                        \
	}                                                                        \
	SEC("fexit")                                                             \
	int BPF_PROG(tp_tc_return_##i, struct sk_buff *skb, int ret)             \
	{                                                                        \
		tc_returned(i, skb, ret);                                        \
		return 0;                                                        \
	}

TP_PROG_RETURN_COPY(0)
TP_PROG_RETURN_COPY(1)
TP_PROG_RETURN_COPY(2)
TP_PROG_RETURN_COPY(3)
TP_PROG_RETURN_COPY(4)
TP_PROG_RETURN_COPY(5)
TP_PROG_RETURN_COPY(6)
TP_PROG_RETURN_COPY(7)

#endif
