/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Netfilter on the probe's way: checkpoints (BPF netfilter links, 6.4+)
 * bracketing the tables, and on kernels without them iptables-legacy's own
 * verdicts (fexit on the functions that evaluate its tables).
 */
#ifndef TRACEPKT_NETFILTER_H
#define TRACEPKT_NETFILTER_H

/* A netfilter hook's sighting of a packet: the input device, else the output one. */
static __always_inline struct sighting nf_sighting(struct sk_buff *skb, const struct nf_hook_state *state, __u8 hook)
{
	struct sighting at = {
		.skb = skb,
		.l3 = skb->head + skb->network_header,
		.dev = state->in ? state->in : state->out,
		.netns = state->net->ns.inum,
		.hook = hook,
	};

	return at;
}

/*
 * User space attaches copy i through a BPF netfilter link at a priority of
 * its choice; seeing the probe at one checkpoint and not at the next says
 * which tables in between stopped it. Always NF_ACCEPT: we watch, we never
 * judge. Retyped to BPF_PROG_TYPE_NETFILTER before load (libbpf 1.1.2
 * predates the section name).
 */
static __always_inline int checkpoint(struct bpf_nf_ctx *ctx, __u8 index)
{
	const struct nf_hook_state *state = ctx->state;
	struct probe_match m = {};
	struct sighting at = nf_sighting(ctx->skb, state, TP_HOOK_NETFILTER);
	struct view v;
	struct tp_checkpoint *r;

	if (is_probe(&at, &m, &v) && (r = reserve_packet(struct tp_checkpoint, TP_EVENT_NF_CHECKPOINT, &at, &m, &v))) {
		r->nf_hook = state->hook;
		r->nf_pf = state->pf;
		r->index = index;
		bpf_ringbuf_submit(r, 0);
	}
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
static __always_inline int table_verdict(struct xt_table *table, struct sk_buff *skb, const struct nf_hook_state *state,
					 unsigned int verdict)
{
	struct probe_match m = {};
	struct sighting at = nf_sighting(skb, state, TP_HOOK_XT_TABLE);
	struct view v;
	struct tp_table_verdict *r;

	if (is_probe(&at, &m, &v) && (r = reserve_packet(struct tp_table_verdict, TP_EVENT_NF_TABLE, &at, &m, &v))) {
		r->nf_hook = state->hook;
		r->nf_pf = state->pf;
		r->verdict = verdict;
		r->priority = BPF_CORE_READ(table, priority);
		bpf_core_read_str(r->table, sizeof(r->table), &table->name);
		bpf_ringbuf_submit(r, 0);
	}
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

/*
 * Before 5.16 the table came last: ipt_do_table(skb, state, table). The
 * verifier refuses each form on the other kernels (an sk_buff read through a
 * pointer its BTF says is something else), so user space tries one, then
 * the other.
 */
SEC("fexit/ipt_do_table")
int BPF_PROG(tp_ipt_do_table_table_last, struct sk_buff *skb, const struct nf_hook_state *state, void *table, unsigned int verdict)
{
	return table_verdict(table, skb, state, verdict);
}

SEC("fexit/ip6t_do_table")
int BPF_PROG(tp_ip6t_do_table_table_last, struct sk_buff *skb, const struct nf_hook_state *state, void *table, unsigned int verdict)
{
	return table_verdict(table, skb, state, verdict);
}

#endif
