/* SPDX-License-Identifier: MIT */
/*
 * The whole contract between the BPF programs and TypeScript: the record
 * every program emits and the configuration user space writes before load.
 * src/bpf/layout.ts mirrors it; test/unit/layout.test.ts checks that mirror
 * against the BTF of the built object, so a change here that is not made
 * there fails the tests instead of garbling events.
 */
#ifndef TRACEPKT_H
#define TRACEPKT_H

#define TP_IFNAMSIZ 16

/* What a record describes. Later kinds (netfilter, drop, route) extend it. */
enum tp_event_kind {
	TP_EVENT_HOP = 1,           /* the packet seen on an interface */
	TP_EVENT_NF_CHECKPOINT = 2, /* the packet reached a netfilter checkpoint */
};

/* Which kernel hook saw the packet. */
enum tp_hook {
	TP_HOOK_NET_DEV_QUEUE = 1,     /* tp net:net_dev_queue, transmit */
	TP_HOOK_NETIF_RECEIVE_SKB = 2, /* tp net:netif_receive_skb, receive */
	TP_HOOK_NETFILTER = 3,         /* a BPF netfilter link (a checkpoint) */
};

/*
 * Netfilter checkpoints: the same program body attached through BPF
 * netfilter links at chosen priorities. A link cannot tell its program where
 * it was attached, so there are TP_NF_CHECKPOINTS copies, each reporting its
 * own index; user space knows which priority it gave each index.
 */
#define TP_NF_CHECKPOINTS 16

/* One fixed-size record per event: 88 bytes, no pointers to chase. */
struct tp_event {
	__u64 time_ns;   /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 skb;       /* address of the struct sk_buff: the packet's identity in the kernel */
	__u32 netns;     /* dev->nd_net.net->ns.inum (checkpoints: state->net) */
	__u32 ifindex;   /* dev->ifindex (checkpoints: the input device, else the output one) */
	__u8 kind;       /* enum tp_event_kind */
	__u8 hook;       /* enum tp_hook */
	__u8 family;     /* 4 or 6, from the IP header's version nibble */
	__u8 ttl;        /* iphdr->ttl or ipv6hdr->hop_limit */
	__u8 icmp_type;  /* icmphdr->type / icmp6hdr->icmp6_type */
	__u8 icmp_code;
	__u16 ip_len;    /* iphdr->tot_len, or ipv6hdr->payload_len + 40; host order */
	__u16 icmp_id;   /* echo identifier, host order */
	__u16 icmp_seq;  /* echo sequence, host order */
	__u8 nf_hook;    /* checkpoints: nf_hook_state->hook (NF_INET_*) */
	__u8 nf_pf;      /* checkpoints: nf_hook_state->pf (NFPROTO_IPV4 / _IPV6) */
	__u8 nf_index;   /* checkpoints: which copy of the program */
	__u8 reserved;
	__u8 saddr[16];  /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	char ifname[TP_IFNAMSIZ]; /* dev->name when the hook ran */
};

/*
 * Written by user space into .rodata before load: the verifier sees the
 * values as constants and prunes what a run does not need.
 */
struct tp_config {
	__u64 marker;        /* 8 bytes the probe carries in its ICMP payload, in packet order */
	__u16 marker_offset; /* where, counted from the ICMP header */
	__u8 family;         /* 0: both, 4 or 6 */
	__u8 pad[5];
};

#endif
