/**
 * The last line of a journey: one plain sentence on what happened to the
 * probe, from the most telling evidence: a reply, a netfilter verdict, a
 * drop (explained by the route, the neighbour or the ICMP error it
 * concerns), an ICMP error, a failed route lookup, or the last place the
 * probe was seen.
 */
import type { DropEvent, HopEvent, NetfilterEvent, RouteEvent, TraceEvent } from './events';
import { describeIcmpError } from './icmp';
import { chainLabel, decidedBy } from './render/table';

/** Interfaces that are down, by namespace inode. */
export type DownInterfaces = ReadonlyMap<number, string[]>;

const nsName = (e: { netns: number; netns_name: string | null }) => e.netns_name ?? String(e.netns);

const ROUTE_ERRORS: Record<string, string> = {
  'no route': 'no route to',
  unreachable: 'unreachable route to',
  blackhole: 'blackhole route to',
  prohibit: 'prohibit route to',
};

function routeFailure(r: RouteEvent, down: DownInterfaces): string {
  const off = down.get(r.netns) ?? [];
  const hint = off.length ? `; down there: ${off.join(', ')}` : '';
  return `${ROUTE_ERRORS[r.error!] ?? `${r.error} route to`} ${r.dst} (table ${r.table}${hint})`;
}

const icmpError = (e: HopEvent) => describeIcmpError(e.family, e.icmp_type, e.icmp_code, e.mtu);

/** Why a drop happened, in words, from what else happened to the packet in that namespace. */
function explainDrop(d: DropEvent, events: readonly TraceEvent[], down: DownInterfaces): string {
  const routes = events.filter((e): e is RouteEvent => e.kind === 'route' && e.netns === d.netns && (e.skb === d.skb || e.skb === '0'));
  const failed = routes.find((r) => r.error !== null && r.purpose !== 'reverse-path');
  if (failed) return routeFailure(failed, down);
  if (d.reason.startsWith('NEIGH_')) {
    const via = routes.filter((r) => r.oif !== null && r.purpose !== 'reverse-path').pop();
    const protocol = d.family === 4 ? 'ARP' : 'neighbour discovery';
    return `next hop ${via?.gateway ?? d.dst} did not answer ${protocol}${via?.oif ? ` on ${via.oif}` : ''} (${d.reason})`;
  }
  if (d.reason === 'IP_RPFILTER') {
    const reverse = routes.find((r) => r.purpose === 'reverse-path');
    const back = reverse?.oif ? `replies to ${d.src} would leave by ${reverse.oif}` : `no route back to ${d.src}`;
    return `reverse path filter: ${back}, but it came in on ${d.ifname || 'another interface'}`;
  }
  // The kernel told the sender why, in an ICMP error from here: its words beat the reason's.
  const told = events.find((e): e is HopEvent => e.kind === 'hop' && e.dir === 'error' && e.netns === d.netns);
  if (told) return icmpError(told);
  return d.reason.toLowerCase().replace(/_/g, ' ');
}

export function verdictLine(events: readonly TraceEvent[], replied: boolean, down: DownInterfaces = new Map()): string {
  const hops = events.filter((e): e is HopEvent => e.kind === 'hop');
  const reply = hops.find((h) => h.dir === 'reply');
  if (replied && reply) {
    if (reply.proto !== 6) return 'delivered and answered';
    // The first reply hop is the server itself; the last, what the sender saw (NAT may differ).
    const seen = [...hops].reverse().find((h) => h.dir === 'reply' && h.tcp_flags === reply.tcp_flags)!;
    const via = seen.src !== reply.src || seen.sport !== reply.sport ? ` (reached as ${seen.src}:${seen.sport})` : '';
    const answer = reply.tcp_flags.includes('R') ? `RST: port ${reply.sport} closed` : `SYN-ACK: port ${reply.sport} open`;
    return `answered with ${answer} on ${reply.src}${via}`;
  }

  const firstError = hops.find((h) => h.dir === 'error');
  const errorNote = firstError ? `; ${firstError.family === 6 ? 'ICMPv6' : 'ICMP'} error sent back by ${firstError.src}` : '';

  const stopped = events.find((e): e is NetfilterEvent => e.kind === 'netfilter' && e.verdict !== 'ACCEPT');
  if (stopped) return `dropped in namespace ${nsName(stopped)} by ${chainLabel(stopped)}: ${decidedBy(stopped)}${errorNote}`;

  const drop = events.find((e): e is DropEvent => e.kind === 'drop' && e.dir !== 'error');
  if (drop) {
    const where = drop.location.replace(/\+0x[0-9a-f]+$/, '');
    return `dropped in namespace ${nsName(drop)} at ${where}: ${explainDrop(drop, events, down)}${errorNote}`;
  }
  if (firstError) return `${icmpError(firstError)} from ${firstError.src} (namespace ${nsName(firstError)})`;
  const failed = events.find((e): e is RouteEvent => e.kind === 'route' && e.error !== null && e.purpose !== 'reverse-path');
  if (failed) return `not sent: ${routeFailure(failed, down)} in namespace ${nsName(failed)}`;
  const last = hops[hops.length - 1];
  if (!last) return 'not seen on any interface';
  return `no reply: last seen as ${last.dir} on ${last.ifname} in namespace ${nsName(last)} (${last.hook})`;
}
