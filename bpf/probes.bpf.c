// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * Tiny programs `tracepkt doctor` loads one at a time to learn what the
 * running kernel allows: capabilities are measured, never guessed from a
 * version number. Each does nothing.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* BPF trampolines: refused on some kernels even where BTF exists. */
SEC("fentry/ip_rcv")
int BPF_PROG(probe_fentry)
{
	return 0;
}

/* Needs CONFIG_KPROBES. */
SEC("kprobe/ip_rcv")
int probe_kprobe(void *ctx)
{
	return 0;
}

/*
 * Retyped to BPF_PROG_TYPE_NETFILTER from user space before load (libbpf
 * 1.1.2 knows no section for it); returns NF_ACCEPT.
 */
SEC("socket")
int probe_netfilter(void *ctx)
{
	return 1;
}

/*
 * Tracing programs may read an sk_buff through a dynptr from 6.10 on
 * (bpf_dynptr_from_skb allowed for tp_btf): then packets are read beyond
 * their linear part without knowing the kernel's memory layout.
 */
struct __sk_buff;
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym __weak;

SEC("tp_btf/net_dev_queue")
int BPF_PROG(probe_dynptr, void *skb)
{
	struct bpf_dynptr p;
	__u8 byte;

	if (!bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &p))
		bpf_dynptr_read(&byte, sizeof(byte), &p, 0, 0);
	return 0;
}

/*
 * Global functions with pointer arguments, verified once whatever their
 * callers (5.12+). Where refused, tracepkt loads the objects built for older
 * kernels (bpf/subprog.h).
 */
__noinline int probe_pointer_arg_sub(const __u32 *x)
{
	return x ? (int)*x : 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(probe_pointer_args)
{
	__u32 v = 0;

	return probe_pointer_arg_sub(&v);
}

/*
 * fexit on a BPF program (what tracepkt uses to learn the return codes of
 * the XDP and tc programs on a probe's path): doctor loads probe_xdp_target,
 * then probe_fexit_program aimed at it in a second instance.
 */
SEC("xdp")
int probe_xdp_target(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("fexit")
int BPF_PROG(probe_fexit_program, void *xdp, int ret)
{
	return 0;
}
