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
 * when connecting, src/cluster/clock.ts), known within the offset's bound
 * (widened for the drift since). A crossing's latency is the receive's time
 * less the transmit's, within that bound; a receive is matched only to a
 * transmit it could follow within it. Where the bound is wider than the wire
 * is fast, clock order could put a receive before its transmit: the journey
 * is put in the order of cause, each other node's events moved after what
 * caused them (the least shift of its clock the crossings require; times
 * shown are unchanged). Where no shift satisfies every crossing, or one
 * beyond the bound is needed, that is said: the order is then not certain.
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
  /** Every node's events, in the order of cause (where `doubts` is empty). */
  events: TraceEvent[];
  crossings: WireCrossing[];
  roundTrips: WireRoundTrip[];
  /** Per other node, how far its clock had to be moved to order its events after their cause (ns); absent: none. */
  shifts: Map<string, number>;
  /** Why the order of cause is not certain, a sentence each (a node's clock contradicting the crossings, or moved beyond its bound). */
  doubts: string[];
}

const TRANSMIT = 'net_dev_queue';
const RECEIVE = 'netif_receive_skb';
/**
 * Sightings of one sk_buff further apart than this are of two packets (a TCP retransmission is
 * sent from a clone at the same address a second later): as src/tidy.ts takes them.
 */
const SAME_SKB_NS = 100_000_000;

/** The packet as it is on the wire: what both ends of it see alike. */
function wireKey(h: HopEvent): string {
  const t = h.tunnel;
  const outer = t ? `${t.type}/${t.id}/${t.src}/${t.dst}/${t.sport}/${t.dport}/${t.ttl}/${t.len}` : '-';
  const f = h.fragment;
  const fragment = f ? `${f.id}/${f.offset}/${f.more}` : '-';
  return `${h.dir}/${probeSeq(h)}/${h.proto}/${h.src}/${h.dst}/${h.sport}/${h.dport}/${h.tcp_seq}/${h.tcp_flags}/${h.icmp_id}/${h.icmp_type}/${h.ttl}/${h.len}/${fragment}/${outer}`;
}

const end = (h: HopEvent): WireEnd => ({ node: h.node ?? '', netns: h.netns, netns_name: h.netns_name, ifname: h.ifname, time_ns: h.time_ns });

/**
 * Where packets left a node and entered another. `uncertainty`: each other node's clock bound
 * (ns); the local node's is 0.
 */
export function findCrossings(events: readonly TraceEvent[], uncertainty: ReadonlyMap<string, number>, doubts: string[] = []): WireCrossing[] {
  // Each sk_buff's sightings on each node, split where it becomes another packet of the probe: another
  // identity, a gap (a reused address), or a second transmit on the same interface (a retransmission).
  const byAddress = new Map<string, HopEvent[]>();
  for (const e of events) {
    if (e.kind !== 'hop') continue;
    const key = `${e.node}|${e.skb}|${e.dir}|${probeSeq(e)}|${e.tcp_seq}|${e.tcp_flags}`;
    (byAddress.get(key) ?? byAddress.set(key, []).get(key)!).push(e);
  }
  const runs: HopEvent[][] = [];
  for (const hops of byAddress.values()) {
    hops.sort((a, b) => a.time_ns - b.time_ns);
    let run: HopEvent[] = [];
    for (const h of hops) {
      const prev = run[run.length - 1];
      if (prev && (h.time_ns - prev.time_ns > SAME_SKB_NS || (h.hook === TRANSMIT && run.some((r) => r.hook === TRANSMIT && r.ifname === h.ifname && r.netns === h.netns)))) {
        runs.push(run);
        run = [];
      }
      run.push(h);
    }
    runs.push(run);
  }
  const exits = new Map<string, HopEvent[]>();
  const entries: HopEvent[] = [];
  for (const run of runs) {
    const last = run[run.length - 1];
    if (last.hook === TRANSMIT) (exits.get(wireKey(last)) ?? exits.set(wireKey(last), []).get(wireKey(last))!).push(last);
    if (run[0].hook === RECEIVE) entries.push(run[0]);
  }
  const crossings: WireCrossing[] = [];
  const bound = (h: HopEvent) => uncertainty.get(h.node ?? '') ?? 0;
  // One transmit, one receive: a packet sent once reaches one node. Receives in time order, each
  // taking the latest transmit it could follow within the clocks' bounds: a packet lost on the way
  // leaves its transmit unmatched rather than taking a later one's receive.
  const used = new Set<HopEvent>();
  for (const rx of entries.sort((a, b) => a.time_ns - b.time_ns)) {
    let tx: HopEvent | undefined;
    for (const c of exits.get(wireKey(rx)) ?? []) {
      if (c.node === rx.node || used.has(c) || c.time_ns > rx.time_ns + bound(c) + bound(rx)) continue;
      if (!tx || c.time_ns > tx.time_ns) tx = c;
    }
    if (!tx) {
      // Nothing seen sending it, or only later than the clocks allow: said, not guessed.
      const late = (exits.get(wireKey(rx)) ?? []).filter((c) => c.node !== rx.node && !used.has(c));
      if (late.length) doubts.push(`a packet node ${rx.node} received on ${rx.ifname} looks like one node ${late[0].node} sent ${((late[0].time_ns - rx.time_ns) / 1e6).toFixed(3)} ms later by the clocks, beyond their bound: not joined (a clock offset that drifted?)`);
      continue;
    }
    used.add(tx);
    crossings.push({ dir: rx.dir, seq: probeSeq(rx), from: end(tx), to: end(rx), tunnel: rx.tunnel, latency_ns: rx.time_ns - tx.time_ns, uncertainty_ns: bound(tx) + bound(rx) });
  }
  return crossings;
}

/**
 * For each other node, the least shift of its times that puts each of its receives after the
 * transmit that caused it, and each of its transmits before the receive it caused: nodes taken
 * outward from this one (fixed at 0) along the crossings, each held to the crossings with those
 * already placed. Where those contradict each other (a clock drifted, or a crossing is wrong), the
 * middle; every crossing is checked at the end, and what does not hold is said.
 */
function causalShifts(crossings: readonly WireCrossing[], localNode: string, uncertainty: ReadonlyMap<string, number>): { shifts: Map<string, number>; doubts: string[] } {
  const shift = new Map<string, number>();
  const doubts: string[] = [];
  const ms = (ns: number) => `${(ns / 1e6).toFixed(3)} ms`;
  /** Places the nodes reachable from `anchor` (placed already) along the crossings, outward. */
  const placeFrom = (anchor: string) => {
    const queue = [anchor];
    while (queue.length) {
      const placed = queue.shift()!;
      const next = [...new Set(crossings.flatMap((c) => (c.from.node === placed ? [c.to.node] : c.to.node === placed ? [c.from.node] : [])))].filter((n) => !shift.has(n));
      for (const node of next) {
        let lo = -Infinity;
        let hi = Infinity;
        for (const c of crossings) {
          // A receive here from a node placed: shift ≥ its transmit (as moved) − the receive, +1 ns: strictly after.
          if (c.to.node === node && shift.has(c.from.node)) lo = Math.max(lo, c.from.time_ns + shift.get(c.from.node)! - c.to.time_ns + 1);
          // A transmit here to a node placed: shift ≤ its receive (as moved) − the transmit, −1 ns.
          if (c.from.node === node && shift.has(c.to.node)) hi = Math.min(hi, c.to.time_ns + shift.get(c.to.node)! - c.from.time_ns - 1);
        }
        const moved = lo <= hi ? Math.min(Math.max(0, lo), hi) : Math.round((lo + hi) / 2);
        if (lo > hi) doubts.push(`node ${node}'s clock contradicts the order of cause (its offset drifted since it was measured, or a crossing is matched wrongly): its events may be out of order`);
        else if (Math.abs(moved) > (uncertainty.get(node) ?? 0)) {
          doubts.push(`node ${node}'s events had to be moved ${ms(Math.abs(moved))}, beyond the ± ${ms(uncertainty.get(node) ?? 0)} its clock offset was measured within: the offset drifted, or a crossing is matched wrongly`);
        }
        shift.set(node, moved);
        queue.push(node);
      }
    }
  };
  shift.set(localNode, 0);
  placeFrom(localNode);
  // Nodes tied to this one by no crossing (the way to them crossed something untraced, or a transmit
  // was lost): each group placed among itself, from its first node's clock (stitch() says so).
  for (const node of new Set(crossings.flatMap((c) => [c.from.node, c.to.node]))) {
    if (shift.has(node)) continue;
    shift.set(node, 0);
    placeFrom(node);
  }
  // Crossings between nodes placed from elsewhere (a cycle) may still not hold.
  for (const c of crossings) {
    if (c.from.time_ns + shift.get(c.from.node)! >= c.to.time_ns + shift.get(c.to.node)! && !doubts.some((d) => d.startsWith(`node ${c.to.node}'s clock`))) {
      doubts.push(`node ${c.to.node}'s ${c.dir} receive on ${c.to.ifname} stays before node ${c.from.node}'s transmit of it: their clocks contradict the order of cause`);
    }
  }
  shift.delete(localNode);
  for (const [node, s] of shift) if (s === 0) shift.delete(node);
  return { shifts: shift, doubts };
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
  const unmatched: string[] = [];
  const crossings = findCrossings(events, uncertainty, unmatched);
  const { shifts, doubts } = causalShifts(crossings, localNode, uncertainty);
  doubts.push(...unmatched);
  // A node no chain of crossings ties to this one: its order against ours is its clock's alone.
  const tied = new Set([localNode]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of crossings) {
      for (const [a, b] of [[c.from.node, c.to.node], [c.to.node, c.from.node]]) {
        if (tied.has(a) && !tied.has(b)) {
          tied.add(b);
          grew = true;
        }
      }
    }
  }
  for (const node of new Set(events.map((e) => e.node ?? localNode))) {
    if (!tied.has(node)) doubts.push(`node ${node} is tied to this one by no packet seen crossing between them: its events are placed by its clock alone`);
  }
  const at = (e: { node?: string; time_ns: number }) => e.time_ns + (shifts.get(e.node ?? '') ?? 0);
  crossings.sort((a, b) => at(a.from) - at(b.from));
  // Stable: events of one node at one time keep the order their node gave them.
  const ordered = events.map((e, i) => ({ e, i })).sort((a, b) => at(a.e) - at(b.e) || a.i - b.i).map((x) => x.e);
  return { events: ordered, crossings, roundTrips: roundTrips(crossings, localNode), shifts, doubts };
}
