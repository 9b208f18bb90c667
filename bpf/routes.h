/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Route lookups made for the probe (tp fib:fib_table_lookup, fib6:fib6_table_lookup).
 * They carry no packet: see route_netns for how they are tied to one.
 */
#ifndef TRACEPKT_ROUTES_H
#define TRACEPKT_ROUTES_H

/*
 * Why a route lookup was made (input, output, a reverse-path check) is in
 * its caller chain, not in its flow alone: rp_filter's check and ICMP's
 * re-lookup of an error's way build the same flow. Kept only for lookups
 * whose flow names no protocol; user space names the functions.
 */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 256);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, TP_STACK_DEPTH * sizeof(__u64));
} tp_stacks SEC(".maps");

/* Processes that send the probe (ping, registered by user space before it
 * runs): their route lookups towards the target are the probe's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} tp_senders SEC(".maps");

static __always_inline bool is_zero_addr(const __u8 *a, __u8 family)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i >= 4 && family == 4)
			break;
		if (a[i])
			return false;
	}
	return true;
}

static __always_inline bool same_addr(const __u8 *a, const __u8 *b, __u8 family)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i >= 4 && family == 4)
			break;
		if (a[i] != b[i])
			return false;
	}
	return true;
}

/* Compared byte by byte from CFG itself: a cast dropping `volatile` would
 * let clang fold the unset-at-compile-time target to zeros. */
static __always_inline bool is_target(const __u8 *a, __u8 family)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i >= 4 && family == 4)
			break;
		if (a[i] != CFG.target[i])
			return false;
	}
	return true;
}

/*
 * The namespace of the task running now (a sender's own route lookup runs in
 * its process). Not inlined: clang would otherwise merge this load with the
 * one from tp_current, and the verifier refuses an instruction that reads
 * through two kinds of pointer.
 */
static __noinline __u32 task_netns(void)
{
#ifdef TP_COMPAT
	/* bpf_get_current_task_btf is 5.11+: before, the task is read as kernel memory. */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
#else
	struct task_struct *task = bpf_get_current_task_btf();
	struct nsproxy *ns = task->nsproxy;

	return ns ? ns->net_ns->ns.inum : 0;
#endif
}

#define LOOPBACK_IFINDEX 1
#define ENETUNREACH 101

/*
 * The flow a tunnel device builds for its outer packet, towards its remote
 * endpoint: UDP to a tunnel port (VXLAN, Geneve), GRE, or IP in IP / IPv6 in
 * IP (ipip, sit, ip6tnl). Its addresses are the tunnel's, not the probe's.
 */
static __always_inline bool is_tunnel_flow(__u8 proto, __u16 dport)
{
	return (proto == IPPROTO_UDP && udp_tunnel(dport) != TP_TUNNEL_NONE) || proto == IPPROTO_GRE ||
	       proto == IPPROTO_IPIP || proto == IPPROTO_IPV6;
}

/*
 * Route lookups. A lookup is the probe's when this CPU is receiving the
 * probe and the flow is between the same two addresses (either way), or
 * when a registered sender routes towards the target (ping's own lookups:
 * its source-address probe and its sends). The sender must be doing output
 * routing in its own namespace: packets the kernel handles on the back of
 * ping's system calls (softirqs) run with ping as the current task too.
 * `lookup_netns` is the lookup's namespace where known, else 0.
 * Returns the namespace to record, 0 if not the probe's.
 */
static __always_inline __u32 route_netns(__u8 family, __u8 proto, __u16 dport, const __u8 *saddr, const __u8 *daddr,
					 int iif, __u32 lookup_netns, __u64 *skb)
{
	__u32 zero = 0, tgid, netns;
	struct current_packet *cur = bpf_map_lookup_elem(&tp_current, &zero);

	/*
	 * The packet being received (of any family: a tunnel's outer packet may
	 * differ from the probe's) made this lookup when every address the flow
	 * names (the unset source aside) is one of the packet's, the namespace is
	 * the packet's (where the lookup says its own), and the flow's protocol
	 * is the packet's, or none (reverse-path checks, NAT's re-routing), or
	 * ICMP (an error about the packet).
	 */
	if (cur && cur->skb && cur->family == family && bpf_ktime_get_ns() - cur->since < CFG.current_ns &&
	    (!lookup_netns || lookup_netns == cur->netns) &&
	    (proto == 0 || proto == cur->proto || is_icmp(family, proto)) &&
	    (same_addr(daddr, cur->saddr, family) || same_addr(daddr, cur->daddr, family)) &&
	    (is_zero_addr(saddr, family) || same_addr(saddr, cur->saddr, family) || same_addr(saddr, cur->daddr, family))) {
		*skb = cur->skb;
		return cur->netns;
	}
	/*
	 * A tunnel device looks up the way to its remote endpoint inside its
	 * transmit, right after the probe was handed to it on this CPU (a noqueue
	 * device: hops.h): the outer packet's route, of either family. Any other
	 * transmit, receive or free on this CPU ends the slot, and it lasts a
	 * tenth of the receive slot's time. It is made in the namespace the
	 * device was created in (Docker moves its VXLAN devices into another):
	 * where the lookup does not say (IPv4 failures), the device's is recorded.
	 */
	if (is_tunnel_flow(proto, dport) && cur && cur->queued_skb && bpf_ktime_get_ns() - cur->queued_since < CFG.current_ns / 10) {
		*skb = cur->queued_skb;
		return lookup_netns ? lookup_netns : cur->queued_netns;
	}
	if (CFG.family && CFG.family != family)
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (iif != LOOPBACK_IFINDEX || !bpf_map_lookup_elem(&tp_senders, &tgid) || !is_target(daddr, family))
		return 0;
	netns = task_netns();
	return lookup_netns && lookup_netns != netns ? 0 : netns;
}

static __always_inline void copy_addr(__u8 *to, const void *from, __u8 family)
{
	if (family == 4)
		__builtin_memcpy(to, from, 4);
	else
		__builtin_memcpy(to, from, 16);
}

/* A lookup's flow and result, as both tracepoints give them: one record for either family. */
struct lookup {
	__u8 family, proto, icmp_type, icmp_code, route_type, gw_family;
	__u16 sport, dport;
	int iif, err;
	__u32 table, netns;
	const __u8 *saddr, *daddr;
	__u64 skb;
	struct net_device *dev; /* the chosen next hop's device, or NULL */
	const void *gateway;    /* its nhc_gw, or NULL */
};

static __always_inline void emit_route(void *ctx, struct lookup *l)
{
	struct tp_route *r = reserve(sizeof(*r));

	if (!r)
		return;
	fill_header(&r->h, TP_EVENT_ROUTE, l->family == 4 ? TP_HOOK_FIB : TP_HOOK_FIB6, l->skb, l->netns, l->dev);
	r->family = l->family;
	r->proto = l->proto;
	r->icmp_type = l->icmp_type;
	r->icmp_code = l->icmp_code;
	r->sport = l->sport;
	r->dport = l->dport;
	r->table = l->table;
	r->error = l->err;
	r->iif = l->iif;
	r->route_type = l->route_type;
	r->gw_family = l->gw_family;
	/* What the lookup was for is in its caller chain when its flow names no protocol. The
	 * innermost frame is this program's own (JIT code at a new address each run): skipped,
	 * the rest is core kernel code whose names hold for the boot. */
	r->stack_id = l->proto ? -1 : bpf_get_stackid(ctx, &tp_stacks, 1 & BPF_F_SKIP_FIELD_MASK);
	copy_addr(r->saddr, l->saddr, l->family);
	copy_addr(r->daddr, l->daddr, l->family);
	if (l->gateway)
		bpf_probe_read_kernel(r->gateway, 16, l->gateway);
	bpf_ringbuf_submit(r, 0);
}

/* What flowi4 and flowi6 share, by the same names: the flow's protocol, ICMP type or ports, input device. */
#define FLOW_FIELDS(flp)                                                                                   \
	.proto = (flp)->__fl_common.flowic_proto, .icmp_type = (flp)->uli.icmpt.type,                       \
	.icmp_code = (flp)->uli.icmpt.code, .sport = bpf_ntohs((flp)->uli.ports.sport),                      \
	.dport = bpf_ntohs((flp)->uli.ports.dport), .iif = (flp)->__fl_common.flowic_iif

SEC("tp_btf/fib_table_lookup")
int BPF_PROG(tp_fib_table_lookup, __u32 tb_id, const struct flowi4 *flp, const struct fib_nh_common *nhc, int err)
{
	__be32 saddr = flp->saddr, daddr = flp->daddr;
	struct lookup l = {
		.family = 4,
		FLOW_FIELDS(flp),
		.err = err,
		.table = tb_id,
		.saddr = (__u8 *)&saddr,
		.daddr = (__u8 *)&daddr,
	};

	/* IPv4 lookups do not say their namespace; the chosen device does. */
	l.netns = route_netns(4, l.proto, l.dport, l.saddr, l.daddr, l.iif, nhc && !err ? dev_netns(nhc->nhc_dev) : 0, &l.skb);
	if (!l.netns)
		return 0;
	if (nhc && !err) {
		l.dev = nhc->nhc_dev;
		l.gw_family = nhc->nhc_gw_family;
		l.gateway = &nhc->nhc_gw;
	}
	emit_route(ctx, &l);
	return 0;
}

SEC("tp_btf/fib6_table_lookup")
int BPF_PROG(tp_fib6_table_lookup, const struct net *net, const struct fib6_result *res, struct fib6_table *table,
	     const struct flowi6 *flp)
{
	struct in6_addr saddr = flp->saddr, daddr = flp->daddr;
	struct fib6_nh *nh = res->nh;
	/* No route at all looks like an unreachable one (RTN_UNREACHABLE): the null entry tells them apart. */
	int none = res->f6i && res->f6i == net->ipv6.fib6_null_entry ? -ENETUNREACH : 0;
	struct lookup l = {
		.family = 6,
		FLOW_FIELDS(flp),
		.table = table ? table->tb6_id : 0,
		.route_type = res->fib6_type,
		.err = none,
		.netns = net->ns.inum,
		.saddr = saddr.in6_u.u6_addr8,
		.daddr = daddr.in6_u.u6_addr8,
	};

	if (!route_netns(6, l.proto, l.dport, l.saddr, l.daddr, l.iif, l.netns, &l.skb))
		return 0;
	if (nh) {
		l.dev = nh->nh_common.nhc_dev;
		l.gw_family = nh->nh_common.nhc_gw_family;
		l.gateway = &nh->nh_common.nhc_gw;
	}
	emit_route(ctx, &l);
	return 0;
}

#endif
