/**
 * What the kernel reports, made into a journey a person reads: repeated
 * identical route lookups shown once, address-type checks not shown as
 * routing decisions, and packets freed after they arrived (a socket purged
 * its queue on close) not shown as drops on the path.
 */
import { withPort } from './addr';
import { NO_REASON_GIVEN, reasonUnnamed, type HopEvent, type RouteEvent, type TraceEvent } from './events';
import { isIcmp } from './ip';

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
const rawPingLeftover = (e: TraceEvent) =>
  e.kind === 'drop' && (e.reason === 'NO_SOCKET' || e.reason === NO_REASON_GIVEN) && /^(ping_rcv|icmp_rcv)\b/.test(e.location) && e.dir === 'reply';

/**
 * 6.1 frees every ICMPv6 message icmpv6_rcv has handled (an error passed on
 * to the sender's socket) without a reason; later kernels consume it.
 */
const handledIcmpv6 = (e: TraceEvent) =>
  e.kind === 'drop' && e.dir === 'error' && reasonUnnamed(e.reason) && /^icmpv6_rcv\b/.test(e.location);

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

/** An address as users read it, with its port where it has one: 10.0.0.1:80, [fd00::1]:80, 10.0.0.1. */
const shownAddress = (addr: string, port: number) => (port ? withPort(addr, port) : addr);

/**
 * Compares each hop with the same packet's previous hop: the time it took
 * (per-hop latency), what NAT rewrote in between, and fields no hop should
 * change (a mangled packet: `tracepkt mangle`, or a bug in the path).
 */
export class HopChain {
  /** The last sighting per sk_buff, in two generations of SAME_SKB_NS: flat memory over a long trace. */
  private bySkb = new Map<string, HopEvent>();
  private olderSkb = new Map<string, HopEvent>();
  private skbGenerationNs = 0;
  /** Recent sightings by what identifies a packet whatever its sk_buff (identityOf). */
  private readonly byIdentity: IdentityIndex;

  /** `sightings`: how many the identity index holds (a trace's few hops need no more than they are). */
  constructor(sightings = IDENTITY_SLOTS) {
    this.byIdentity = new IdentityIndex(sightings);
  }

  add(e: HopEvent): void {
    if (e.time_ns - this.skbGenerationNs >= SAME_SKB_NS) {
      this.olderSkb = this.bySkb;
      this.bySkb = new Map();
      this.skbGenerationNs = e.time_ns;
    }
    const seen = this.bySkb.get(e.skb) ?? this.olderSkb.get(e.skb);
    this.bySkb.set(e.skb, e);
    // The kernel reuses sk_buffs: another direction, probe or TCP segment, or a sighting long
    // before (a UDP flow's next datagram in a reused sk_buff), is another packet.
    const before =
      seen && seen.dir === e.dir && seen.icmp_seq === e.icmp_seq && seen.proto === e.proto && seen.tcp_flags === e.tcp_flags && seen.tcp_seq === e.tcp_seq && e.time_ns - seen.time_ns < SAME_SKB_NS
        ? seen
        : undefined;
    e.latency_ns = before ? e.time_ns - before.time_ns : null;
    // Every hop has the fields (docs/json.md), also where nothing is compared.
    e.rewritten = null;
    e.altered = null;
    if (e.dir === 'error') return;
    e.altered = alteredSince(this.previous(e, seen), e);
    if (!before || before.dir === 'error') return;
    const changes: string[] = [];
    if (before.src !== e.src || before.sport !== e.sport) changes.push(`src ${shownAddress(before.src, before.sport)} -> ${shownAddress(e.src, e.sport)}`);
    if (before.dst !== e.dst || before.dport !== e.dport) changes.push(`dst ${shownAddress(before.dst, before.dport)} -> ${shownAddress(e.dst, e.dport)}`);
    e.rewritten = changes.length ? changes.join(', ') : null;
  }

  /**
   * This packet's previous sighting, even where a field of it changed: first
   * in its own sk_buff (forwarding, bridging, veth and NAT keep it), else in
   * another one (XDP on a veth copies the packet) found by identity. Where two
   * copies of a packet are in flight at once (a TCP retransmission sent before
   * the original arrived), only the sk_buff tells them apart: if it cannot,
   * nothing is inferred.
   */
  private previous(e: HopEvent, sameSkb: HopEvent | undefined): Compared | undefined {
    const key = identityOf(e);
    if (key === undefined) return undefined;
    const other = this.byIdentity.add(key, e);
    // Its own sk_buff, however slow the hop (a flood, an emulated kernel): never another copy's.
    if (sameSkb && identityOf(sameSkb) === key && e.time_ns - sameSkb.time_ns < SAME_SKB_NS) return consecutive(sameSkb, e) ? sameSkb : undefined;
    return other;
  }
}

/** What alteredSince compares of a packet's previous sighting. */
type Compared = Pick<HopEvent, 'hook' | 'ttl' | 'proto' | 'tcp_flags'>;

/** Sightings the identity index holds at most: at 500k events a second, 130 ms (SAME_PACKET_NS is 20). */
const IDENTITY_SLOTS = 1 << 16;
/** Sightings of one identity looked at, at most, per event (a packet crosses a few dozen hops at most). */
const IDENTITY_WALK_MAX = 64;

/**
 * The sightings of each packet identity (identityOf) lately, for a hop in
 * another sk_buff than the packet's previous one: kept in a ring of typed
 * arrays, each sighting linked to the one before of its identity, so that
 * nothing is allocated per sighting. Kept as objects (the events, in an
 * array per identity) they outlived V8's young generation under a flood,
 * and moving them took half of passive tracing's user space (2026-12-06).
 * A sighting is known by its serial; its slot is the serial modulo the
 * ring's size, and holds it until a later one takes the slot.
 */
class IdentityIndex {
  private readonly serial: Float64Array;
  /** The serial of the sighting before, of the same identity (0: none). */
  private readonly before: Float64Array;
  private readonly time: Float64Array;
  private readonly lost: Float64Array;
  private readonly netns: Float64Array;
  private readonly ttl: Uint8Array;
  private readonly proto: Uint8Array;
  // Strings the decoder keeps (sk_buff names, hooks, flags): an array slot each, nothing copied.
  private readonly skb: string[];
  private readonly hook: string[];
  private readonly tcpFlags: string[];
  private next = 1;
  /** The newest sighting's serial per identity, in two generations of SAME_PACKET_NS: flat memory over a long trace. */
  private heads = new Map<number, number>();
  private olderHeads = new Map<number, number>();
  private generationNs = 0;
  /** Until this kernel time the ring lacks sightings of the window (a slot taken from one younger than SAME_PACKET_NS). */
  private incompleteUntilNs = -Infinity;
  /** The sk_buffs met in one walk (scratch, reused). */
  private readonly walked: string[] = [];

  constructor(private readonly slots: number) {
    this.serial = new Float64Array(slots);
    this.before = new Float64Array(slots);
    this.time = new Float64Array(slots);
    this.lost = new Float64Array(slots);
    this.netns = new Float64Array(slots);
    this.ttl = new Uint8Array(slots);
    this.proto = new Uint8Array(slots);
    this.skb = new Array<string>(slots).fill('');
    this.hook = new Array<string>(slots).fill('');
    this.tcpFlags = new Array<string>(slots).fill('');
  }

  /**
   * Records `e` under `key`. Returns the last sighting of another sk_buff
   * with this identity lately, when exactly one could have come just before
   * `e` (consecutive); else, or while the ring is short of the window,
   * undefined.
   */
  add(key: number, e: HopEvent): Compared | undefined {
    if (e.time_ns - this.generationNs >= SAME_PACKET_NS) {
      this.olderHeads = this.heads;
      this.heads = new Map();
      this.generationNs = e.time_ns;
    }
    const head = this.heads.get(key) ?? this.olderHeads.get(key) ?? 0;
    // Newest first, the last sighting of each sk_buff but e's own. Two that could have come just before
    // settle it (nothing is inferred); so does a walk too long to finish (pure TCP ACKs of a bulk flow
    // share one identity: thousands within the window), rather than a guess from its first part; and
    // so do sightings out of time order (batches come from every CPU): which came before is unknown.
    let candidate = -1;
    let candidates = 0;
    let finished = false;
    let newer = e.time_ns;
    this.walked.length = 0;
    for (let serial = head, steps = 0; candidates < 2; steps++) {
      const slot = serial % this.slots;
      // The chain's end: no sighting before, one a later sighting took the place of, or well past the window.
      if (serial === 0 || this.serial[slot] !== serial || e.time_ns - this.time[slot] >= 2 * SAME_PACKET_NS) {
        finished = true;
        break;
      }
      if (steps === IDENTITY_WALK_MAX || this.time[slot] > newer) break;
      newer = this.time[slot];
      const skb = this.skb[slot];
      if (skb !== e.skb && !this.walked.includes(skb)) {
        this.walked.push(skb);
        if (e.time_ns - this.time[slot] < SAME_PACKET_NS && this.lost[slot] === e.lost_so_far && (this.netns[slot] === e.netns || (this.hook[slot] === 'net_dev_queue' && e.hook === 'netif_receive_skb'))) {
          candidate = slot;
          candidates++;
        }
      }
      serial = this.before[slot];
    }
    const found: Compared | undefined =
      finished && candidates === 1 && e.time_ns >= this.incompleteUntilNs
        ? { hook: this.hook[candidate], ttl: this.ttl[candidate], proto: this.proto[candidate], tcp_flags: this.tcpFlags[candidate] }
        : undefined;
    this.record(key, head, e);
    return found;
  }

  private record(key: number, head: number, e: HopEvent): void {
    const serial = this.next++;
    const slot = serial % this.slots;
    if (this.serial[slot] !== 0 && e.time_ns - this.time[slot] < SAME_PACKET_NS) this.incompleteUntilNs = this.time[slot] + SAME_PACKET_NS;
    this.serial[slot] = serial;
    this.before[slot] = head;
    this.time[slot] = e.time_ns;
    this.lost[slot] = e.lost_so_far;
    this.netns[slot] = e.netns;
    this.ttl[slot] = e.ttl;
    this.proto[slot] = e.proto;
    this.skb[slot] = e.skb;
    this.hook[slot] = e.hook;
    this.tcpFlags[slot] = e.tcp_flags;
    this.heads.set(key, serial);
  }
}

const DIRECTIONS: Record<HopEvent['dir'], number> = { request: 0, reply: 1, error: 2 };

/**
 * What identifies a packet whatever its sk_buff: ICMP echoes by identifier
 * and sequence, TCP segments by sequence number and length. As one number
 * (below 2^53, exact): looked up per event under a flood, where a string
 * key cost an allocation and its hashing each time. ICMP keys stay below
 * 2^35, TCP keys start there.
 */
function identityOf(e: HopEvent): number | undefined {
  const dir = DIRECTIONS[e.dir];
  if (isIcmp(e.proto)) return ((dir * 2 + (e.family === 6 ? 1 : 0)) * 0x10000 + e.icmp_id) * 0x10000 + e.icmp_seq;
  if (e.proto === 6) return 2 ** 35 + (dir * 0x10000 + e.len) * 2 ** 32 + e.tcp_seq;
  return undefined;
}

/**
 * Whether `prev` can be the sighting just before `e` of the same packet.
 * Records lost in between (the ring was full): a hop may be missing, so no
 * field is inferred across the gap. A packet leaves a namespace only by being
 * transmitted and enters the next by being received: anything else is another
 * transmission of it (a TCP retransmission, say).
 */
function consecutive(prev: HopEvent, e: HopEvent): boolean {
  return prev.lost_so_far === e.lost_so_far && (prev.netns === e.netns || (prev.hook === 'net_dev_queue' && e.hook === 'netif_receive_skb'));
}

/**
 * A packet crosses a host in microseconds, but an emulated kernel under load
 * (the kernel matrix: three guests on two cores) takes over a millisecond
 * from one namespace to the next; the same identity comes back only with a
 * retransmission, 200 ms apart at least. A sighting this much later is
 * another packet.
 */
const SAME_PACKET_NS = 20_000_000;
/**
 * The same sk_buff seen this much later is another packet in a reused one:
 * generous, because queues and emulated kernels (the kernel matrix) slow
 * hops down to milliseconds.
 */
const SAME_SKB_NS = 100_000_000;

/**
 * TTL and TCP flags between two sightings of a packet: across a link
 * (transmitted, then received) nothing changes them; inside a namespace,
 * forwarding lowers the TTL by one. Anything else was done to the packet.
 * Only for consecutive sightings (HopChain.previous): across lost records a
 * transmit followed by a receive may hide a router.
 */
export function alteredSince(prev: Compared | undefined, e: HopEvent): string | null {
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
  const chain = new HopChain(Math.max(1, events.length)); // every sighting kept: a journey's hops are few
  for (const e of events) if (e.kind === 'hop') chain.add(e);
}
