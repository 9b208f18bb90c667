/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* The probe's packet freed as dropped, with the kernel's reason and place; any packet freed, forgotten. */
#ifndef TRACEPKT_DROPS_H
#define TRACEPKT_DROPS_H

static __always_inline void dropped(struct sk_buff *skb, void *location, __u32 reason)
{
	struct probe_match m = {};
	struct sighting at = { .skb = skb, .l3 = skb->head + skb->network_header, .dev = skb->dev, .hook = TP_HOOK_KFREE_SKB };
	struct view v;
	struct tp_drop *r;

	if (is_probe(&at, &m, &v) && (r = reserve_packet(struct tp_drop, TP_EVENT_DROP, &at, &m, &v))) {
		r->location = (__u64)location;
		r->reason = reason;
		bpf_ringbuf_submit(r, 0);
	}
	forget(skb);
}

/* Drops: kfree_skb fires for packets freed as dropped (consume_skb, for
 * those freed after use, is another tracepoint). Its fourth argument
 * (rx_sk, 6.12+) is not needed: three arguments work on older kernels. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb, struct sk_buff *skb, void *location, int reason)
{
	dropped(skb, location, reason);
	return 0;
}

/* Before 5.17 kfree_skb has no reason (the verifier refuses reading a third
 * argument): the place alone says where. User space loads one of the two. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb_no_reason, struct sk_buff *skb, void *location)
{
	dropped(skb, location, TP_NO_DROP_REASON);
	return 0;
}

/* A packet freed after use: its address may come back as another packet. */
SEC("tp_btf/consume_skb")
int BPF_PROG(tp_consume_skb, struct sk_buff *skb)
{
	forget(skb);
	return 0;
}

#endif
