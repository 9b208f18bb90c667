/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The packet's conntrack entry as the kernel holds it where a hook sees the
 * packet: skb->_nfct, the entry's tuples, status, zone and mark. Read only
 * for the probe's records, never for other traffic. Read through CO-RE:
 * where the running kernel's BTF does not describe struct nf_conn (nf_conntrack
 * a module on a kernel without module BTF), the record says it could not be read.
 */
#ifndef TRACEPKT_CONNTRACK_H
#define TRACEPKT_CONNTRACK_H

#define TP_NFCT_INFO_MASK 7UL   /* NFCT_INFOMASK */
#define TP_IP_CT_UNTRACKED 7

static __always_inline void read_ct_tuple(const struct nf_conntrack_tuple *t, __u8 saddr[16], __u8 daddr[16],
					  __u16 *sport, __u16 *dport)
{
	bpf_core_read(saddr, 16, &t->src.u3);
	bpf_core_read(daddr, 16, &t->dst.u3);
	*sport = bpf_ntohs(BPF_CORE_READ(t, src.u.all));
	*dport = bpf_ntohs(BPF_CORE_READ(t, dst.u.all));
}

static __always_inline void fill_conntrack(struct tp_conntrack *c, struct sk_buff *skb)
{
	unsigned long nfct;
	struct nf_conn *ct;

	if (!skb || !bpf_core_field_exists(skb->_nfct))
		return;
	nfct = BPF_CORE_READ(skb, _nfct);
	if (!nfct)
		return;
	c->ctinfo = nfct & TP_NFCT_INFO_MASK;
	ct = (struct nf_conn *)(nfct & ~TP_NFCT_INFO_MASK);
	if (!ct) {
		c->presence = c->ctinfo == TP_IP_CT_UNTRACKED ? TP_CT_UNTRACKED : TP_CT_NONE;
		return;
	}
	if (!bpf_core_type_exists(struct nf_conn)) {
		c->presence = TP_CT_UNREADABLE;
		return;
	}
	c->presence = TP_CT_ENTRY;
	c->status = BPF_CORE_READ(ct, status);
	if (bpf_core_field_exists(ct->mark))
		c->mark = BPF_CORE_READ(ct, mark);
	if (bpf_core_field_exists(ct->zone))
		c->zone = BPF_CORE_READ(ct, zone.id);
	c->proto = BPF_CORE_READ(ct, tuplehash[0].tuple.dst.protonum);
	c->family = BPF_CORE_READ(ct, tuplehash[0].tuple.src.l3num) == 10 ? 6 : 4; /* AF_INET6 */
	read_ct_tuple(&ct->tuplehash[0].tuple, c->orig_saddr, c->orig_daddr, &c->orig_sport, &c->orig_dport);
	read_ct_tuple(&ct->tuplehash[1].tuple, c->reply_saddr, c->reply_daddr, &c->reply_sport, &c->reply_dport);
}

#endif
