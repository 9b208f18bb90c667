/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The slot a pcap-filter expression runs in. libpcap compiles it to classic
 * BPF in user space, src/filter/cbpf.ts translates that to eBPF, and
 * src/bpf/filter-slot.ts writes it over this function's body in the object
 * file's bytes before the object is opened: the same number of instructions,
 * so no offset, relocation or line of BTF moves. The body is a marker (two
 * loads of r0 no compiler emits in a row) and TP_FILTER_SLOTS - 2 jumps by 0,
 * then the exit every path of the translated filter jumps to, with r0 its
 * result (0: no match). Unfilled, it matches everything; CFG says whether a
 * filter was placed, so an unfilled slot is never called.
 *
 * Naked: clang adds nothing of its own. Static and never inlined: one copy
 * per program, verified with its caller's argument types (packet pointers,
 * a map value), which a global function could not take on every kernel.
 * Arguments as src/filter/cbpf.ts's calling conventions say; the function
 * itself is declared without them, since clang leaves a naked function's
 * parameters unnamed in BTF and the kernel refuses such BTF (and libbpf
 * then loads without any, every global function verified as static).
 */
#ifndef TRACEPKT_PCAP_H
#define TRACEPKT_PCAP_H

_Static_assert(TP_FILTER_PLACEHOLDER_JUMPS + 2 == TP_FILTER_SLOTS, "the placeholder fills the slots");

#define TP_STR(x) #x
#define TP_XSTR(x) TP_STR(x)

static __noinline __attribute__((naked)) int pcap_filter_slot(void)
{
	asm volatile("r0 = 0x74706b74;\n" /* "tpkt" */
		     "r0 = 0x66696c74;\n" /* "filt" */
		     ".rept " TP_XSTR(TP_FILTER_PLACEHOLDER_JUMPS) "\n"
		     "goto +0;\n"
		     ".endr\n"
		     "exit;\n" ::: "memory");
}

/* pcap_filter(packet or bytes, data_end or n, at, len): the slot, called with its arguments. */
typedef int (*pcap_filter_fn)(const void *a, __u64 b, __u32 at, __u32 len);
#define pcap_filter ((pcap_filter_fn)pcap_filter_slot)

#endif
