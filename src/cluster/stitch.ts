/**
 * One probe's journey from several nodes' views: where its packets crossed
 * the wire between two nodes, and the events in the order of cause.
 *
 * Each node sees its own sk_buffs; what ties one node's transmit to another's
 * receive is the packet itself: the probe's identity (direction, sequence,
 * addresses, ports, TCP sequence), its TTL and length (no router between two
 * ends of one wire changes them), and in a tunnel the outer packet (endpoints,
 * VNI or key, UDP source port, outer TTL). A packet leaves a node where its
 * sk_buff was last seen being queued for transmission, and enters one where a
 * fresh sk_buff is first seen received.
 *
 * Times: another node's events come in our clock already (its offset measured
 * when connecting, src/cluster/clock.ts), known within the offset's bound. A
 * crossing's latency is the receive's time less the transmit's, within that
 * bound. Where the bound is wider than the wire is fast, clock order could put
 * a receive before its transmit: the order of the journey is the order of
 * cause, each other node's events placed after what caused them (the least
 * shift of its clock that the crossings require; times shown are unchanged).
 */
import type { Direction, HopEvent, TraceEvent, TunnelInfo } from '../events';
import { probeSeq } from '../journey';

export interface WireEnd {
  node: string;
  netns: number;
  netns_name: string | null;
  ifname: string;
  time_ns: number;
}

export interface WireCrossing {
  dir: Direction;
  /** Which probe (ping's sequence; 1 for TCP/UDP). */
  seq: number;
  from: WireEnd;
  to: WireEnd;
  /** The outer packet where it crossed in a tunnel. */
  tunnel: TunnelInfo | null;
  /** Receive less transmit (ns), by the clocks as measured: known within ± uncertainty_ns. */
  latency_ns: number;
  uncertainty_ns: number;
}

/** Across the wire and back, less the time the probe spent on the other node: no clock offset in it. */
export interface WireRoundTrip {
  node: string;
  seq: number;
  ns: number;
}

export interface Stitched {
  /** Every node's events, in the order of cause. */
  events: TraceEvent[];
  crossings: WireCrossing[];
  roundTrips: WireRoundTrip[];
  /** Per other node, how far its clock had to be moved to order its events after their cause (ns); absent: none. */
  shifts: Map<string, number>;
}

const TRANSMIT = 'net_dev_queue';
const RECEIVE = 'netif_receive_skb';

/** The packet as it is on the wire: what both ends of it see alike. */
function wireKey(h: HopEvent): string {
  const t = h.tunnel;
  const outer = t ? `${t.type}/${t.id}/${t.src}/${t.dst}/${t.sport}/${t.dport}/${t.ttl}/${t.len}` : '-';
  return `${h.dir}/${probeSeq(h)}/${h.proto}/${h.src}/${h.dst}/${h.sport}/${h.dport}/${h.tcp_seq}/${h.tcp_flags}/${h.icmp_id}/${h.icmp_type}/${h.ttl}/${h.len}/${outer}`;
}

const end = (h: HopEvent): WireEnd => ({ node: h.node ?? '', netns: h.netns, netns_name: h.netns_name, ifname: h.ifname, time_ns: h.time_ns });

/**
 * Where packets left a node and entered another. `uncertainty`: each other node's clock bound
 * (ns); the local node's is 0.
 */
export function findCrossings(events: readonly TraceEvent[], uncertainty: ReadonlyMap<string, number>): WireCrossing[] {
  // Each sk_buff's sightings on each node, split where it becomes another packet of the probe (a reused address).
  const runs = new Map<string, HopEvent[]>();
  for (const e of events) {
    if (e.kind !== 'hop') continue;
    const key = `${e.node}|${e.skb}|${e.dir}|${probeSeq(e)}|${e.tcp_seq}|${e.tcp_flags}`;
    (runs.get(key) ?? runs.set(key, []).get(key)!).push(e);
  }
  const exits = new Map<string, HopEvent[]>();
  const entries: HopEvent[] = [];
  for (const run of runs.values()) {
    run.sort((a, b) => a.time_ns - b.time_ns);
    const last = run[run.length - 1];
    if (last.hook === TRANSMIT) (exits.get(wireKey(last)) ?? exits.set(wireKey(last), []).get(wireKey(last))!).push(last);
    if (run[0].hook === RECEIVE) entries.push(run[0]);
  }
  const crossings: WireCrossing[] = [];
  const bound = (h: HopEvent) => uncertainty.get(h.node ?? '') ?? 0;
  // One transmit, one receive: a packet sent once reaches one node (the earliest receive takes it).
  const used = new Set<HopEvent>();
  for (const rx of entries.sort((a, b) => a.time_ns - b.time_ns)) {
    const candidates = (exits.get(wireKey(rx)) ?? []).filter((tx) => tx.node !== rx.node && !used.has(tx));
    if (candidates.length === 0) continue;
    // The latest transmit the receive could follow, allowing for both clocks' bounds; else the nearest.
    const slack = (tx: HopEvent) => bound(tx) + bound(rx);
    const before = candidates.filter((tx) => tx.time_ns <= rx.time_ns + slack(tx)).sort((a, b) => b.time_ns - a.time_ns);
    const tx = before[0] ?? candidates.sort((a, b) => Math.abs(a.time_ns - rx.time_ns) - Math.abs(b.time_ns - rx.time_ns))[0];
    used.add(tx);
    crossings.push({ dir: rx.dir, seq: probeSeq(rx), from: end(tx), to: end(rx), tunnel: rx.tunnel, latency_ns: rx.time_ns - tx.time_ns, uncertainty_ns: slack(tx) });
  }
  return crossings;
}

/**
 * For each other node, the least shift of its times that puts each of its receives after the
 * transmit that caused it, and each of its transmits before the receive it caused on this node.
 * Where the two disagree (the clock drifted, or a crossing is wrong), the middle.
 */
function causalShifts(crossings: readonly WireCrossing[], localNode: string): Map<string, number> {
  const bounds = new Map<string, { lo: number; hi: number }>();
  const of = (node: string) => bounds.get(node) ?? bounds.set(node, { lo: -Infinity, hi: Infinity }).get(node)!;
  for (const c of crossings) {
    // Receives on the other node: shift ≥ transmit − receive (+1 ns: strictly after).
    if (c.from.node === localNode && c.to.node !== localNode) of(c.to.node).lo = Math.max(of(c.to.node).lo, c.from.time_ns - c.to.time_ns + 1);
    // Transmits on the other node: shift ≤ receive − transmit (−1 ns).
    if (c.to.node === localNode && c.from.node !== localNode) of(c.from.node).hi = Math.min(of(c.from.node).hi, c.to.time_ns - c.from.time_ns - 1);
  }
  const shifts = new Map<string, number>();
  for (const [node, { lo, hi }] of bounds) {
    const shift = lo <= hi ? Math.min(Math.max(0, lo), hi) : (lo + hi) / 2;
    if (shift !== 0) shifts.set(node, Math.round(shift));
  }
  return shifts;
}

/** Per other node and probe: both crossings' time less the time between them on that node. */
function roundTrips(crossings: readonly WireCrossing[], localNode: string): WireRoundTrip[] {
  const out: WireRoundTrip[] = [];
  for (const there of crossings) {
    if (there.from.node !== localNode || there.to.node === localNode || there.dir !== 'request') continue;
    const back = crossings.find((c) => c.seq === there.seq && c.dir === 'reply' && c.from.node === there.to.node && c.to.node === localNode && c.from.time_ns >= there.to.time_ns);
    if (!back || out.some((r) => r.node === there.to.node && r.seq === there.seq)) continue;
    out.push({ node: there.to.node, seq: there.seq, ns: back.to.time_ns - there.from.time_ns - (back.from.time_ns - there.to.time_ns) });
  }
  return out;
}

export function stitch(events: readonly TraceEvent[], uncertainty: ReadonlyMap<string, number>, localNode: string): Stitched {
  const crossings = findCrossings(events, uncertainty);
  const shifts = causalShifts(crossings, localNode);
  const at = (e: { node?: string; time_ns: number }) => e.time_ns + (shifts.get(e.node ?? '') ?? 0);
  crossings.sort((a, b) => at(a.from) - at(b.from));
  // Stable: events of one node at one time keep the order their node gave them.
  const ordered = events.map((e, i) => ({ e, i })).sort((a, b) => at(a.e) - at(b.e) || a.i - b.i).map((x) => x.e);
  return { events: ordered, crossings, roundTrips: roundTrips(crossings, localNode), shifts };
}
