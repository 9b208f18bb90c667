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

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum; /* the inode number `ls -i /proc/PID/ns/net` shows */
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
};

struct sk_buff {
	struct net_device *dev;
	unsigned char *head;
	unsigned char *data;
	__u16 network_header;
};

/* The netfilter hook's view of a packet (kernel 6.4+: BPF_PROG_TYPE_NETFILTER). */
struct nf_hook_state {
	__u8 hook;
	__u8 pf;
	struct net_device *in;
	struct net_device *out;
	struct net *net;
};

struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
};

#pragma clang attribute pop

#endif
