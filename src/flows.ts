/**
 * Passive tracing's journeys: the packets of one flow (both directions),
 * numbered in the order flows appear. The first packet of a flow sets its
 * forward direction: those are requests, the other way replies. An ICMP
 * error joins the journey of the flow it quotes; a later IP fragment, which
 * has no ports, the journey of its first fragment. A journey is complete
 * once it has been idle for a while, in kernel time (events may wait in
 * user space for a name, and that is no silence of the flow's): then it is
 * handed out and forgotten, so that memory stays flat however long the
 * trace runs.
 */
import { withPort } from './addr';
import type { PacketEvent } from './events';
import { hasPorts } from './ip';

/** One side of a flow in its key: an address and its port (TCP/UDP) or echo identifier. */
const sideKey = (addr: string, port: number) => `${addr}#${port}`;

/**
 * The flow a packet belongs to, the same both ways; its forward side first.
 * An ICMP error's is the flow of the packet it quotes. Per event: kept cheap.
 */
export function flowOf(e: PacketEvent): { key: string; forward: string } {
  const error = e.dir === 'error';
  const src = error ? (e.quoted_src ?? e.dst) : e.src;
  const dst = error ? (e.quoted_dst ?? e.src) : e.dst;
  const ports = hasPorts(e.proto);
  // ICMP echoes pair by their identifier (ICMP and ICMPv6 alike).
  const sport = ports ? e.sport : e.icmp_id;
  const dport = ports ? e.dport : e.icmp_id;
  const proto = e.proto === 58 ? 1 : e.proto;
  // A flood is one flow's packets in a row: the last answer again, without making its strings anew.
  const l = lastFlow;
  if (l.proto === proto && l.src === src && l.dst === dst && l.sport === sport && l.dport === dport) return l.flow;
  const a = sideKey(src, sport);
  const b = sideKey(dst, dport);
  const forward = `${a} ${b}`;
  const flow = { key: a < b ? `${proto} ${forward}` : `${proto} ${b} ${a}`, forward };
  lastFlow = { proto, src, dst, sport, dport, flow };
  return flow;
}

let lastFlow = { proto: -1, src: '', dst: '', sport: 0, dport: 0, flow: { key: '', forward: '' } };

/**
 * What a datagram's fragments share: the key from a first fragment to its
 * later ones. IPv6's later fragments name the fragment header's next header
 * (destination options, say), not the first's L4: its 32-bit id suffices.
 */
const fragmentKey = (e: PacketEvent) => `${e.family} ${e.family === 4 ? e.proto : ''} ${e.src} ${e.dst} ${e.fragment!.id}`;

/** A datagram's fragments arrive within this (kernel time): its key is forgotten after. */
const FRAGMENTS_NS = 2_000_000_000;

const PROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmp6' };

function labelOf(e: PacketEvent): string {
  const name = PROTOS[e.proto] ?? `proto ${e.proto}`;
  const src = e.dir === 'error' ? (e.quoted_src ?? e.dst) : e.src;
  const dst = e.dir === 'error' ? (e.quoted_dst ?? e.src) : e.dst;
  if (e.fragment && e.fragment.offset > 0) return `${name} fragments ${src} -> ${dst} id ${e.fragment.id}`;
  if (hasPorts(e.proto)) return `${name} ${withPort(src, e.sport)} -> ${withPort(dst, e.dport)}`;
  return `${name} ${src} -> ${dst} id ${e.icmp_id}`;
}

export interface Journey {
  id: number;
  key: string;
  forward: string;
  /** "tcp 10.0.1.2:40000 -> 10.0.2.2:80", "icmp 10.0.1.2 -> 10.0.2.2 id 7": its first packet's way. */
  label: string;
  packets: number;
  /** Namespaces crossed, inode → name (of events without a node: a trace of this host alone). */
  namespaces: Map<number, string | null>;
  /** Tracing across nodes: the namespaces crossed on each node (inodes are each host's own), node → inode → name. */
  nodes: Map<string, Map<number, string | null>> | null;
  /** Kernel times (CLOCK_MONOTONIC ns) of its first and last packets. */
  firstNs: number;
  lastNs: number;
  complete: boolean;
  /** Events were lost (ring buffer full) while it was open: it may lack packets. */
  incomplete: boolean;
  /** Its first packet the kernel dropped, in words (src/verdict.ts dropSentence); null if none was. */
  dropped: string | null;
}

/** Whether a loss between these kernel times falls in the journey's window: its first packet to idleMs after its last. */
const overlaps = (j: Journey, fromNs: number, toNs: number, idleMs: number) => fromNs <= j.lastNs + idleMs * 1e6 && toNs >= j.firstNs;

/** How many intervals of loss are kept apart (the oldest are joined beyond it). */
const LOSSES_KEEP = 1000;

/** How many complete journeys the final summary remembers (each was handed out when it completed). */
export const SUMMARY_KEEP = 1000;

function nodeNamespaces(j: Journey, node: string): Map<number, string | null> {
  j.nodes ??= new Map();
  let namespaces = j.nodes.get(node);
  if (!namespaces) j.nodes.set(node, (namespaces = new Map()));
  return namespaces;
}

/** The namespaces a journey crossed, each with its node where the trace spans nodes. */
export function journeyNamespaces(j: Journey): { node?: string; netns: number; name: string | null }[] {
  const out: { node?: string; netns: number; name: string | null }[] = [...j.namespaces].map(([netns, name]) => ({ netns, name }));
  for (const [node, namespaces] of j.nodes ?? []) for (const [netns, name] of namespaces) out.push({ node, netns, name });
  return out;
}

export class FlowJourneys {
  private open = new Map<string, Journey>();
  private byFragment = new Map<string, { journey: Journey; ns: number }>();
  /** The last SUMMARY_KEEP complete journeys, oldest first. */
  private done: Journey[] = [];
  private nextId = 1;
  /** Journeys completed and no longer kept for the summary. */
  forgotten = 0;

  constructor(private readonly idleMs = 1000) {}

  /** Journeys open now (for tests and the summary). */
  get openCount(): number {
    return this.open.size;
  }

  /** Numbers the event's journey and orients it; returns the journey. */
  add(e: PacketEvent): Journey {
    const later = e.fragment !== null && e.fragment.offset > 0;
    let j = later ? this.byFragment.get(fragmentKey(e))?.journey : undefined;
    const { key, forward } = later && j ? { key: j.key, forward: j.forward } : flowOf(e);
    if (!j) j = this.open.get(later ? `frag ${fragmentKey(e)}` : key);
    if (!j) {
      const own = later ? `frag ${fragmentKey(e)}` : key;
      j = { id: this.nextId++, key: own, forward, label: labelOf(e), packets: 0, namespaces: new Map(), nodes: null, firstNs: e.time_ns, lastNs: e.time_ns, complete: false, incomplete: false, dropped: null };
      this.open.set(own, j);
    }
    if (e.fragment && e.fragment.offset === 0) this.byFragment.set(fragmentKey(e), { journey: j, ns: e.time_ns });
    j.packets++;
    if (e.node === undefined) j.namespaces.set(e.netns, e.netns_name);
    else nodeNamespaces(j, e.node).set(e.netns, e.netns_name);
    j.firstNs = Math.min(j.firstNs, e.time_ns);
    j.lastNs = Math.max(j.lastNs, e.time_ns);
    // ICMP knows its own direction (echo request or reply); TCP and UDP are told by the flow,
    // a later fragment (no ports) by its source address. Forward is "src#sport dst#dport".
    if (e.dir !== 'error' && later) e.dir = e.src === j.forward.slice(0, j.forward.indexOf('#')) ? 'request' : 'reply';
    else if (e.dir !== 'error' && hasPorts(e.proto)) e.dir = flowOf(e).forward === j.forward ? 'request' : 'reply';
    return j;
  }

  /** Kernel-time intervals in which events were lost (by the kernel or by tracepkt), in the order recorded. */
  private losses: [number, number][] = [];

  /**
   * The kernel lost events between these kernel times (CLOCK_MONOTONIC ns):
   * which journey they belonged to is unknown, so every journey whose
   * packets span any of that time may have a gap, including journeys whose
   * first packets still wait to be read.
   */
  recordLoss(fromNs: number, toNs: number): void {
    this.addLoss(fromNs, toNs);
    for (const j of this.open.values()) this.checkGap(j);
    // A complete journey's window is final: only this loss, as it was, is new to it (not the joined
    // span addLoss may have made of older ones).
    for (const j of this.done) if (!j.incomplete && overlaps(j, fromNs, toNs, this.idleMs)) j.incomplete = true;
  }

  /**
   * Losses less than idleMs apart are kept as one interval: exact, since a journey's window (first
   * packet to idleMs after its last) is at least idleMs long, so it cannot fit between them. A
   * flood's losses are then one interval, and the first of them (the one that meets the journeys
   * open when user space fell behind, whose later packets are still queued) is not forgotten.
   */
  private addLoss(fromNs: number, toNs: number): void {
    const near = this.idleMs * 1e6;
    for (let i = this.losses.length - 1; i >= 0; i--) {
      const l = this.losses[i];
      if (fromNs <= l[1] + near && toNs >= l[0] - near) {
        l[0] = Math.min(l[0], fromNs);
        l[1] = Math.max(l[1], toNs);
        return;
      }
    }
    this.losses.push([fromNs, toNs]);
    if (this.losses.length > LOSSES_KEEP) {
      // Too many apart: the two oldest become one, spanning the time between them too. A loss is never
      // forgotten (a journey whose later packets are still queued may meet the oldest one yet); old
      // journeys may be called incomplete that were not hit: unsure, not wrong.
      const [a, b] = this.losses;
      this.losses.splice(0, 2, [Math.min(a[0], b[0]), Math.max(a[1], b[1])]);
    }
  }

  /** A loss while the journey was open (up to idleMs after its last packet: it could still have had more) may have hit it. */
  private checkGap(j: Journey): void {
    if (!j.incomplete && this.losses.some(([from, to]) => overlaps(j, from, to, this.idleMs))) j.incomplete = true;
  }

  /**
   * Journeys without a packet for idleMs before kernel time `nowNs` (every
   * event up to it handed in) are complete: returns those that just became
   * so, and forgets them.
   */
  completeIdle(nowNs: number): Journey[] {
    const finished: Journey[] = [];
    for (const [key, j] of this.open) {
      if (nowNs - j.lastNs < this.idleMs * 1e6) continue;
      j.complete = true;
      this.checkGap(j);
      finished.push(j);
      this.open.delete(key);
      this.done.push(j);
    }
    for (const [key, f] of this.byFragment) if (f.journey.complete || nowNs - f.ns >= FRAGMENTS_NS) this.byFragment.delete(key);
    if (this.done.length > SUMMARY_KEEP) {
      this.forgotten += this.done.length - SUMMARY_KEEP;
      this.done.splice(0, this.done.length - SUMMARY_KEEP);
    }
    return finished;
  }

  /** The journeys the summary shows: the last complete ones kept, and the open ones. */
  all(): Journey[] {
    for (const j of this.open.values()) this.checkGap(j);
    return [...this.done, ...this.open.values()].sort((a, b) => a.id - b.id);
  }
}
