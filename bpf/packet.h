/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Reading a packet at a hook, from its network header on, and parsing its
 * headers: IPv4 and IPv6 (extension headers walked to the L4 header),
 * fragments, the first bytes of the L4 header, and the packet an ICMP error
 * quotes.
 *
 * Only the start of an sk_buff is linear. A large ping built by a raw
 * socket keeps nothing but its IP header there (its ICMP header and payload
 * sit in pages), GRO and jumbo frames do the same. So the first PKT_BYTES of
 * the packet are fetched once per hook into a per-CPU buffer, from the
 * linear part and, past it, with bpf_dynptr_from_skb (tracing programs may
 * call it from 6.10 on), or on older kernels from the fragments' pages
 * through the direct map, or not at all (TP_READER_LINEAR): then the buffer
 * holds only what is linear, and never memory that is not the packet's.
 * CFG.reader says which; user space chooses by what the kernel accepts
 * (src/kernel/skb-reader.ts). Parsing then reads the buffer only, in global
 * functions the verifier checks once per program.
 *
 * The including object defines CFG (struct tp_config) before including this.
 */
#ifndef TRACEPKT_PACKET_H
#define TRACEPKT_PACKET_H

#include "tracepkt.h"
#include "bits.h"
#include "subprog.h"

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60

/*
 * Bytes fetched from the network header on, first: enough for IPv6 and a
 * few extension headers before the L4 header, and for an ICMPv6 error, the
 * packet it quotes up to the marker of the echo inside (40 + 8 + 40 + 32).
 */
#define PKT_FIRST 128
/*
 * At most, for a packet in a tunnel (bpf/tunnel.h), fetched again only
 * then: the outer headers too (IPv6, UDP, VXLAN, Ethernet, a VLAN tag: 78)
 * before the same inner packet, or an ICMP error about a tunnelled packet.
 */
#define PKT_BYTES 256
/* How many IPv6 extension headers are walked before giving up on finding L4: hop-by-hop, routing,
 * fragment and destination options, the most a packet carries in practice. Each costs the verifier
 * ~2 ms per program to walk. */
#define EXT_HEADERS_MAX 4
#define PAGE_SIZE_X86 4096
#define ICMP_HEADER 8 /* type, code, checksum, and 4 bytes (echo id and sequence; an error's MTU) */

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym __weak;

/* The packet's first bytes. Three times PKT_BYTES: masked offsets plus masked lengths stay inside. */
struct pkt_bytes {
	__u8 b[3 * PKT_BYTES];
};

/*
 * One buffer per nesting level on a CPU: a program running in process
 * context (a LOCAL_OUT checkpoint, kfree_skb from a socket purge) can be
 * interrupted by softirq processing that runs another of ours, and each must
 * keep its own bytes. PKT_NESTING levels: task, softirq, hardirq, NMI.
 */
#define PKT_NESTING 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PKT_NESTING);
	__type(key, __u32);
	__type(value, struct pkt_bytes);
} tp_bytes SEC(".maps");

/* How many of our programs are running on this CPU now, nested: which buffer is free. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tp_depth SEC(".maps");

/* Takes this nesting level's buffer (NULL when none is free); release_bytes gives it back. */
static __always_inline struct pkt_bytes *claim_bytes(void)
{
	__u32 zero = 0, level;
	__u32 *depth = bpf_map_lookup_elem(&tp_depth, &zero);

	if (!depth)
		return NULL;
	level = (*depth)++; /* counted even when too deep: release_bytes always undoes it */
	if (level >= PKT_NESTING)
		return NULL;
	return bpf_map_lookup_elem(&tp_bytes, &level);
}

static __always_inline void release_bytes(void)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&tp_depth, &zero);

	if (depth && *depth > 0)
		(*depth)--;
}

/* The packet at a hook, seen from its network header. */
struct view {
	struct sk_buff *skb;
	unsigned char *l3; /* the network header */
	__s64 l3_off;      /* l3 - skb->data: negative once the stack has pulled past it */
	__u32 linear;      /* bytes from l3 to the end of the linear part */
	__u32 len;         /* bytes from l3 to the end of the packet */
	bool borrowed;     /* the sk_buff came from a kernel structure, not the hook's arguments: the verifier does
			    * not trust it for bpf_dynptr_from_skb, so past the linear part only the pages reader reads */
};

static __always_inline bool view_of(struct sk_buff *skb, unsigned char *l3, struct view *v)
{
	unsigned char *data = skb->data;
	__s64 off = l3 - data;
	__s64 headlen = skb->len - skb->data_len;

	if (off > (__s64)skb->len || off < -0xffff || headlen - off < 0)
		return false;
	v->skb = skb;
	v->l3 = l3;
	v->l3_off = off;
	v->linear = headlen - off;
	v->len = skb->len - off;
	v->borrowed = false;
	return true;
}

/* The direct-map address of a page (x86-64: page_offset_base + pfn * PAGE_SIZE). */
static __always_inline unsigned char *page_address(void *page)
{
	__u64 vmemmap = 0, direct = 0;

	if (bpf_probe_read_kernel(&vmemmap, sizeof(vmemmap), (void *)CFG.vmemmap_base) ||
	    bpf_probe_read_kernel(&direct, sizeof(direct), (void *)CFG.page_offset_base) || !vmemmap || !direct)
		return NULL;
	return (unsigned char *)(direct + ((__u64)page - vmemmap) / bpf_core_type_size(struct page) * PAGE_SIZE_X86);
}

/*
 * Fragment i of an sk_buff's shared info: its page, the offset in it and the
 * length. Offsets and sizes come from the kernel's BTF (CO-RE), computed
 * here because a CO-RE access cannot take a variable array index.
 */
static __always_inline bool frag_at(unsigned char *shinfo, __u32 i, void **page, __u32 *offset, __u32 *len)
{
	unsigned char *frag;
	unsigned long ref;

	if (bpf_core_field_exists(((struct skb_frag *)0)->netmem)) {
		frag = shinfo + bpf_core_field_offset(struct skb_shared_info___netmem, frags) + i * bpf_core_type_size(struct skb_frag);
		if (bpf_probe_read_kernel(&ref, sizeof(ref), frag + bpf_core_field_offset(struct skb_frag, netmem)) ||
		    bpf_probe_read_kernel(offset, sizeof(*offset), frag + bpf_core_field_offset(struct skb_frag, offset)) ||
		    bpf_probe_read_kernel(len, sizeof(*len), frag + bpf_core_field_offset(struct skb_frag, len)))
			return false;
		if (ref & 1) /* not page-backed (device memory) */
			return false;
	} else {
		frag = shinfo + bpf_core_field_offset(struct skb_shared_info___bio, frags) + i * bpf_core_type_size(struct bio_vec);
		if (bpf_probe_read_kernel(&ref, sizeof(ref), frag + bpf_core_field_offset(struct bio_vec, bv_page)) ||
		    bpf_probe_read_kernel(offset, sizeof(*offset), frag + bpf_core_field_offset(struct bio_vec, bv_offset)) ||
		    bpf_probe_read_kernel(len, sizeof(*len), frag + bpf_core_field_offset(struct bio_vec, bv_len)))
			return false;
	}
	*page = (void *)ref;
	return true;
}

/*
 * Copies `size` paged bytes, from the start of the pages, to out->b[at...],
 * fragment by fragment (frag_list is not followed: fewer bytes come).
 * Returns how many were copied. Global, with plain numbers for arguments:
 * the verifier checks it once per program.
 */
static __noinline int read_pages(__u64 head, __u32 end, __u32 at, __u32 size, struct pkt_bytes *out)
{
	unsigned char *shinfo = (unsigned char *)head + end;
	__u8 nr = 0;
	__u32 done = 0;

	if (!out || at + size > PKT_BYTES ||
	    bpf_probe_read_kernel(&nr, sizeof(nr), shinfo + bpf_core_field_offset(struct skb_shared_info___bio, nr_frags)))
		return 0;
	for (__u32 i = 0; i < 17; i++) {
		void *page;
		__u32 offset, len, n;
		unsigned char *base;

		if (i >= nr || done >= size || !frag_at(shinfo, i, &page, &offset, &len) || !(base = page_address(page)))
			break;
		n = len < size - done ? len : size - done;
		/* The masks change nothing (at + done < PKT_BYTES, n <= PKT_BYTES): they keep the
		 * verifier's bounds, which 6.1 loses when clang spills the registers in between. */
		if (bpf_probe_read_kernel(out->b + bounded(at + done, PKT_BYTES - 1), bounded(n, 2 * PKT_BYTES - 1), base + offset))
			break;
		done += n;
	}
	return done;
}

/*
 * Fetches the packet's first bytes (at most `limit`, a constant up to
 * PKT_BYTES) into `s` (a claimed buffer); returns it and, in *n, how many
 * bytes are the packet's.
 */
static __always_inline struct pkt_bytes *fetch(struct view *v, struct pkt_bytes *s, __u32 *n, __u32 limit)
{
	__u32 want = v->len < limit ? v->len : limit;

	if (!s)
		return NULL;
	*n = 0;
	if (want <= v->linear) {
		if (bpf_probe_read_kernel(s->b, bounded(want, 2 * PKT_BYTES - 1), v->l3))
			return NULL;
		*n = want;
		return s;
	}
	if (CFG.reader == TP_READER_DYNPTR && !v->borrowed && v->l3_off >= 0) {
		struct bpf_dynptr p;

		if (bpf_dynptr_from_skb((struct __sk_buff *)v->skb, 0, &p) ||
		    bpf_dynptr_read(s->b, bounded(want, 2 * PKT_BYTES - 1), &p, v->l3_off, 0))
			return NULL;
		*n = want;
		return s;
	}
	/* The linear part, then (the pages reader) what follows it in the pages. */
	__u32 lin = v->linear < want ? v->linear : want;

	if (lin && bpf_probe_read_kernel(s->b, bounded(lin, 2 * PKT_BYTES - 1), v->l3))
		return NULL;
	*n = lin;
	if (CFG.reader == TP_READER_PAGES)
		*n += read_pages((__u64)v->skb->head, v->skb->end, lin, want - lin, s);
	return s;
}

/* What the parser finds in a packet. */
struct packet {
	struct tp_tuple t;
	__u32 l4_off;     /* where the L4 header starts, from the (outer) network header; 0: none here (a later fragment) */
	__u32 frag_id;    /* fragments: IPv4 identification, or the IPv6 fragment header's */
	__u16 ip_len;
	__u16 frag_offset; /* bytes */
	__u8 ttl;
	__u8 frag_flags;  /* TP_FRAG_* */
	__u8 pad[2];
	__u8 l4[16];      /* the first bytes of the L4 header (zero where the packet is shorter) */
};

/*
 * Byte i of what was fetched. The offset is masked, so the verifier sees it
 * bounded (the buffer is larger than any masked offset plus what is read
 * there); whether it lies within the n bytes fetched is the parser's check,
 * made once per header rather than per byte.
 */
static __always_inline __u8 b8(const struct pkt_bytes *s, __u32 i)
{
	return s->b[bounded(i, 2 * PKT_BYTES - 1)];
}

static __always_inline __u16 b16(const struct pkt_bytes *s, __u32 i)
{
	return (b8(s, i) << 8) | b8(s, i + 1);
}

static __always_inline void copy16(__u8 *to, const void *from)
{
	__builtin_memcpy(to, from, 16);
}

/* The first bytes of an L4 header, as a global function receives them. */
struct l4_bytes {
	__u8 b[16];
};

/* 16 bytes at `at`, zeros past the n fetched. Global: checked once per program, not per path. */
TP_GLOBAL(copy_l4)(const struct pkt_bytes *s, __u32 n, __u32 at, struct l4_bytes *out)
{
	if (!s || !out)
		return 0;
	__builtin_memcpy(out->b, s->b + bounded(at, 2 * PKT_BYTES - 1), sizeof(out->b));
	for (__u32 i = 0; i < sizeof(out->b); i++) {
		__u64 inside = ((__u64)(at + i) - (__u64)n) >> 63; /* at + i < n, without a branch */

		out->b[i] &= (__u8)(0 - inside);
	}
	return 1;
}

#ifdef TP_COMPAT
/* This nesting level's bytes: the buffer its caller claimed (claim_bytes) and passed as `s`. */
static __always_inline struct pkt_bytes *level_bytes(void)
{
	__u32 zero = 0, level;
	__u32 *depth = bpf_map_lookup_elem(&tp_depth, &zero);

	if (!depth || *depth == 0 || *depth > PKT_NESTING)
		return NULL;
	level = *depth - 1;
	return bpf_map_lookup_elem(&tp_bytes, &level);
}

TP_ARGS_FIT(struct l4_bytes);

__noinline int copy_l4_slot(__u32 slot, __u32 n, __u32 at)
{
	struct l4_bytes *out = args_at(slot);
	struct pkt_bytes *s = level_bytes();

	return out && s ? copy_l4_body(s, n, at, out) : 0;
}

static __always_inline int copy_l4(const struct pkt_bytes *s, __u32 n, __u32 at, struct l4_bytes *out)
{
	__u32 slot;
	struct l4_bytes *a = args_claim(&slot);
	int ok = 0;

	if (a && s && out && (ok = copy_l4_slot(slot, n, at)))
		*out = *a;
	args_release();
	return ok;
}
#endif

static __always_inline bool is_ext_header(__u8 next)
{
	return next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_FRAGMENT || next == IPPROTO_DSTOPTS ||
	       next == IPPROTO_AH;
}

/*
 * Parses the IP packet that starts at `at` in the fetched bytes: its
 * addresses, protocol (after IPv6 extension headers, when `walk`), fragment
 * fields and the first bytes of its L4 header. 1 on success. Global: checked
 * once per program, for the packet and for the packet an ICMP error quotes.
 */
TP_GLOBAL(parse_ip)(const struct pkt_bytes *s, __u32 n, __u32 at, int walk, struct packet *p)
{
	__u8 first, next;
	__u32 off;

	if (!s || !p || at >= PKT_BYTES || at + 20 > n)
		return 0;
	first = b8(s, at);
	if (first >> 4 == 4) {
		__u16 frag = b16(s, at + 6);
		__u32 ihl = (first & 0xf) * 4;

		if (ihl < 20)
			return 0;
		p->t.family = 4;
		p->ttl = b8(s, at + 8);
		p->t.proto = b8(s, at + 9);
		p->ip_len = b16(s, at + 2);
		__builtin_memcpy(p->t.saddr, s->b + bounded(at + 12, 2 * PKT_BYTES - 1), 4);
		__builtin_memcpy(p->t.daddr, s->b + bounded(at + 16, 2 * PKT_BYTES - 1), 4);
		if (frag & 0x3fff) { /* MF, or an offset */
			p->frag_flags = TP_FRAGMENT | ((frag & 0x2000) ? TP_MORE_FRAGMENTS : 0);
			p->frag_offset = (frag & 0x1fff) * 8;
			p->frag_id = b16(s, at + 4);
		}
		if (p->frag_offset) /* later fragments carry no L4 header */
			return 1;
		off = ihl;
	} else if (first >> 4 == 6) {
		if (at + 40 > n)
			return 0;
		p->t.family = 6;
		p->ip_len = b16(s, at + 4) + 40;
		p->ttl = b8(s, at + 7);
		copy16(p->t.saddr, s->b + bounded(at + 8, 2 * PKT_BYTES - 1));
		copy16(p->t.daddr, s->b + bounded(at + 24, 2 * PKT_BYTES - 1));
		next = b8(s, at + 6);
		off = 40;
		/* Extension headers: hop-by-hop, routing, fragment, destination options, AH. */
		for (int i = 0; walk && i < EXT_HEADERS_MAX && is_ext_header(next); i++) {
			__u32 h = at + off;

			if (h + 8 > n)
				return 0;
			if (next == IPPROTO_FRAGMENT) {
				__u16 frag = b16(s, h + 2);

				p->frag_flags = TP_FRAGMENT | ((frag & 1) ? TP_MORE_FRAGMENTS : 0);
				p->frag_offset = frag & 0xfff8;
				p->frag_id = ((__u32)b16(s, h + 4) << 16) | b16(s, h + 6);
				next = b8(s, h);
				off += 8;
				if (p->frag_offset) { /* a later fragment: no L4 header here */
					p->t.proto = next;
					return 1;
				}
				continue;
			}
			off += next == IPPROTO_AH ? (b8(s, h + 1) + 2) * 4 : (b8(s, h + 1) + 1) * 8;
			next = b8(s, h);
		}
		p->t.proto = next;
	} else {
		return 0;
	}
	p->l4_off = at + off;
	return copy_l4(s, n, at + off, (struct l4_bytes *)p->l4);
}

#ifdef TP_COMPAT
TP_ARGS_FIT(struct packet);

__noinline int parse_ip_slot(__u32 slot, __u32 n, __u32 at, int walk)
{
	struct packet *p = args_at(slot);
	struct pkt_bytes *s = level_bytes();

	return p && s ? parse_ip_body(s, n, at, walk, p) : 0;
}

static __always_inline int parse_ip(const struct pkt_bytes *s, __u32 n, __u32 at, int walk, struct packet *p)
{
	__u32 slot;
	struct packet *a = args_claim(&slot);
	int ok = 0;

	if (a && s && p) {
		*a = *p;
		ok = parse_ip_slot(slot, n, at, walk);
		*p = *a;
	}
	args_release();
	return ok;
}
#endif

/* The 8 bytes at `at` as the packet holds them; false when they were not fetched. */
static __always_inline bool read8(const struct pkt_bytes *s, __u32 n, __u32 at, __u64 *out)
{
	if (at + 8 > n)
		return false;
	__builtin_memcpy(out, s->b + bounded(at, 2 * PKT_BYTES - 1), 8);
	return true;
}

#endif
