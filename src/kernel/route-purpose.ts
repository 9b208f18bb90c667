/**
 * What a route lookup made for the probe was for: input routing, output
 * routing (the sender's, or an answer's: an echo reply, an ICMP error, a
 * SYN-ACK or RST), or a reverse-path check (rp_filter, netfilter's rpfilter
 * and fib expressions). Told from what the kernel was doing:
 *
 * - the lookup's caller chain, where the programs kept it (lookups whose
 *   flow names no protocol: rp_filter's check of a forwarded packet and
 *   ICMP's re-lookup of an error's way build the very same flow, input
 *   routing from the far side);
 * - else the flow itself: the input interface says input or output, and
 *   among output lookups back towards the packet's source, answers route a
 *   flow of their own protocol (with ports, or an ICMPv6 type) while
 *   reverse-path checks build a bare one (IPv4: no protocol; IPv6's
 *   rpfilter keeps the packet's next header, no ports, no ICMP type).
 *   Without rp_filter the kernel makes no such lookup at all.
 */
import type { HopEvent, RouteEvent } from '../events';
import type { Kallsyms } from './kallsyms';

/** Return addresses of the kernel's stack at a lookup, innermost first (read from tp_stacks). */
export const routeStacks = new WeakMap<RouteEvent, bigint[]>();

/** Functions that say what a lookup is for, as kallsyms names them (static ones may be inlined: their callers too). */
const PURPOSES: [RegExp, RouteEvent['purpose']][] = [
  [/^(__)?fib_validate_source(_reason)?$|^rpfilter_(mt|lookup_reverse6?)$|^nft_fib[46]_eval$|^ip6t?_?rpfilter/, 'reverse-path'],
  [/^ip_route_input(_slow|_rcu|_noref|_mc)?$|^ip_route_use_hint$|^ip6_route_input(_lookup)?$|^ip6_pol_route_input$/, 'input'],
  [/^(__)?ip_route_output_key(_hash(_rcu)?)?$|^ip_route_output_flow$|^ip6_(pol_route_output|route_output_flags|dst_lookup_tail)$/, 'output'],
];

/** Callers that look a route up for an ICMP error they are about to send (its way, or its re-lookup). */
const FOR_ICMP_ERROR = /^(icmp_route_lookup|__icmp_send|icmp6_send|icmpv6_route_lookup)$/;

/** Whether the stack is that of an ICMP error being sent. */
export function forIcmpError(functions: readonly string[]): boolean {
  return functions.some((fn) => FOR_ICMP_ERROR.test(fn.replace(/\+0x[0-9a-f]+$/, '')));
}

/** The purpose the innermost telling function in the stack gives; null if none is known. */
export function purposeFromStack(functions: readonly string[]): RouteEvent['purpose'] | null {
  for (const fn of functions) {
    const name = fn.replace(/\+0x[0-9a-f]+$/, '');
    for (const [re, purpose] of PURPOSES) if (re.test(name)) return purpose;
  }
  return null;
}

export function isReversePathCheck(r: RouteEvent, packet: Pick<HopEvent, 'src' | 'dst' | 'proto'>): boolean {
  if (r.purpose !== 'output' || r.src !== packet.dst || r.dst !== packet.src) return false;
  if (r.sport !== 0 || r.dport !== 0 || r.flow_icmp_type !== 0) return false;
  return r.family === 4 ? r.proto === 0 : r.proto === 0 || r.proto === packet.proto;
}

/** Sets each lookup's purpose from its stack (names looked up in `kallsyms`, without blocking) or its flow. */
export async function classifyRoutes(routes: RouteEvent[], hops: readonly HopEvent[], kallsyms?: Kallsyms): Promise<void> {
  const stacked = kallsyms ? routes.filter((r) => routeStacks.has(r)) : [];
  if (kallsyms && stacked.length > 0) await kallsyms.symbolizeAll(stacked.flatMap((r) => routeStacks.get(r)!));
  for (const r of routes) {
    // An ICMP error's own flow names its type (icmp_route_lookup sets it).
    if ((r.proto === 1 && [3, 11, 12].includes(r.flow_icmp_type)) || (r.proto === 58 && r.flow_icmp_type >= 1 && r.flow_icmp_type <= 4)) r.for_icmp_error = true;
    const stack = kallsyms && routeStacks.get(r);
    const names = stack ? stack.map((a) => kallsyms.cached(a) ?? '') : [];
    const told = purposeFromStack(names);
    if (forIcmpError(names)) r.for_icmp_error = true;
    if (told) {
      r.purpose = told;
      continue;
    }
    if (r.skb === '0') continue;
    const packet = hops.find((h) => h.skb === r.skb);
    if (packet && isReversePathCheck(r, packet)) r.purpose = 'reverse-path';
  }
}
