/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Arithmetic the verifier walks without forking: a branch on packet data
 * doubles the paths it explores from there, and those multiply (a filter of
 * three terms cost ~15 ms to load per program before its tests were made
 * branch-free; so did the IPv6 extension-header walk).
 */
#ifndef TRACEPKT_BITS_H
#define TRACEPKT_BITS_H

/* 1 when a == b, else 0, as arithmetic. */
static __always_inline __u32 same(__u32 a, __u32 b)
{
	__u32 x = a ^ b;

	barrier_var(x); /* keep clang from turning this back into a compare-and-branch */
	return ((x | -x) >> 31) ^ 1;
}

/* c (0 or 1) ? a : b, as arithmetic. */
static __always_inline __u32 pick(__u32 c, __u32 a, __u32 b)
{
	barrier_var(c);
	return b ^ ((a ^ b) & -c);
}

/*
 * x & mask, with the mask kept: clang drops a mask it can prove useless,
 * and the verifier, which cannot, then sees an unbounded length.
 */
static __always_inline __u32 bounded(__u32 x, __u32 mask)
{
	barrier_var(x);
	return x & mask;
}

#endif
