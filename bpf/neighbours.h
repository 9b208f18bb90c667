/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* The probe's packet queued at a neighbour that has not answered ARP / neighbour discovery yet. */
#ifndef TRACEPKT_NEIGHBOURS_H
#define TRACEPKT_NEIGHBOURS_H

#define AF_INET6 10
#define NUD_INCOMPLETE 0x01

/*
 * __neigh_event_send runs only for a neighbour that is not usable as it is
 * (so not for untraced traffic to known neighbours); it ends with this
 * tracepoint, which names the neighbour but not the packet. A packet it
 * queued is the tail of the neighbour's arp_queue: the one the tracepoint
 * is about, matched as any sighting is. (The queue's lock is released just
 * before; a packet another CPU queued meanwhile is matched on its own merit.)
 * rc 1: queued or freed (a failed neighbour frees it: kfree_skb says so).
 */
SEC("tp_btf/neigh_event_send_done")
int BPF_PROG(tp_neigh_event_send_done, struct neighbour *n, int rc)
{
	struct probe_match m = {};
	struct sighting at = { .hook = TP_HOOK_NEIGH, .borrowed = true };
	struct sk_buff *skb;
	struct tp_neigh *r;
	struct view v;
	__u8 family;

	if (rc != 1 || !(n->nud_state & NUD_INCOMPLETE))
		return 0;
	skb = n->arp_queue.prev;
	if (!skb || (void *)skb == (void *)&n->arp_queue) /* empty: the list head points at itself */
		return 0;
	at.skb = skb;
	at.l3 = skb->head + skb->network_header;
	at.dev = n->dev;
	if (!is_probe(&at, &m, &v) || !(r = reserve_packet(struct tp_neigh, TP_EVENT_NEIGH, &at, &m, &v)))
		return 0;
	family = n->tbl->family == AF_INET6 ? 6 : 4;
	r->family = family;
	r->nud_state = n->nud_state;
	bpf_probe_read_kernel(r->next_hop, family == 6 ? 16 : 4, n->primary_key);
	bpf_ringbuf_submit(r, 0);
	return 0;
}

#endif
