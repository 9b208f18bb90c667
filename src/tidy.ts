/**
 * What the kernel reports, made into a journey a person reads: repeated
 * identical route lookups shown once, address-type checks not shown as
 * routing decisions, and packets freed after they arrived (a socket purged
 * its queue on close) not shown as drops on the path.
 */
import type { HopEvent, RouteEvent, TraceEvent } from './events';

/** Drop reasons that mean "delivered, then discarded with its socket". */
const AFTER_DELIVERY = new Set(['QUEUE_PURGE', 'SOCKET_CLOSE']);

/**
 * ping as root reads replies on a raw socket, which gets a copy; the original
 * goes on to ping_rcv, which finds no ICMP datagram socket and frees it.
 */
const rawPingLeftover = (e: TraceEvent) => e.kind === 'drop' && e.reason === 'NO_SOCKET' && e.location.startsWith('ping_rcv') && e.dir === 'reply';

export function tidy(events: readonly TraceEvent[]): TraceEvent[] {
  const seenRoutes = new Set<string>();
  // Policy routing tries tables in turn (IPv6 tries local before main): a failure
  // followed by another lookup for the same packet and purpose only found nothing
  // in one table. The decision is a success if there is one, else the last failure.
  const group = (e: RouteEvent) => `${e.netns} ${e.skb} ${e.purpose} ${e.dst}`;
  const decisive = new Map<string, RouteEvent>();
  for (const e of events) {
    if (e.kind !== 'route') continue;
    const seen = decisive.get(group(e));
    if (!seen || seen.error !== null) decisive.set(group(e), e);
  }
  return events.filter((e) => {
    if (e.kind === 'drop') return !AFTER_DELIVERY.has(e.reason) && !rawPingLeftover(e);
    if (e.kind === 'route' && e.error !== null && decisive.get(group(e)) !== e) return false;
    if (e.kind !== 'route') return true;
    // Lookups in table local with no source, made while handling a packet, are
    // the kernel asking what kind of address something is (icmp_send does).
    if (e.table_id === 255 && e.skb !== '0' && /^(0\.0\.0\.0|::)$/.test(e.src)) return false;
    // ping looks its route up several times (source probe, connect, send), the
    // kernel sometimes twice per packet: one line per distinct decision.
    const key = [e.netns, e.skb, e.purpose, e.dst, e.table_id, e.oif, e.gateway, e.error].join(' ');
    if (seenRoutes.has(key)) return false;
    seenRoutes.add(key);
    return true;
  });
}

const endpoint = (addr: string, port: number) => (port ? (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`) : addr);

/**
 * Compares each hop with the same packet's (sk_buff's) previous hop: the
 * time it took (per-hop latency), and what NAT rewrote in between.
 */
export class HopChain {
  private last = new Map<string, HopEvent>();

  add(e: HopEvent): void {
    const seen = this.last.get(e.skb);
    this.last.set(e.skb, e);
    // The kernel reuses sk_buffs: another direction, probe or TCP segment is another packet.
    const before = seen && seen.dir === e.dir && seen.icmp_seq === e.icmp_seq && seen.proto === e.proto && seen.tcp_flags === e.tcp_flags ? seen : undefined;
    e.latency_ns = before ? e.time_ns - before.time_ns : null;
    if (e.dir === 'error' || !before || before.dir === 'error') return;
    const changes: string[] = [];
    if (before.src !== e.src || before.sport !== e.sport) changes.push(`src ${endpoint(before.src, before.sport)} -> ${endpoint(e.src, e.sport)}`);
    if (before.dst !== e.dst || before.dport !== e.dport) changes.push(`dst ${endpoint(before.dst, before.dport)} -> ${endpoint(e.dst, e.dport)}`);
    e.rewritten = changes.length ? changes.join(', ') : null;
  }
}

/** Per-hop latency and NAT rewrites over a whole journey (events in time order). */
export function markHops(events: readonly TraceEvent[]): void {
  const chain = new HopChain();
  for (const e of events) if (e.kind === 'hop') chain.add(e);
}
