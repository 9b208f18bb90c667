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
