// SPDX-License-Identifier: MIT
/*
 * The tests' own witness of whether the kernel runs BPF trampolines (what
 * fexit on someone else's BPF programs needs): `bpftool prog load` of this
 * fentry program succeeds there and is refused elsewhere (EPERM on the
 * build machines' kernel). Independent of tracepkt's code; never attached.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("fentry/ip_rcv")
int BPF_PROG(fentry_witness)
{
	return 0;
}
