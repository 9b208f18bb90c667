/* SPDX-License-Identifier: GPL-2.0 */
#pragma once
/*
 * Subprograms verified once per program, whatever the number of callers and
 * paths: global functions. From 5.12 on the verifier checks pointer
 * arguments of global functions; before (5.10), it refuses them ("Arg#0 type
 * PTR in parse_ip() is not supported yet"), and static subprograms, verified
 * with each caller, take tracepkt's programs past the verifier's million
 * instructions. So the object built for older kernels (TP_COMPAT:
 * tracepkt.compat.bpf.o, mangle.compat.bpf.o) keeps them global with plain
 * numbers for arguments: each caller copies what it passes into an argument
 * slot of this CPU (a map value), the global function finds it there by its
 * number, and the caller copies the results back.
 *
 * TP_GLOBAL(name) begins the function: the global function itself in the
 * newer kernels' object, its body (name_body, inlined into the global
 * name_slot) in the older kernels' one, where `name` is the caller's side.
 */
#ifdef TP_COMPAT
#define TP_GLOBAL(name) static __always_inline int name##_body

/* Enough for the largest arguments passed (checked where each is defined). */
#define TP_ARGS_SIZE 192
/* Programs nest on a CPU (task, softirq, hardirq, NMI) and a subprogram may call another. */
#define TP_ARGS_SLOTS 8

struct tp_args {
	__u8 b[TP_ARGS_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TP_ARGS_SLOTS);
	__type(key, __u32);
	__type(value, struct tp_args);
} tp_args SEC(".maps");

/* Slots in use on this CPU now. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tp_args_depth SEC(".maps");

/* The next free slot (its number in *slot), or NULL; args_release gives it back either way. */
static __always_inline void *args_claim(__u32 *slot)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&tp_args_depth, &zero);

	if (!depth)
		return NULL;
	*slot = (*depth)++;
	if (*slot >= TP_ARGS_SLOTS)
		return NULL;
	return bpf_map_lookup_elem(&tp_args, slot);
}

static __always_inline void args_release(void)
{
	__u32 zero = 0;
	__u32 *depth = bpf_map_lookup_elem(&tp_args_depth, &zero);

	if (depth && *depth > 0)
		(*depth)--;
}

static __always_inline void *args_at(__u32 slot)
{
	return bpf_map_lookup_elem(&tp_args, &slot);
}

#define TP_ARGS_FIT(type) _Static_assert(sizeof(type) <= TP_ARGS_SIZE, #type " must fit an argument slot")
#else
#define TP_GLOBAL(name) __noinline int name
#endif
