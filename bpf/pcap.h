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
 * Static and never inlined: one copy per program, verified with its
 * caller's argument types (packet pointers, a map value), which a global
 * function could not take on every kernel. Arguments as src/filter/cbpf.ts's
 * calling conventions say, in r1-r4 when the asm begins (register
 * variables: clang may have dropped or moved a constant argument); the
 * result is r0 when the asm ends, and the function's exit follows
 * (src/bpf/filter-slot.ts checks that the object was built so). Not naked: clang leaves a
 * naked function's parameters unnamed in BTF, which the kernel refuses.
 */
#ifndef TRACEPKT_PCAP_H
#define TRACEPKT_PCAP_H

_Static_assert(TP_FILTER_PLACEHOLDER_JUMPS + 2 == TP_FILTER_SLOTS, "the placeholder fills the slots");

#define TP_STR(x) #x
#define TP_XSTR(x) TP_STR(x)

static __noinline int pcap_filter(const void *a, __u64 b, __u32 at, __u32 len)
{
	/* Each in its register at the asm, whatever clang made of the call (it propagates constants). */
	register __u64 r1 asm("r1") = (__u64)a;
	register __u64 r2 asm("r2") = b;
	register __u64 r3 asm("r3") = at;
	register __u64 r4 asm("r4") = len;
	register __u64 r0 asm("r0");

	asm volatile("r0 = 0x74706b74;\n" /* "tpkt" */
		     "r0 = 0x66696c74;\n" /* "filt" */
		     ".rept " TP_XSTR(TP_FILTER_PLACEHOLDER_JUMPS) "\n"
		     "goto +0;\n"
		     ".endr\n"
		     /* Written, as far as clang knows: a caller must not expect r1-r5 kept (the verifier does
		      * not). r6-r9 are written too, and not said: the kernel keeps them for the caller across
		      * the call, and nothing of clang's runs between the asm and the exit. */
		     : "=r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(r4)
		     :
		     : "r5", "memory");
	return r0; /* already in r0: the exit follows the slots */
}

#endif
