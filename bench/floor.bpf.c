// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * For the benchmark only: empty programs on the hooks tracepkt's filtered
 * tracing attaches to. What traffic pays for them is the floor: the cost
 * of hooking at all, which no program on these hooks can go below.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("tp_btf/net_dev_queue")
int floor_net_dev_queue(void *ctx) { return 0; }

SEC("tp_btf/netif_receive_skb")
int floor_netif_receive_skb(void *ctx) { return 0; }

SEC("tp_btf/kfree_skb")
int floor_kfree_skb(void *ctx) { return 0; }

SEC("tp_btf/consume_skb")
int floor_consume_skb(void *ctx) { return 0; }
