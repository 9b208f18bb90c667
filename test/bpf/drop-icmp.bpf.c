// SPDX-License-Identifier: MIT
/*
 * Someone else's programs, for the tests: they drop IPv4 ICMP and pass
 * everything else, as XDP (`ip link set dev X xdp obj ... sec xdp`) and as
 * a tc classifier in direct-action mode (`tc filter add ... bpf da obj ...
 * sec tc`). Built with BTF (-g), as clang builds programs by default.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

static __always_inline int is_icmp(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	return ip->protocol == IPPROTO_ICMP;
}

SEC("xdp")
int drop_icmp_xdp(struct xdp_md *ctx)
{
	return is_icmp((void *)(long)ctx->data, (void *)(long)ctx->data_end) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int drop_icmp_tc(struct __sk_buff *skb)
{
	return is_icmp((void *)(long)skb->data, (void *)(long)skb->data_end) ? TC_ACT_SHOT : TC_ACT_OK;
}
