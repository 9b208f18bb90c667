/* SPDX-License-Identifier: MIT */
/*
 * The few kernel-internal types the programs read, and nothing else.
 * preserve_access_index makes clang emit CO-RE relocations, so libbpf fixes
 * every offset against the running kernel's BTF at load time: the layouts
 * below need only name the fields, not match any kernel's real layout.
 * Smaller and easier to review than a generated vmlinux.h.
 */
#ifndef TRACEPKT_KERNEL_H
#define TRACEPKT_KERNEL_H

#include <linux/in6.h> /* struct in6_addr: a fixed ABI, no relocation needed */

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum; /* the inode number `ls -i /proc/PID/ns/net` shows */
};

struct fib6_info; /* only compared, never read */

struct netns_ipv6 {
	struct fib6_info *fib6_null_entry; /* what an IPv6 lookup finds where no route matches */
};

struct net {
	struct ns_common ns;
	struct netns_ipv6 ipv6;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct Qdisc {
	void *enqueue; /* NULL for noqueue: the device transmits at once, in the caller's context */
};

struct rtnl_link_ops {
	const char *kind; /* "wireguard", "vxlan", ... (ip -d link's info_kind) */
};

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
	const struct rtnl_link_ops *rtnl_link_ops;
	struct Qdisc *qdisc; /* the root qdisc */
	unsigned short hard_header_len; /* 0: frames start at the IP header (tun, WireGuard, ...) */
};

struct sk_buff {
	struct net_device *dev;
	unsigned int len;      /* bytes of the packet from data on, linear and paged */
	unsigned int data_len; /* of which in pages (frags) and frag_list */
	unsigned char *head;
	unsigned char *data;
	unsigned int end;      /* skb_shared_info sits at head + end (64-bit kernels: an offset) */
	__u16 network_header;
	__be16 protocol;       /* the frame's EtherType: 802.1Q / 802.1ad while a tag is still in-band */
	__be16 vlan_proto;     /* an offloaded VLAN tag: its protocol (0: none, from 6.2) and TCI */
	__u16 vlan_tci;
	unsigned long _nfct;   /* the conntrack entry (struct nf_conn *) | enum ip_conntrack_info in the low 3 bits */
	__u8 tc_at_ingress : 1; /* tc runs the packet's programs on receive (1) or transmit (0) */
};

/* What an XDP program's context is in the kernel (fexit on one sees this, not struct xdp_md). */
struct xdp_rxq_info {
	struct net_device *dev;
};

struct xdp_buff {
	void *data;     /* the frame's first byte: its link-layer header */
	void *data_end;
	struct xdp_rxq_info *rxq;
};

/* Before 6.2 an offloaded tag's presence was a bit of its own, and clearing it left vlan_proto set. */
struct sk_buff___vlan_present {
	__u8 vlan_present : 1;
};

/*
 * Paged data (packet bytes outside the linear part), read only by the
 * page reader (bpf/packet.h) on kernels whose tracing programs have no
 * bpf_dynptr_from_skb (before 6.10). A fragment names its page as a
 * struct bio_vec (to 6.8) or as a netmem reference (6.9+); both are read
 * through CO-RE and bpf_core_field_exists picks the one the kernel has.
 */
struct page {
	unsigned long flags;
};

struct bio_vec {
	struct page *bv_page;
	unsigned int bv_len;
	unsigned int bv_offset;
};

struct skb_frag {
	unsigned long netmem; /* a struct page * for page-backed memory (bit 0 clear) */
	unsigned int len;
	unsigned int offset;
};

struct skb_shared_info___bio {
	__u8 nr_frags;
	struct bio_vec frags[17];
};

struct skb_shared_info___netmem {
	__u8 nr_frags;
	struct skb_frag frags[17];
};

/* Route lookups (tracepoints fib:fib_table_lookup, fib6:fib6_table_lookup). */
struct flowi_common {
	int flowic_iif; /* LOOPBACK_IFINDEX for output routing, the receiving device for input */
	__u8 flowic_proto;
};

union flowi_uli {
	struct {
		__be16 dport;
		__be16 sport;
	} ports;
	struct {
		__u8 type;
		__u8 code;
	} icmpt;
};

struct flowi4 {
	struct flowi_common __fl_common;
	__be32 saddr;
	__be32 daddr;
	union flowi_uli uli;
};

struct flowi6 {
	struct flowi_common __fl_common;
	struct in6_addr daddr;
	struct in6_addr saddr;
	union flowi_uli uli;
};

struct fib_nh_common {
	struct net_device *nhc_dev;
	__u8 nhc_gw_family;
	union {
		__be32 ipv4;
		struct in6_addr ipv6;
	} nhc_gw;
};

struct fib6_nh {
	struct fib_nh_common nh_common;
};

struct fib6_result {
	struct fib6_nh *nh;
	struct fib6_info *f6i;
	__u8 fib6_type;
};

struct fib6_table {
	__u32 tb6_id;
};

/* A neighbour being resolved (tracepoint neigh:neigh_event_send_done). */
struct neigh_table {
	int family; /* AF_INET (ARP) or AF_INET6 (neighbour discovery) */
};

/* next and prev sit in an anonymous struct inside a union from 6.x on: CO-RE finds them by name. */
struct sk_buff_head {
	struct sk_buff *next;
	struct sk_buff *prev;
};

struct neighbour {
	struct neigh_table *tbl;
	__u8 nud_state;
	struct sk_buff_head arp_queue; /* packets waiting for the answer, the newest last */
	struct net_device *dev;
	__u8 primary_key[0]; /* the next hop's address: 4 or 16 bytes */
};

/* The namespace of the task a lookup runs for (process context). */
struct nsproxy {
	struct net *net_ns;
};

struct task_struct {
	struct nsproxy *nsproxy;
};

/* The netfilter hook's view of a packet (kernel 6.4+: BPF_PROG_TYPE_NETFILTER). */
struct nf_hook_state {
	__u8 hook;
	__u8 pf;
	struct net_device *in;
	struct net_device *out;
	struct net *net;
};

/* An iptables-legacy table (x_tables). */
struct xt_table {
	int priority;
	const char name[32];
};

struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
};

/*
 * A conntrack entry (bpf/conntrack.h). Where nf_conntrack is a module, its
 * BTF describes these (module BTF, 5.11+); bpf_core_type_exists says.
 */
union nf_inet_addr {
	__u32 all[4];
};

union nf_conntrack_man_proto {
	__be16 all;
};

struct nf_conntrack_man {
	union nf_inet_addr u3;
	union nf_conntrack_man_proto u;
	__u16 l3num;
};

struct nf_conntrack_tuple {
	struct nf_conntrack_man src;
	struct {
		union nf_inet_addr u3;
		union {
			__be16 all;
		} u;
		__u8 protonum;
	} dst;
};

struct nf_conntrack_tuple_hash {
	struct nf_conntrack_tuple tuple;
};

struct nf_conntrack_zone {
	__u16 id;
};

struct nf_conn {
	unsigned long status;
	__u32 mark;
	struct nf_conntrack_zone zone;
	struct nf_conntrack_tuple_hash tuplehash[2]; /* IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY */
};

#pragma clang attribute pop

#endif
