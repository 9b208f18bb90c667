/**
 * What the kernel reports, made into a journey a person reads: repeated
 * identical route lookups shown once, address-type checks not shown as
 * routing decisions, and packets freed after they arrived (a socket purged
 * its queue on close) not shown as drops on the path.
 */
import { withPort } from './addr';
import type { HopEvent, RouteEvent, TraceEvent } from './events';

/** Drop reasons that mean "delivered, then discarded with its socket". */
const AFTER_DELIVERY = new Set(['QUEUE_PURGE', 'SOCKET_CLOSE']);

/**
 * Older kernels (6.1) free a socket's queues on close without a reason
 * (NOT_SPECIFIED): there the place says it, e.g. an ICMP error the sender
 * had queued (IP_RECVERR) freed with its socket.
 */
const socketTeardown = /^(inet6?_sock_destruct|__skb_queue_purge|sk_common_release)\b/;

/**
 * ping as root reads replies on a raw socket, which gets a copy; the original
 * goes on to ping_rcv, which finds no ICMP datagram socket and frees it
 * (6.1 reports the free from icmp_rcv, into which ping_rcv's caller is inlined).
 */
const rawPingLeftover = (e: TraceEvent) => e.kind === 'drop' && e.reason === 'NO_SOCKET' && /^(ping_rcv|icmp_rcv)\b/.test(e.location) && e.dir === 'reply';

/**
 * 6.1 frees every ICMPv6 message icmpv6_rcv has handled (an error passed on
 * to the sender's socket) without a reason; later kernels consume it.
 */
const handledIcmpv6 = (e: TraceEvent) => e.kind === 'drop' && e.dir === 'error' && e.reason === 'NOT_SPECIFIED' && /^icmpv6_rcv\b/.test(e.location);

/** Freed after it was delivered: not a drop on the way. */
export const freedAfterDelivery = (e: TraceEvent): boolean =>
  e.kind === 'drop' && (AFTER_DELIVERY.has(e.reason) || socketTeardown.test(e.location) || rawPingLeftover(e) || handledIcmpv6(e));

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
    if (e.kind === 'drop') return !freedAfterDelivery(e);
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

const endpoint = (addr: string, port: number) => (port ? withPort(addr, port) : addr);

/**
 * Compares each hop with the same packet's previous hop: the time it took
 * (per-hop latency), what NAT rewrote in between, and fields no hop should
 * change (a mangled packet: `tracepkt mangle`, or a bug in the path).
 */
export class HopChain {
  private bySkb = new Map<string, HopEvent>();
  /**
   * Packets by what identifies them whatever their sk_buff (see previous()),
   * in two generations of SAME_PACKET_NS: older sightings cannot match, so
   * a long trace keeps only the last few milliseconds.
   */
  private byIdentity = new Map<string, HopEvent>();
  private older = new Map<string, HopEvent>();
  private generationNs = 0;

  add(e: HopEvent): void {
    const seen = this.bySkb.get(e.skb);
    this.bySkb.set(e.skb, e);
    // The kernel reuses sk_buffs: another direction, probe or TCP segment is another packet.
    const before = seen && seen.dir === e.dir && seen.icmp_seq === e.icmp_seq && seen.proto === e.proto && seen.tcp_flags === e.tcp_flags ? seen : undefined;
    e.latency_ns = before ? e.time_ns - before.time_ns : null;
    if (e.dir === 'error') return;
    e.altered = alteredSince(this.previous(e), e);
    if (!before || before.dir === 'error') return;
    const changes: string[] = [];
    if (before.src !== e.src || before.sport !== e.sport) changes.push(`src ${endpoint(before.src, before.sport)} -> ${endpoint(e.src, e.sport)}`);
    if (before.dst !== e.dst || before.dport !== e.dport) changes.push(`dst ${endpoint(before.dst, before.dport)} -> ${endpoint(e.dst, e.dport)}`);
    e.rewritten = changes.length ? changes.join(', ') : null;
  }

  /**
   * This packet's previous sighting, even where a field of it changed or it
   * moved to another sk_buff (XDP on a veth copies): ICMP echoes by
   * identifier and sequence, TCP segments by sequence number and length.
   */
  private previous(e: HopEvent): HopEvent | undefined {
    const key = e.proto === 1 || e.proto === 58 ? `${e.family} ${e.dir} ${e.icmp_id} ${e.icmp_seq}` : e.proto === 6 ? `tcp ${e.dir} ${e.tcp_seq} ${e.len}` : undefined;
    if (key === undefined) return undefined;
    if (e.time_ns - this.generationNs >= SAME_PACKET_NS) {
      this.older = this.byIdentity;
      this.byIdentity = new Map();
      this.generationNs = e.time_ns;
    }
    const prev = this.byIdentity.get(key) ?? this.older.get(key);
    this.byIdentity.set(key, e);
    if (!prev || e.time_ns - prev.time_ns >= SAME_PACKET_NS) return undefined; // later: another packet
    // A packet leaves a namespace only by being transmitted and enters the next by being
    // received: anything else is another transmission of it (a TCP retransmission, say).
    return prev.netns === e.netns || (prev.hook === 'net_dev_queue' && e.hook === 'netif_receive_skb') ? prev : undefined;
  }
}

/** A packet crosses a host in microseconds; a sighting this much later is another packet. */
const SAME_PACKET_NS = 1_000_000;

/**
 * TTL and TCP flags between two sightings of a packet: across a link
 * (transmitted, then received) nothing changes them; inside a namespace,
 * forwarding lowers the TTL by one. Anything else was done to the packet.
 */
export function alteredSince(prev: HopEvent | undefined, e: HopEvent): string | null {
  if (!prev) return null;
  const changes: string[] = [];
  const crossedLink = prev.hook === 'net_dev_queue' && e.hook === 'netif_receive_skb';
  const drop = prev.ttl - e.ttl;
  if (crossedLink ? drop !== 0 : drop !== 0 && drop !== 1) changes.push(`ttl ${prev.ttl} -> ${e.ttl}`);
  if (prev.proto === 6 && e.proto === 6 && prev.tcp_flags !== e.tcp_flags) changes.push(`tcp flags ${prev.tcp_flags || '-'} -> ${e.tcp_flags || '-'}`);
  return changes.length ? changes.join(', ') : null;
}

/** Per-hop latency and NAT rewrites over a whole journey (events in time order). */
export function markHops(events: readonly TraceEvent[]): void {
  const chain = new HopChain();
  for (const e of events) if (e.kind === 'hop') chain.add(e);
}
