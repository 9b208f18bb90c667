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
	TP_EVENT_DROP = 3,          /* the kernel freed the packet as dropped */
	TP_EVENT_ROUTE = 4,         /* a route lookup made for the packet */
	TP_EVENT_NF_TABLE = 5,      /* an iptables-legacy table's verdict on the packet (kernels without netfilter links) */
};

/* Which kernel hook saw the packet. */
enum tp_hook {
	TP_HOOK_NET_DEV_QUEUE = 1,     /* tp net:net_dev_queue, transmit */
	TP_HOOK_NETIF_RECEIVE_SKB = 2, /* tp net:netif_receive_skb, receive */
	TP_HOOK_NETFILTER = 3,         /* a BPF netfilter link (a checkpoint) */
	TP_HOOK_KFREE_SKB = 4,         /* tp skb:kfree_skb */
	TP_HOOK_FIB = 5,               /* tp fib:fib_table_lookup (IPv4) */
	TP_HOOK_FIB6 = 6,              /* tp fib6:fib6_table_lookup */
	TP_HOOK_XT_TABLE = 7,          /* fexit ipt_do_table / ip6t_do_table */
};

/*
 * Netfilter checkpoints: the same program body attached through BPF
 * netfilter links at chosen priorities. A link cannot tell its program where
 * it was attached, so there are TP_NF_CHECKPOINTS copies, each reporting its
 * own index; user space knows which priority it gave each index.
 */
#define TP_NF_CHECKPOINTS 16

/* One fixed-size record per event: 144 bytes, no pointers to chase. */
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
	__u8 nf_hook;    /* checkpoints, NF_TABLE: nf_hook_state->hook (NF_INET_*) */
	__u8 nf_pf;      /* checkpoints, NF_TABLE: nf_hook_state->pf (NFPROTO_IPV4 / _IPV6) */
	__u8 nf_index;   /* checkpoints: which copy of the program */
	__u8 route_type; /* routes: fib6_result->fib6_type (RTN_*); 0 for IPv4 */
	__u8 saddr[16];  /* IPv4 in the first 4 bytes; routes: the flow's */
	__u8 daddr[16];
	char ifname[TP_IFNAMSIZ]; /* dev->name when the hook ran; routes: the output device */
	__u64 location;  /* drops: the kernel code that freed the packet */
	__u32 reason;    /* drops: enum skb_drop_reason, numbered by the running kernel; NF_TABLE: the verdict */
	__u32 table;     /* routes: the table looked up; NF_TABLE: the table's priority (signed) */
	__s32 error;     /* routes: 0 or -errno (IPv4) */
	__u8 gw_family;  /* routes: nhc_gw_family (AF_INET, AF_INET6, 0: no gateway) */
	__u8 inner_type; /* ICMP errors: type of the echo they quote */
	__u8 proto;      /* routes: the flow's protocol */
	__u8 pad;
	__u8 gateway[16]; /* routes: nhc_gw; NF_TABLE: the table's name */
	__u32 l4_rest;    /* bytes 4-7 of the L4 header, network order: ICMP's rest of header (an error's MTU), TCP's sequence number */
	__u32 iif;        /* routes: the flow's input interface (1, loopback: output routing) */
	__u16 sport;      /* TCP/UDP ports, host order; for an ICMP error, of the packet it quotes */
	__u16 dport;
	__u8 l4proto;     /* the packet's IP protocol */
	__u8 tcp_flags;   /* TCP: FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
	__u8 inner_proto; /* ICMP errors: IP protocol of the packet they quote */
	__u8 pad3;
};

/* With CFG.snap_len set, packet sightings carry the packet's first bytes. */
#define TP_SNAP_MAX 256

struct tp_packet {
	struct tp_event event;
	__u16 caplen;           /* bytes of data that are the packet's (the IP packet may be shorter) */
	__u8 pad[6];
	__u8 data[TP_SNAP_MAX]; /* from the IP header on */
};

/*
 * The filter language (src/filter/) compiled to postfix: TEST pushes one
 * bit, AND/OR pop two and push one, NOT flips the top.
 */
enum tp_filter_op { TP_OP_TEST = 1, TP_OP_AND = 2, TP_OP_OR = 3, TP_OP_NOT = 4 };
enum tp_filter_field { TP_FIELD_PROTO = 1, TP_FIELD_FAMILY = 2, TP_FIELD_ADDR = 3, TP_FIELD_PORT = 4 };
#define TP_DIR_SRC 1
#define TP_DIR_DST 2
#define TP_FILTER_MAX 32

struct tp_filter_insn {
	__u8 op;     /* enum tp_filter_op */
	__u8 field;  /* enum tp_filter_field */
	__u8 dir;    /* TP_DIR_SRC | TP_DIR_DST */
	__u8 value;  /* PROTO: IP protocol; FAMILY: 4 or 6; ADDR: prefix length (mask says it to the kernel) */
	__u16 port;
	__u8 family; /* ADDR: of addr */
	__u8 pad;
	__u8 addr[16];
	__u8 mask[16]; /* ADDR: the prefix as a mask, so matching needs no branches */
};

/* How packets are recognised. */
enum tp_match {
	TP_MATCH_MARKER = 0, /* ICMP echo carrying CFG.marker (ping probes) */
	TP_MATCH_FILTER = 1, /* CFG.filter (TCP/UDP probes, passive tracing), followed through NAT */
};

/*
 * Written by user space into .rodata before load: the verifier sees the
 * values as constants and prunes what a run does not need.
 */
struct tp_config {
	__u64 marker;        /* 8 bytes the probe carries in its ICMP payload, in packet order */
	__u16 marker_offset; /* where, counted from the ICMP header */
	__u8 family;         /* 0: both, 4 or 6 */
	__u8 match;          /* enum tp_match */
	__u32 current_ns;    /* how long after its receive a lookup can still be the probe's */
	__u8 target[16];     /* where the probe goes: matches the sender's own route lookup */
	__u8 filter_len;
	__u8 pad2[1];
	__u16 snap_len;      /* 0: no packet bytes; else up to TP_SNAP_MAX bytes per packet sighting */
	__u32 track_ns;      /* how long a recognised sk_buff stays recognised without being seen */
	struct tp_filter_insn filter[TP_FILTER_MAX];
};

#endif
