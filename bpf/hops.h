/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* The probe seen on an interface: every transmit and every receive, on every device. */
#ifndef TRACEPKT_HOPS_H
#define TRACEPKT_HOPS_H

#define ETH_P_8021Q_BE 0x0081  /* htons(0x8100) */
#define ETH_P_8021AD_BE 0xA888 /* htons(0x88a8) */

/* The VLAN tag the kernel holds beside the packet (offloaded), id + 1; 0 when there is none. */
static __always_inline __u16 offloaded_vlan(struct sk_buff *skb)
{
	struct sk_buff___vlan_present *old = (void *)skb;

	/* Before 6.2 the tag's presence is a bit of its own (clearing the tag leaves vlan_proto set);
	 * from 6.2 on, vlan_proto is zero without a tag. */
	if (bpf_core_field_exists(old->vlan_present)) {
		if (!BPF_CORE_READ_BITFIELD_PROBED(old, vlan_present))
			return 0;
	} else if (!skb->vlan_proto) {
		return 0;
	}
	return (skb->vlan_tci & 0xfff) + 1;
}

/* A hop record for the packet at `at`, if it is the probe's; says whether it was. */
static __always_inline bool emit_hop(struct sighting *at, struct probe_match *m, __u16 vlan)
{
	struct view v;
	struct tp_hop *r;

	if (!is_probe(at, m, &v))
		return false;
	r = reserve_packet(struct tp_hop, TP_EVENT_HOP, at, m, &v);
	if (r) {
		r->h.vlan = vlan;
		bpf_ringbuf_submit(r, 0);
	}
	return true;
}

/* Transmit: the IP stack has set the network header by now, while skb->data
 * already points at the link-layer header. */
SEC("tp_btf/net_dev_queue")
int BPF_PROG(tp_net_dev_queue, struct sk_buff *skb)
{
	__u32 zero = 0;
	struct current_packet *cur = bpf_map_lookup_elem(&tp_current, &zero);
	struct probe_match m = {};
	struct sighting at = { .skb = skb, .l3 = skb->head + skb->network_header, .dev = skb->dev, .hook = TP_HOOK_NET_DEV_QUEUE };

	if (!cur)
		return 0;
	if (!emit_hop(&at, &m, offloaded_vlan(skb))) {
		if (cur->queued_skb) /* untraced traffic: a read, and a write only after a probe */
			cur->queued_skb = 0;
		return 0;
	}
	/* A device with a queue transmits later, maybe other packets first: only noqueue devices
	 * (tunnels are made so) transmit the probe here, where a tunnel's lookup follows at once. */
	if (skb->dev && skb->dev->qdisc && !skb->dev->qdisc->enqueue) {
		cur->queued_skb = (__u64)skb;
		cur->queued_since = bpf_ktime_get_ns();
		cur->queued_netns = dev_netns(skb->dev);
	} else if (cur->queued_skb) {
		cur->queued_skb = 0;
	}
	if (!m.outer.tunnel)
		seal_if_wireguard(skb, skb->dev, &m.p);
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
	struct sighting at = { .skb = skb, .l3 = skb->data, .dev = skb->dev, .hook = TP_HOOK_NETIF_RECEIVE_SKB };
	__u16 vlan = offloaded_vlan(skb);

	if (!cur)
		return 0;
	/* A tag the device left in the frame (no VLAN offload) sits before the IP header until the
	 * kernel takes it out, after this tracepoint: step over one, or two (802.1ad then 802.1Q). */
	if (skb->protocol == ETH_P_8021Q_BE || skb->protocol == ETH_P_8021AD_BE) {
		__be16 tag[2] = {};

		bpf_probe_read_kernel(tag, sizeof(tag), skb->data);
		vlan = (bpf_ntohs(tag[0]) & 0xfff) + 1;
		at.l3 = skb->data + 4;
		if (tag[1] == ETH_P_8021Q_BE)
			at.l3 = skb->data + 8;
	}
	if (cur->queued_skb) /* a receive: whatever this CPU transmitted is done */
		cur->queued_skb = 0;
	if (!emit_hop(&at, &m, vlan)) {
		cur->skb = 0;
		return 0;
	}
	cur->skb = (__u64)skb;
	cur->since = bpf_ktime_get_ns();
	cur->netns = dev_netns(skb->dev);
	/* In a tunnel, the lookups made while receiving it are for the outer packet. */
	if (m.outer.tunnel) {
		cur->family = m.outer.family;
		cur->proto = m.outer.proto;
		copy16(cur->saddr, m.outer.saddr);
		copy16(cur->daddr, m.outer.daddr);
	} else {
		cur->family = m.p.t.family;
		cur->proto = m.p.t.proto;
		copy16(cur->saddr, m.p.t.saddr);
		copy16(cur->daddr, m.p.t.daddr);
	}
	return 0;
}

#endif
