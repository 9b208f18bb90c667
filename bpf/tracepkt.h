/* SPDX-License-Identifier: MIT */
/*
 * The whole contract between the BPF programs and TypeScript: the records
 * the programs emit and the configuration user space writes before load.
 * TypeScript does not mirror it by hand: the build generates its view from
 * the built object's BTF (tools/gen-bindings.js → src/bpf/generated/), so a
 * field added here is there after the next build. Constants are enum members,
 * not #defines, so that they reach the BTF too.
 */
#ifndef TRACEPKT_H
#define TRACEPKT_H

enum tp_limits {
	TP_IFNAMSIZ = 16,
	/*
	 * Netfilter checkpoints: the same program body attached through BPF
	 * netfilter links at chosen priorities. A link cannot tell its program
	 * where it was attached, so there are TP_NF_CHECKPOINTS copies, each
	 * reporting its own index; user space knows which priority it gave each.
	 */
	TP_NF_CHECKPOINTS = 16,
	TP_SNAP_MAX = 256,    /* packet bytes a sighting carries at most (--pcap) */
	TP_FILTER_SLOTS = 1024, /* eBPF instructions a translated pcap filter may take (bpf/pcap.h) */
	TP_STACK_DEPTH = 12,  /* return addresses kept of a route lookup's kernel stack */
	TP_XT_NAME = 32,      /* XT_TABLE_MAXNAMELEN */
	TP_UDP_TUNNELS = 8,   /* UDP tunnel ports recognised */
	TP_NO_DROP_REASON = 0xffff, /* tp_drop.reason where the kernel gives none (kfree_skb before 5.17) */
	/*
	 * fexit on the XDP and tc programs on the path: copies of each, every
	 * one reporting its own index (a program cannot tell which program it
	 * traces); user space knows which program it aimed each copy at.
	 */
	TP_PROG_COPIES = 8,
};

/* What a record describes: which section follows its header. */
enum tp_event_kind {
	TP_EVENT_HOP = 1,           /* struct tp_hop: the packet seen on an interface */
	TP_EVENT_NF_CHECKPOINT = 2, /* struct tp_checkpoint: the packet reached a netfilter checkpoint */
	TP_EVENT_DROP = 3,          /* struct tp_drop: the kernel freed the packet as dropped */
	TP_EVENT_ROUTE = 4,         /* struct tp_route: a route lookup made for the packet */
	TP_EVENT_NF_TABLE = 5,      /* struct tp_table_verdict: an iptables-legacy table's verdict (kernels without netfilter links) */
	TP_EVENT_NEIGH = 6,         /* struct tp_neigh: the packet queued, waiting for its next hop's link-layer address */
	TP_EVENT_PROG_RETURN = 7,   /* struct tp_prog_return: an XDP or tc program on the path returned, for the packet */
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
	TP_HOOK_NEIGH = 8,             /* tp neigh:neigh_event_send_done */
	TP_HOOK_XDP = 9,               /* fexit on an XDP program */
	TP_HOOK_TC = 10,               /* fexit on a tc or tcx program */
};

/* tp_packet_fields.frag_flags */
enum tp_frag_flags {
	TP_FRAGMENT = 1,       /* the packet is an IP fragment */
	TP_MORE_FRAGMENTS = 2, /* more fragments follow it */
};

/* What every record starts with. */
struct tp_header {
	__u64 time_ns;            /* bpf_ktime_get_ns() when the hook ran: CLOCK_MONOTONIC */
	__u64 skb;                /* address of the struct sk_buff: the packet's identity in the kernel (routes: the
				   * packet the lookup was made for, 0 for the sender's own lookups) */
	__u32 netns;              /* from skb->dev->nd_net.net->ns.inum (checkpoints and table verdicts:
				   * nf_hook_state->net; routes: the lookup's namespace) */
	__u32 ifindex;            /* from skb->dev->ifindex (checkpoints and table verdicts: state->in, else
				   * state->out; routes: the chosen next hop's device) */
	char ifname[TP_IFNAMSIZ]; /* from the same device's name, when the hook ran */
	__u8 kind;                /* enum tp_event_kind */
	__u8 hook;                /* enum tp_hook */
	__u16 vlan;               /* hops: the 802.1Q tag the frame carries there, id + 1 (0: none seen): from skb->vlan_tci
				   * where offloaded, or the tag before the IP header on receive */
	__u32 lost;               /* tp_stats.lost when the record was written (low 32 bits): when two records
				   * differ, records between them were lost (the ring was full) */
};

/* The packet, from its headers as the hook saw them (bpf/packet.h reads them). */
struct tp_packet_fields {
	__u8 saddr[16];    /* from iphdr->saddr (the first 4 bytes) or ipv6hdr->saddr */
	__u8 daddr[16];    /* from iphdr->daddr or ipv6hdr->daddr */
	__u16 ip_len;      /* from iphdr->tot_len, or ipv6hdr->payload_len + 40; host order */
	__u16 sport;       /* from tcphdr->source / udphdr->source, host order; 0 for other protocols */
	__u16 dport;       /* from tcphdr->dest / udphdr->dest */
	__u8 family;       /* 4 or 6: the IP header's version */
	__u8 ttl;          /* from iphdr->ttl or ipv6hdr->hop_limit */
	__u8 proto;        /* from iphdr->protocol, or the last IPv6 next header (extension headers walked) */
	__u8 tcp_flags;    /* from the TCP header's byte 13: FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 */
	__u8 icmp_type;    /* from icmphdr->type / icmp6hdr->icmp6_type */
	__u8 icmp_code;    /* from icmphdr->code / icmp6hdr->icmp6_code */
	__u32 tcp_seq;     /* from tcphdr->seq, host order */
	__u8 icmp_info[4]; /* the ICMP header's bytes 4-7 as sent: an echo's identifier and sequence, the MTU of
			    * "fragmentation needed" (bytes 6-7) and of ICMPv6 "packet too big" (4-7) */
	__u32 frag_id;     /* fragments: from iphdr->id, or the IPv6 fragment header's identification */
	__u16 frag_offset; /* fragments: where this fragment's data goes, in bytes */
	__u8 frag_flags;   /* enum tp_frag_flags */
	__u8 pad;
};

/* What an ICMP error quotes: the packet it is about. */
struct tp_quoted {
	__u8 saddr[16];     /* from the quoted IP header */
	__u8 daddr[16];
	__u16 sport;        /* from the quoted TCP/UDP header */
	__u16 dport;
	__u8 echo_info[4];  /* the quoted ICMP header's bytes 4-7: its echo's identifier and sequence */
	__u8 present;       /* 1: the packet is an ICMP error and what it quotes was read */
	__u8 proto;         /* from the quoted IP header */
	__u8 icmp_type;     /* the quoted ICMP header's type (an echo request or reply) */
	__u8 pad;
};

/* How the probe was encapsulated where it was seen (tp_outer.tunnel). */
enum tp_tunnel {
	TP_TUNNEL_NONE = 0,
	TP_TUNNEL_VXLAN = 1,  /* UDP to a port CFG.udp_tunnels names VXLAN; Ethernet inside */
	TP_TUNNEL_GENEVE = 2, /* UDP to a port CFG.udp_tunnels names Geneve; Ethernet or IP inside */
	TP_TUNNEL_GRE = 3,    /* GRE carrying IP (gre, ip6gre) */
	TP_TUNNEL_GRETAP = 4, /* GRE carrying Ethernet (gretap, ip6gretap) */
	TP_TUNNEL_IPIP = 5,   /* IP directly in IP (ipip, sit, ip6tnl) */
	TP_TUNNEL_WIREGUARD = 6, /* WireGuard's transport data: the probe inside is encrypted, known by its sk_buff */
};

/*
 * The outer packet, where the probe travels encapsulated (zeros elsewhere):
 * tp_packet_fields then describe the probe inside it.
 */
struct tp_outer {
	__u8 saddr[16];  /* from the outer IP header */
	__u8 daddr[16];
	__u32 tunnel_id; /* from the VXLAN or Geneve header's VNI, or the GRE key; 0 without */
	__u16 sport;     /* from the outer UDP header (VXLAN, Geneve), host order; else 0 */
	__u16 dport;
	__u16 ip_len;    /* from the outer IP header, as tp_packet_fields.ip_len */
	__u8 tunnel;     /* enum tp_tunnel; TP_TUNNEL_NONE: not encapsulated */
	__u8 family;     /* the outer IP header's version */
	__u8 proto;      /* from the outer IP header: UDP 17, GRE 47, IPIP 4, IPv6 41 */
	__u8 ttl;        /* from the outer IP header */
	__u8 pad[2];
};

/*
 * The packet's conntrack entry as the kernel held it when the hook ran
 * (skb->_nfct; bpf/conntrack.h reads it). Zeros where none was attached:
 * conntrack has not run for the packet in this namespace yet (a receive
 * comes before PREROUTING; crossing namespaces clears it), does not run
 * there, or found the packet invalid.
 */
enum tp_ct_presence {
	TP_CT_NONE = 0,      /* no entry attached */
	TP_CT_ENTRY = 1,     /* an entry: the fields below */
	TP_CT_UNTRACKED = 2, /* marked untracked (a `notrack` rule): _nfct is IP_CT_UNTRACKED alone */
	TP_CT_UNREADABLE = 3, /* the kernel's BTF does not describe struct nf_conn (conntrack a module, kernels before 5.11) */
};

struct tp_conntrack {
	__u8 orig_saddr[16];  /* ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.u3 (IPv4 in the first 4 bytes) */
	__u8 orig_daddr[16];  /* ... .tuple.dst.u3 */
	__u8 reply_saddr[16]; /* ct->tuplehash[IP_CT_DIR_REPLY].tuple.src.u3: where NAT sends the reply from */
	__u8 reply_daddr[16];
	__u16 orig_sport;     /* tuple.src.u.all, host order: the source port; ICMP: the echo identifier */
	__u16 orig_dport;     /* tuple.dst.u.all, host order: the destination port; ICMP: type and code */
	__u16 reply_sport;
	__u16 reply_dport;
	__u32 status;         /* ct->status: enum ip_conntrack_status bits (IPS_ASSURED 4, IPS_DST_NAT 0x20, ...), low 32 */
	__u32 mark;           /* ct->mark (0 where the kernel has no CONFIG_NF_CONNTRACK_MARK) */
	__u16 zone;           /* ct->zone.id (0 where the kernel has no CONFIG_NF_CONNTRACK_ZONES) */
	__u8 ctinfo;          /* skb->_nfct & 7: enum ip_conntrack_info (ESTABLISHED 0, RELATED 1, NEW 2, +3 reply, UNTRACKED 7) */
	__u8 presence;        /* enum tp_ct_presence */
	__u8 proto;           /* tuple.dst.protonum */
	__u8 family;          /* 4 or 6, from tuple.src.l3num */
	__u8 pad[2];
};

struct tp_hop {
	struct tp_header h;
	struct tp_packet_fields p;
	struct tp_quoted q;
	struct tp_outer o;
	struct tp_conntrack ct;
};

struct tp_drop {
	struct tp_header h;
	struct tp_packet_fields p;
	struct tp_quoted q;
	struct tp_outer o;
	struct tp_conntrack ct;
	__u64 location; /* kfree_skb's location: the kernel code that freed the packet */
	__u32 reason;   /* kfree_skb's reason: enum skb_drop_reason, numbered by the running kernel */
	__u32 pad;
};

struct tp_checkpoint {
	struct tp_header h;
	struct tp_packet_fields p;
	struct tp_quoted q;
	struct tp_outer o;
	struct tp_conntrack ct;
	__u8 nf_hook; /* from nf_hook_state->hook (NF_INET_*) */
	__u8 nf_pf;   /* from nf_hook_state->pf (NFPROTO_IPV4 / _IPV6) */
	__u8 index;   /* which copy of the checkpoint program */
	__u8 pad[5];
};

struct tp_table_verdict {
	struct tp_header h;
	struct tp_packet_fields p;
	struct tp_quoted q;
	struct tp_outer o;
	struct tp_conntrack ct;
	__s32 priority;         /* from xt_table->priority */
	__u32 verdict;          /* ipt_do_table's / ip6t_do_table's result: NF_DROP 0, NF_ACCEPT 1, ... */
	__u8 nf_hook;           /* from nf_hook_state->hook */
	__u8 nf_pf;             /* from nf_hook_state->pf */
	__u8 pad[6];
	char table[TP_XT_NAME]; /* from xt_table->name */
};

/*
 * The packet handed to a neighbour that is not resolved yet: the kernel
 * queues it until ARP / neighbour discovery answers (and frees it, as
 * NEIGH_FAILED, when none does). h.ifindex and h.ifname: the neighbour's
 * device (neighbour->dev).
 */
struct tp_neigh {
	struct tp_header h;
	struct tp_packet_fields p;
	struct tp_quoted q;
	struct tp_outer o;
	struct tp_conntrack ct;
	__u8 next_hop[16]; /* from neighbour->primary_key: the address being resolved */
	__u8 family;       /* 4 or 6: from neighbour->tbl->family (ARP or neighbour discovery) */
	__u8 nud_state;    /* from neighbour->nud_state once it queued the packet (NUD_INCOMPLETE 0x01, ...) */
	__u8 pad[6];
};

/*
 * An XDP or tc (tcx) program of someone else's on the path returned, having
 * seen the packet (fexit on the program): the packet as the program left it.
 * h.skb is 0 for XDP (no sk_buff is handed to XDP; generic XDP's is not
 * reachable from it); h.ifindex is the device the program ran for.
 */
struct tp_prog_return {
	struct tp_header h;
	struct tp_packet_fields p;
	struct tp_quoted q;
	struct tp_outer o;
	struct tp_conntrack ct;
	__s32 ret;     /* the program's return code: enum xdp_action, or a tc action (TC_ACT_*, tcx's TCX_*) */
	__u8 copy;     /* which copy of the fexit program: user space knows its target */
	__u8 ingress;  /* tc: skb->tc_at_ingress (1 ingress, 0 egress); XDP: 1 */
	__u8 pad[2];
};

struct tp_route {
	struct tp_header h;
	__u8 saddr[16];   /* the flow's: flowi4->saddr / flowi6->saddr */
	__u8 daddr[16];
	__u8 gateway[16]; /* from fib_nh_common->nhc_gw */
	__u32 table;      /* the table looked up: tb_id / fib6_table->tb6_id */
	__s32 error;      /* fib_table_lookup's err: 0 or -errno (IPv4); IPv6: -ENETUNREACH where the lookup found
			   * no route (the namespace's fib6_null_entry), else 0 and route_type says */
	__s32 iif;        /* the flow's flowi_iif: LOOPBACK_IFINDEX (1) for output routing, the receiving device for input */
	__s32 stack_id;   /* in tp_stacks (bpf_get_stackid), for lookups whose flow names no protocol; else -1 */
	__u16 sport;      /* the flow's ports (flowi_uli), host order */
	__u16 dport;
	__u8 family;      /* 4 or 6: which tracepoint */
	__u8 proto;       /* the flow's flowi_proto */
	__u8 icmp_type;   /* the flow's ICMP type and code (flowi_uli, sharing the ports' bytes) */
	__u8 icmp_code;
	__u8 route_type;  /* IPv6: fib6_result->fib6_type (RTN_*); 0 for IPv4 */
	__u8 gw_family;   /* from fib_nh_common->nhc_gw_family: AF_INET, AF_INET6, 0 (no gateway) */
	__u8 pad[2];
};

/* With CFG.snap_len set, a packet record (hop, drop, checkpoint, table verdict) is followed by this. */
struct tp_snapshot {
	__u16 caplen;           /* bytes of data that are the packet's, never past the sk_buff's linear part */
	__u8 pad[6];
	__u8 data[TP_SNAP_MAX]; /* from the IP header on */
};

/* The placeholder's jumps: the slots less its two marker instructions (a #define: asm needs the number). */
#define TP_FILTER_PLACEHOLDER_JUMPS 1022

/* How packets are recognised. */
enum tp_match {
	TP_MATCH_MARKER = 0, /* ICMP echo carrying CFG.marker (ping probes) */
	TP_MATCH_FILTER = 1, /* the pcap filter placed in bpf/pcap.h's slot (passive tracing), followed through NAT */
	TP_MATCH_FLOW = 2,   /* exactly CFG.flow, either way, and what NAT made of it (TCP/UDP probes) */
};

/* How bytes beyond the linear part of an sk_buff are read (bpf/packet.h). */
enum tp_reader {
	TP_READER_LINEAR = 0, /* they are not: such reads fail */
	TP_READER_DYNPTR = 1, /* bpf_dynptr_from_skb (tracing programs, 6.10+) */
	TP_READER_PAGES = 2,  /* the fragment's page through the direct map (x86-64) */
};

/* A packet's addresses, protocol and ports (0 without ports): what a flow is. */
struct tp_tuple {
	__u8 saddr[16]; /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;    /* host order */
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u8 pad[2];
};

/* A UDP destination port that carries a tunnel (VXLAN's 4789 and Linux's 8472, Geneve's 6081...). */
struct tp_udp_tunnel {
	__u16 port;  /* host order */
	__u8 tunnel; /* enum tp_tunnel: VXLAN or GENEVE */
	__u8 pad;
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
	__u8 filter;         /* TP_MATCH_FILTER: 1 when a filter is placed (else every packet matches) */
	__u8 reader;         /* enum tp_reader */
	__u16 snap_len;      /* 0: no packet bytes; else up to TP_SNAP_MAX bytes per packet sighting */
	__u32 track_ns;      /* how long a recognised sk_buff stays recognised without being seen */
	__u64 page_offset_base; /* TP_READER_PAGES: the addresses of the kernel's page_offset_base */
	__u64 vmemmap_base;     /* and vmemmap_base variables (from kallsyms) */
	struct tp_tuple flow;   /* TP_MATCH_FLOW: the probe's flow as it leaves the sender */
	struct tp_udp_tunnel udp_tunnels[TP_UDP_TUNNELS]; /* UDP ports that carry tunnels; port 0 ends the list */
	__u16 filter_reach;     /* bytes from the network header the filter may read: more than PKT_FIRST fetches PKT_BYTES */
	__u8 pad2[6];
};

/* Counters user space reports: one set shared by all CPUs, written (atomically) only when a record is lost. */
struct tp_stats {
	__u64 lost; /* records dropped because the ring buffer was full */
};

#endif
