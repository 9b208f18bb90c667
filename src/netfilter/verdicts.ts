/**
 * Turns what the kernel reported into "netfilter" events: one per table
 * (nftables base chain, or iptables-legacy table) that judged the probe, in
 * the order it did, with its verdict.
 *
 * - Checkpoints (BPF netfilter links) give the order and the times, and say
 *   which band of priorities stopped a packet: it reached the checkpoint
 *   before the band and not the one after. That is all iptables-legacy
 *   tables can tell.
 * - nftables trace messages say which rule, or the chain's policy, decided
 *   in each base chain, jumps to other chains included.
 * Without checkpoints (kernels before 6.4) the traces alone are placed next
 * to the hops of the same namespace.
 */
import { formatAddress } from '../addr';
import { tcpFlags } from '../tcp';
import type { CheckpointEvent, Direction, DropEvent, HopEvent, NetfilterEvent, RouteEvent, TableVerdictEvent, TraceEvent, TunnelInfo } from '../events';
import { FAMILY_NAMES, hookName, verdictName } from './hooks';
import { isTracepktTable, judgesInBand, type HookPlan, type Judge } from './judges';
import { TRACE_TYPE, type TraceMessage } from './nftables';
import { hasPorts, isIcmp } from '../ip';

/** What one namespace contributes: who judges there, where checkpoints are, what nftables traced. */
export interface NamespaceVerdicts {
  netns: number;
  netnsName: string | null;
  judges: Judge[];
  plans: HookPlan[];
  /** Every trace message the namespace's trace group delivered: other runs' packets' too. */
  traces: TraceMessage[];
  /** Our own trace table's name: its rule marks our packets (see ownTraces). */
  ownTable: string;
}

/**
 * A band of netfilter priorities the packet entered and did not leave,
 * without anything that says why: no trace verdict, no drop. Not a verdict:
 * where the packet was last seen, and what might have held it.
 */
export interface NetfilterGap {
  time_ns: number;
  netns: number;
  netns_name: string | null;
  dir: Direction;
  icmp_seq: number;
  hook: string;
  /** The tables of the band, as `family table chain`. */
  tables: string[];
}

interface PacketId {
  family: 4 | 6;
  src: string;
  dst: string;
  dir: Direction;
  icmp_id: number;
  icmp_seq: number;
  proto: number;
  sport: number;
  dport: number;
  tcp_flags: string;
  /** TCP: the segment's sequence number (a retransmission of the same flags is another packet). */
  tcp_seq: number;
  /** Where the packet was in a tunnel as the hooks saw it: the verdict was then on the outer packet. */
  tunnel?: TunnelInfo | null;
}

/** The decision a base chain took for one packet, from its trace messages. */
interface ChainDecision {
  judge: Judge;
  packet: PacketId;
  verdict: string;
  /** The chain the deciding rule is in (a jump target, or the base chain itself). */
  chain: string;
  handle: number | null;
  decidedBy: 'rule' | 'policy' | 'table';
}

/** Reads the probe's identity out of the headers a trace message carries. */
export function tracedPacket(t: TraceMessage): PacketId | null {
  const ip = t.networkHeader;
  const l4 = t.transportHeader;
  if (!ip || !l4 || ip.length < 20 || l4.length < 8) return null;
  const version = ip[0] >> 4;
  if (version === 4) {
    return { family: 4, src: formatAddress(4, ip, 12), dst: formatAddress(4, ip, 16), ...transport(ip[9], l4, 8) };
  }
  if (version === 6 && ip.length >= 40) {
    return { family: 6, src: formatAddress(6, ip, 8), dst: formatAddress(6, ip, 24), ...transport(ip[6], l4, 128) };
  }
  return null;
}

/** ICMP: echo direction, id and sequence; TCP/UDP: ports and flags (direction: by whoever knows the flow). */
function transport(proto: number, l4: Buffer, requestType: number) {
  if (!hasPorts(proto) && !isIcmp(proto)) return { ...NO_TRANSPORT, proto }; // GRE, IP in IP: a tunnel's outer packet
  const ports = hasPorts(proto);
  const replyType = requestType === 8 ? 0 : 129;
  return {
    proto,
    dir: (ports || l4[0] === requestType ? 'request' : l4[0] === replyType ? 'reply' : 'error') as Direction,
    icmp_id: ports ? 0 : l4.readUInt16BE(4),
    icmp_seq: ports ? 0 : l4.readUInt16BE(6),
    sport: ports ? l4.readUInt16BE(0) : 0,
    dport: ports ? l4.readUInt16BE(2) : 0,
    tcp_flags: proto === 6 && l4.length >= 14 ? tcpFlags(l4[13]) : '',
    tcp_seq: proto === 6 ? l4.readUInt32BE(4) : 0,
  };
}

/** The identity of a packet without ports or echoes: its addresses and protocol say all. */
const NO_TRANSPORT = { dir: 'request' as Direction, icmp_id: 0, icmp_seq: 0, sport: 0, dport: 0, tcp_flags: '', tcp_seq: 0 };

/**
 * A tunnelled packet as nftables sees it: the outer packet (its trace
 * messages dump 20 bytes of the outer transport header, never the probe
 * inside). Only our marking rule, which looks inside, vouches for it.
 */
const outerIdentityOf = (e: CheckpointEvent | HopEvent | DropEvent): PacketId | null =>
  e.tunnel ? { ...NO_TRANSPORT, family: e.tunnel.family, src: e.tunnel.src, dst: e.tunnel.dst, proto: e.tunnel.proto, sport: e.tunnel.sport, dport: e.tunnel.dport } : null;

/**
 * The trace messages about our own packets. A namespace's trace group
 * carries every traced packet: other tracepkt runs' (their tables mark
 * theirs), and any the user marks. Each pass of a packet through a hook
 * starts in the tracepkt tables (they run first): our marking rule's own
 * message says the packet is ours (the messages of one packet share an id);
 * another run's marking rule, or our chain passed by a packet that
 * something else marked (no rule of ours matched it), says it is not.
 *
 * The id is a hash of the sk_buff and its input interface, which the bridge
 * changes when it hands a packet up to its own IP stack (br_netfilter ran
 * PREROUTING on the port, INPUT runs on the bridge): such messages, with an
 * id no tracepkt table spoke for, are ours when the packet they dumped is
 * one of ours (same addresses and echo, or TCP segment).
 */
export function ownTraces(traces: readonly TraceMessage[], ownTable: string): TraceMessage[] {
  const ours = new Map<number, boolean>();
  // Our marking rule matched in the pass through our chain now under way (per id).
  const marked = new Set<number>();
  const decided: boolean[] = [];
  for (const t of traces) {
    if (isTracepktTable(t.table)) {
      // A rule's own message has its handle; the chain's end speaks without one.
      const ruleMatched = t.type === TRACE_TYPE.RULE && t.handle !== null;
      if (t.table === ownTable) {
        if (ruleMatched) {
          marked.add(t.id);
          ours.set(t.id, true);
        } else if (t.type === TRACE_TYPE.POLICY) {
          if (!marked.has(t.id)) ours.set(t.id, false); // through our chain, marked by someone else
          marked.delete(t.id);
        }
      } else if (ruleMatched) {
        ours.set(t.id, false); // another run's rule marked it
      }
    }
    decided.push(ours.get(t.id) ?? false);
  }
  // The packets our marking rule vouched for, as the messages dumped them.
  const identities: PacketId[] = [];
  const dumped = new Map<number, PacketId>();
  const packetOf = traces.map((t) => {
    const p = tracedPacket(t);
    if (p) dumped.set(t.id, p);
    return dumped.get(t.id) ?? null;
  });
  traces.forEach((t, i) => {
    const p = packetOf[i];
    if (decided[i] && p && !identities.some((q) => samePacket(q, p))) identities.push(p);
  });
  return traces.filter((t, i) => {
    if (isTracepktTable(t.table)) return false;
    if (decided[i]) return true;
    if (ours.has(t.id)) return false; // a tracepkt table spoke for it: not ours
    const p = packetOf[i];
    return p !== null && identities.some((q) => samePacket(q, p));
  });
}

const judgeKey = (family: string, table: string, chain: string) => `${family} ${table} ${chain}`;

/**
 * Splits one namespace's trace messages into base-chain decisions. Messages
 * about one packet share a trace id and come in evaluation order; a base
 * chain starts a segment, chains it jumps to belong to it.
 */
export function chainDecisions(ns: NamespaceVerdicts): ChainDecision[] {
  const baseChains = new Map(ns.judges.filter((j) => j.backend === 'nftables').map((j) => [judgeKey(j.tableFamily, j.table, j.chain), j]));
  const familyName = (f: number) => ({ 1: 'inet', 2: 'ip', 10: 'ip6' })[f] ?? String(f);
  const decisions: ChainDecision[] = [];
  const open = new Map<number, { judge: Judge; packet: PacketId; decided: boolean }>();
  // The kernel dumps the headers once per chain it evaluates: remember them per packet.
  const packets = new Map<number, PacketId>();
  for (const t of ownTraces(ns.traces, ns.ownTable)) {
    const dumped = tracedPacket(t);
    if (dumped) packets.set(t.id, dumped);
    const packet = packets.get(t.id);
    const judge = baseChains.get(judgeKey(familyName(t.family), t.table, t.chain));
    let segment = open.get(t.id);
    if (judge && (!segment || segment.judge !== judge || segment.decided)) {
      if (!packet) continue;
      segment = { judge, packet, decided: false };
      open.set(t.id, segment);
    }
    if (!segment || segment.decided) continue; // our own table, or an unknown chain
    const terminal = t.type === TRACE_TYPE.POLICY || (t.type === TRACE_TYPE.RULE && t.verdict !== null && t.verdict >= 0);
    if (!terminal) continue;
    segment.decided = true;
    const policy = t.type === TRACE_TYPE.POLICY;
    decisions.push({
      judge: segment.judge,
      packet: segment.packet,
      verdict: verdictName(policy ? (t.policy ?? t.verdict ?? 1) : t.verdict!),
      chain: t.chain,
      handle: policy ? null : t.handle,
      decidedBy: policy ? 'policy' : 'rule',
    });
  }
  return decisions;
}

type Identity = Pick<PacketId, 'dir' | 'icmp_id' | 'icmp_seq' | 'src' | 'dst' | 'proto' | 'sport' | 'dport' | 'tcp_flags' | 'tcp_seq'>;

/**
 * The same packet: same addresses, and the same echo (ICMP: direction,
 * identifier, sequence) or the same segment (TCP: ports, flags, sequence
 * number; UDP: ports).
 */
function samePacket(a: Identity, e: Identity): boolean {
  if (a.src !== e.src || a.dst !== e.dst) return false;
  // ICMP errors: nftables' 20 bytes of transport header do not reach what they quote.
  if (a.dir === 'error' || e.dir === 'error') return a.dir === e.dir;
  if (a.proto !== e.proto) return false;
  if (a.proto === 6) return a.sport === e.sport && a.dport === e.dport && a.tcp_flags === e.tcp_flags && a.tcp_seq === e.tcp_seq;
  if (a.proto === 17) return a.sport === e.sport && a.dport === e.dport;
  return a.dir === e.dir && a.icmp_id === e.icmp_id && a.icmp_seq === e.icmp_seq;
}

const identityOf = (e: CheckpointEvent | HopEvent | DropEvent | TableVerdictEvent): PacketId => ({
  family: e.family,
  src: e.src,
  dst: e.dst,
  dir: e.dir,
  icmp_id: e.icmp_id,
  icmp_seq: e.icmp_seq,
  proto: e.proto,
  sport: e.sport,
  dport: e.dport,
  tcp_flags: e.tcp_flags,
  tcp_seq: e.tcp_seq,
  tunnel: e.tunnel,
});

function event(ns: NamespaceVerdicts, judge: Judge, p: PacketId, time_ns: number, d: Partial<ChainDecision> & { verdict: string }): NetfilterEvent {
  return {
    kind: 'netfilter',
    time_ns,
    netns: ns.netns,
    netns_name: ns.netnsName,
    dir: p.dir,
    family: p.family,
    src: p.src,
    dst: p.dst,
    icmp_id: p.icmp_id,
    icmp_seq: p.icmp_seq,
    proto: p.proto,
    tunnel: p.tunnel ?? null,
    sport: p.sport,
    dport: p.dport,
    tcp_flags: p.tcp_flags,
    tcp_seq: p.tcp_seq,
    hook: hookName(judge.hooknum),
    table_family: judge.tableFamily,
    table: judge.table,
    chain: d.chain ?? judge.chain,
    priority: judge.priority,
    backend: judge.backend,
    verdict: d.verdict,
    rule: null,
    handle: d.handle ?? null,
    decided_by: d.decidedBy ?? 'passage',
  };
}

/** One packet's pass through one hook, as the checkpoints saw it. */
interface Passage {
  plan: HookPlan;
  seen: Map<number, CheckpointEvent>;
}

function passages(ns: NamespaceVerdicts, checkpoints: readonly CheckpointEvent[]): Passage[] {
  const byKey = new Map<string, Passage>();
  for (const c of checkpoints) {
    if (c.netns !== ns.netns) continue;
    const plan = ns.plans.find((p) => p.pf === c.nf_pf && p.hooknum === c.nf_hook);
    if (!plan) continue;
    const key = `${c.nf_pf}/${c.nf_hook}/${c.skb}/${c.dir}/${c.icmp_seq}/${c.tcp_flags}/${c.tcp_seq}`;
    if (!byKey.has(key)) byKey.set(key, { plan, seen: new Map() });
    byKey.get(key)!.seen.set(c.index, c);
  }
  return [...byKey.values()];
}

/**
 * The kernel freed this packet as netfilter's drop right after checkpoint
 * `c`: the next thing that happened to its sk_buff there (no hop in between,
 * so not a drop at a later hook after a lost record).
 */
function netfilterDropped(seen: readonly TraceEvent[], c: CheckpointEvent): boolean {
  const next = seen.filter((e) => (e.kind === 'drop' || e.kind === 'hop') && e.skb === c.skb && e.time_ns >= c.time_ns).sort((a, b) => a.time_ns - b.time_ns)[0];
  return next?.kind === 'drop' && next.netns === c.netns && next.reason === 'NETFILTER_DROP';
}

/**
 * Hooks that are no table but may drop a packet (include/uapi/linux/netfilter_ipv4.h), by hook:
 * defragmentation (-400), SELinux (-225, 225), conntrack (-200), conntrack helpers (300). A band
 * holding one cannot be blamed on its table from a netfilter drop alone.
 */
const CORE_HOOKS: Record<number, number[]> = {
  0: [-400, -225, -200],
  1: [225, 300],
  2: [],
  3: [-400, -225, -200],
  4: [225, 300],
};

/** Whether a hook that is no table sits between the checkpoints around band `band`. */
function coreHookInBand(plan: HookPlan, band: number): boolean {
  const from = plan.checkpointPriorities[band - 1];
  const to = plan.checkpointPriorities[band] ?? plan.priorities[band - 1];
  return (CORE_HOOKS[plan.hooknum] ?? []).some((p) => p > from && p < to);
}

const judgeLabel = (j: Judge) => `${j.tableFamily} ${j.table} ${j.chain}`;

export interface NetfilterFindings {
  events: NetfilterEvent[];
  gaps: NetfilterGap[];
}

/**
 * Verdicts only where the kernel gave evidence of one: an nftables trace
 * (the rule or policy that decided), a checkpoint after the table (it let
 * the packet through), or for a table nothing traces (iptables-legacy) the
 * kernel freeing the packet as netfilter's drop inside its band. A band
 * entered and not left without such evidence is a gap, not a verdict: the
 * packet may have been queued or stolen, dropped by a hook that is no table
 * (conntrack, defragmentation), or a record was lost.
 */
export function netfilterFindings(
  namespaces: readonly NamespaceVerdicts[],
  checkpoints: readonly CheckpointEvent[],
  /** What the hooks saw (hops, drops, route lookups): places decisions no checkpoint dated. */
  seen: readonly TraceEvent[],
  tables: readonly TableVerdictEvent[] = [],
): NetfilterFindings {
  const out: NetfilterEvent[] = [];
  const gaps: NetfilterGap[] = [];
  for (const ns of namespaces) {
    // Kernels without checkpoints: iptables-legacy tables report their own verdicts.
    for (const t of tables) {
      if (t.netns !== ns.netns) continue;
      const judge = ns.judges.find((j) => j.backend === 'iptables-legacy' && j.table === t.table && j.hooknum === t.nf_hook && j.pfs.includes(t.nf_pf)) ?? {
        backend: 'iptables-legacy' as const,
        tableFamily: FAMILY_NAMES[t.nf_pf] ?? String(t.nf_pf),
        table: t.table,
        chain: hookName(t.nf_hook),
        hooknum: t.nf_hook,
        priority: t.priority,
        pfs: [t.nf_pf],
      };
      out.push(event(ns, judge, t, t.time_ns, { verdict: verdictName(t.verdict), decidedBy: 'table' }));
    }
    const decisions = chainDecisions(ns);
    const placed = new Set<ChainDecision>();
    // Each decision is placed once, by the first passage of the same packet through its chain.
    const decisionOf = (judge: Judge, p: Identity) => decisions.find((d) => !placed.has(d) && d.judge === judge && samePacket(d.packet, p));
    // A decision about the packet, or in a tunnel about the outer packet that carries it.
    const decisionFor = (judge: Judge, c: CheckpointEvent) => {
      const outer = outerIdentityOf(c);
      return decisionOf(judge, identityOf(c)) ?? (outer ? decisionOf(judge, outer) : undefined);
    };

    for (const { plan, seen: at } of passages(ns, checkpoints)) {
      for (let band = 1; band <= plan.priorities.length; band++) {
        const before = at.get(band - 1);
        if (!before) break; // stopped earlier, or a record was lost
        const after = at.get(band);
        // The packet as it entered the band: earlier bands may have rewritten it (NAT).
        const packet = identityOf(before);
        const judges = judgesInBand(ns.judges, plan, band);
        // A traced stop is not this packet's when it came out of the band (another packet alike).
        const traced = judges.map((j) => {
          const d = j.backend === 'nftables' ? decisionFor(j, before) : undefined;
          return { j, d: d && after && d.verdict !== 'ACCEPT' ? undefined : d };
        });
        for (const { d } of traced) if (d) placed.add(d);
        const nftStopped = traced.some(({ d }) => d && d.verdict !== 'ACCEPT');
        const untraced = traced.filter(({ d }) => !d);
        for (const { j, d } of traced) if (d) out.push(event(ns, j, packet, (after ?? before).time_ns, d));
        if (after) {
          // Through the band: every table in it let the packet pass.
          for (const { j } of untraced) out.push(event(ns, j, packet, after.time_ns, { verdict: 'ACCEPT' }));
          continue;
        }
        if (nftStopped) break; // nftables stopped it here; whether the others ran first is unknowable
        const legacy = untraced.filter(({ j }) => j.backend === 'iptables-legacy');
        if (legacy.length === 1 && untraced.length === 1 && !coreHookInBand(plan, band) && netfilterDropped(seen, before)) {
          out.push(event(ns, legacy[0].j, packet, before.time_ns + 1, { verdict: 'DROP' }));
        } else {
          gaps.push({ time_ns: before.time_ns, netns: ns.netns, netns_name: ns.netnsName, dir: before.dir, icmp_seq: before.icmp_seq, hook: hookName(plan.hooknum), tables: judges.map(judgeLabel) });
        }
        break;
      }
    }

    // Decisions no checkpoint placed (kernels before 6.4, or a plan that could not be
    // attached): shown only for packets the hooks saw in this namespace.
    const sighted = seen.filter((h): h is HopEvent | DropEvent => (h.kind === 'hop' || h.kind === 'drop') && h.netns === ns.netns);
    // A decision about a tunnel's outer packet names no probe (its dump ends before the probe):
    // it goes to the first probe of that tunnel this chain has no decision for yet, in order.
    const decidedFor = new Set<string>();
    for (const d of decisions) {
      if (placed.has(d)) continue;
      const direct = sighted.find((h) => samePacket(d.packet, h));
      const by = direct ?? sighted.find((h) => {
        const o = outerIdentityOf(h);
        return o !== null && samePacket(d.packet, o) && !decidedFor.has(`${judgeLabel(d.judge)} ${h.dir} ${h.icmp_seq} ${h.tcp_seq}`);
      });
      if (!by) continue;
      const packet = direct ? d.packet : identityOf(by);
      if (!direct) decidedFor.add(`${judgeLabel(d.judge)} ${by.dir} ${by.icmp_seq} ${by.tcp_seq}`);
      out.push(event(ns, d.judge, packet, nearHops(ns.netns, { ...d, packet }, seen), d));
    }
  }
  return { events: out.sort((a, b) => a.time_ns - b.time_ns), gaps: gaps.sort((a, b) => a.time_ns - b.time_ns) };
}

/** The verdicts of netfilterFindings. */
export function netfilterEvents(
  namespaces: readonly NamespaceVerdicts[],
  checkpoints: readonly CheckpointEvent[],
  seen: readonly TraceEvent[],
  tables: readonly TableVerdictEvent[] = [],
): NetfilterEvent[] {
  return netfilterFindings(namespaces, checkpoints, seen, tables).events;
}

/**
 * A time for a decision that no checkpoint dated (kernels before 6.4), from
 * what the hooks saw of the packet in that namespace: a DROP just before the
 * kernel freed it; PREROUTING just after it was received, INPUT and FORWARD
 * after its input route lookup, OUTPUT and POSTROUTING just before it was sent.
 */
function nearHops(netns: number, d: ChainDecision, seen: readonly TraceEvent[]): number {
  const mine = seen.filter((h): h is HopEvent | DropEvent => (h.kind === 'hop' || h.kind === 'drop') && h.netns === netns && samePacket(d.packet, h));
  const hook = d.judge.hooknum;
  const freed = mine.find((h) => h.kind === 'drop');
  if (d.verdict === 'DROP' && freed) return freed.time_ns - 1;
  const received = mine.filter((h) => h.kind === 'hop' && h.hook === 'netif_receive_skb').pop();
  const sent = mine.find((h) => h.kind === 'hop' && h.hook === 'net_dev_queue');
  if (hook <= 2 && received) {
    const routed = seen.filter((r): r is RouteEvent => r.kind === 'route' && r.netns === netns && r.purpose === 'input' && r.dst === d.packet.dst && r.time_ns > received.time_ns)[0];
    return hook > 0 && routed ? routed.time_ns + hook : received.time_ns + 1 + hook;
  }
  if (hook >= 3 && sent) return sent.time_ns - 5 + hook;
  return (received ?? sent ?? mine[0])?.time_ns ?? 0;
}
