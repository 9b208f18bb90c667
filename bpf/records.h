/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The ring buffer and the records written into it (bpf/tracepkt.h): reserve,
 * bail out if the ring is full (counted, reported as lost), fill, submit.
 * Packet records (hops, drops, checkpoints, table verdicts) share a prefix,
 * header, packet fields and what an ICMP error quotes; each kind adds its
 * own section after it. Needs CFG, bpf/packet.h, bpf/identity.h and
 * bpf/conntrack.h.
 */
#ifndef TRACEPKT_RECORDS_H
#define TRACEPKT_RECORDS_H

/* One ring buffer for every program: records stay in order per CPU and
 * user space is woken once per batch. Its size is set before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} tp_events SEC(".maps");

/* One set of counters shared by all CPUs: written only when a record is lost, read by every record. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_stats);
} tp_stats SEC(".maps");

static __always_inline struct tp_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tp_stats, &zero);
}

static __always_inline void count_lost(void)
{
	struct tp_stats *s = stats();

	if (s)
		__sync_fetch_and_add(&s->lost, 1); /* no fetch: an atomic add every kernel has (5.10 too) */
}

/* Records lost so far; a record carries it, so user space sees where records are missing. */
static __always_inline __u32 lost_so_far(void)
{
	struct tp_stats *s = stats();

	return s ? (__u32)s->lost : 0;
}

/* A zeroed record of `size` bytes in the ring (counted as lost when it is full). */
static __always_inline void *reserve(__u32 size)
{
	void *r = bpf_ringbuf_reserve(&tp_events, size, 0);

	if (!r) {
		count_lost();
		return NULL;
	}
	__builtin_memset(r, 0, size);
	return r;
}

static __always_inline __u32 dev_netns(struct net_device *dev)
{
	return dev ? dev->nd_net.net->ns.inum : 0;
}

static __always_inline void fill_header(struct tp_header *h, __u8 kind, __u8 hook, __u64 skb, __u32 netns,
					struct net_device *dev)
{
	h->time_ns = bpf_ktime_get_ns();
	h->lost = lost_so_far();
	h->kind = kind;
	h->hook = hook;
	h->skb = skb;
	h->netns = netns;
	if (dev) {
		h->ifindex = dev->ifindex;
		bpf_probe_read_kernel_str(h->ifname, sizeof(h->ifname), dev->name);
	}
}

/* The prefix every packet record shares. */
struct tp_packet_record {
	struct tp_header h;
	struct tp_packet_fields p;
	struct tp_quoted q;
	struct tp_outer o;
	struct tp_conntrack ct;
};

/* Each packet record starts as the prefix: reserve_packet fills it through one. */
#define STARTS_AS_PACKET_RECORD(T)                                                                              \
	_Static_assert(__builtin_offsetof(T, p) == __builtin_offsetof(struct tp_packet_record, p) &&            \
			       __builtin_offsetof(T, q) == __builtin_offsetof(struct tp_packet_record, q) &&    \
			       __builtin_offsetof(T, o) == __builtin_offsetof(struct tp_packet_record, o) &&    \
			       __builtin_offsetof(T, ct) == __builtin_offsetof(struct tp_packet_record, ct) &&  \
			       sizeof(T) >= sizeof(struct tp_packet_record),                                    \
		       #T " starts as struct tp_packet_record")
STARTS_AS_PACKET_RECORD(struct tp_hop);
STARTS_AS_PACKET_RECORD(struct tp_drop);
STARTS_AS_PACKET_RECORD(struct tp_checkpoint);
STARTS_AS_PACKET_RECORD(struct tp_table_verdict);
STARTS_AS_PACKET_RECORD(struct tp_neigh);
STARTS_AS_PACKET_RECORD(struct tp_prog_return);

/* The packet's fields, and what it quotes if it is an ICMP error about the probe. */
static __always_inline void fill_packet(struct tp_packet_record *r, const struct probe_match *m)
{
	const struct packet *p = &m->p;

	copy16(r->p.saddr, p->t.saddr);
	copy16(r->p.daddr, p->t.daddr);
	r->p.ip_len = p->ip_len;
	r->p.family = p->t.family;
	r->p.ttl = p->ttl;
	r->p.proto = p->t.proto;
	r->p.frag_flags = p->frag_flags;
	r->p.frag_id = p->frag_id;
	r->p.frag_offset = p->frag_offset;
	if (p->l4_off) {
		r->p.sport = p->t.sport;
		r->p.dport = p->t.dport;
		if (is_icmp(p->t.family, p->t.proto)) {
			r->p.icmp_type = p->l4[0];
			r->p.icmp_code = p->l4[1];
			__builtin_memcpy(r->p.icmp_info, &p->l4[4], 4);
		}
		if (p->t.proto == IPPROTO_TCP) {
			r->p.tcp_flags = p->l4[13];
			r->p.tcp_seq = ((__u32)p->l4[4] << 24) | ((__u32)p->l4[5] << 16) | ((__u32)p->l4[6] << 8) | p->l4[7];
		}
	}
	if (m->outer.tunnel)
		r->o = m->outer;
	if (m->error) {
		const struct packet *q = &m->quoted;

		r->q.present = 1;
		copy16(r->q.saddr, q->t.saddr);
		copy16(r->q.daddr, q->t.daddr);
		r->q.proto = q->t.proto;
		r->q.sport = q->t.sport;
		r->q.dport = q->t.dport;
		r->q.icmp_type = q->l4[0];
		__builtin_memcpy(r->q.echo_info, &q->l4[4], 4);
	}
}

/*
 * The snapshot after a packet record (--pcap): the packet from its IP
 * header on, never past the linear part (what lies beyond it in memory is
 * not the packet's).
 */
static __always_inline void fill_snapshot(struct tp_snapshot *snap, struct view *v, __u16 ip_len)
{
	__u32 len = CFG.snap_len < TP_SNAP_MAX ? CFG.snap_len : TP_SNAP_MAX;

	if (len > ip_len)
		len = ip_len;
	if (len > v->linear)
		len = v->linear;
	snap->caplen = len;
	if (len && bpf_probe_read_kernel(snap->data, bounded(len - 1, TP_SNAP_MAX - 1) + 1, v->l3))
		snap->caplen = 0;
}

/* Where a packet was seen: filled by each hook from what it knows. */
struct sighting {
	struct sk_buff *skb;
	unsigned char *l3;      /* its network header */
	bool borrowed;          /* skb read from a kernel structure, not given by the hook (see struct view) */
	struct net_device *dev; /* may be NULL */
	__u32 netns;
	__u8 hook;
};

/*
 * Reserves the record of a packet of kind RECORD (a struct whose prefix is
 * struct tp_packet_record), with the snapshot after it when CFG.snap_len,
 * and fills the shared prefix. Sizes must be constants for the verifier:
 * a macro, so that each hook's record type stays in the call.
 */
#define reserve_packet(RECORD, KIND, at, m, v)                                                               \
	({                                                                                                  \
		RECORD *r_ = CFG.snap_len ? reserve(sizeof(RECORD) + sizeof(struct tp_snapshot))             \
					  : reserve(sizeof(RECORD));                                        \
		if (r_) {                                                                                   \
			fill_header(&((struct tp_packet_record *)r_)->h, KIND, (at)->hook, (__u64)(at)->skb,  \
				    (at)->netns ? (at)->netns : dev_netns((at)->dev), (at)->dev);             \
			fill_packet((struct tp_packet_record *)r_, m);                                      \
			fill_conntrack(&((struct tp_packet_record *)r_)->ct, (at)->skb);                    \
			if (CFG.snap_len)                                                                   \
				fill_snapshot((struct tp_snapshot *)(r_ + 1), v, (m)->p.ip_len);            \
		}                                                                                           \
		r_;                                                                                         \
	})

/* Whether the packet at a sighting is the probe (then `m` holds what it is). */
static __always_inline bool is_probe(struct sighting *at, struct probe_match *m, struct view *v)
{
	bool ours;

	if (!view_of(at->skb, at->l3, v))
		return false;
	v->borrowed = at->borrowed;
	ours = match_probe(v, m, claim_bytes());
	release_bytes();
	return ours;
}

#endif
