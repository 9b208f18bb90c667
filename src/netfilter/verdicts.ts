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
import { tcpFlags } from '../decode';
import type { CheckpointEvent, Direction, DropEvent, HopEvent, NetfilterEvent, RouteEvent, TableVerdictEvent, TraceEvent } from '../events';
import { FAMILY_NAMES, hookName, verdictName } from './hooks';
import { judgesInBand, type HookPlan, type Judge } from './judges';
import { TRACE_TYPE, type TraceMessage } from './nftables';

/** What one namespace contributes: who judges there, where checkpoints are, what nftables traced. */
export interface NamespaceVerdicts {
  netns: number;
  netnsName: string | null;
  judges: Judge[];
  plans: HookPlan[];
  traces: TraceMessage[];
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
  const ports = proto === 6 || proto === 17;
  return {
    proto,
    dir: (ports || l4[0] === requestType ? 'request' : 'reply') as Direction,
    icmp_id: ports ? 0 : l4.readUInt16BE(4),
    icmp_seq: ports ? 0 : l4.readUInt16BE(6),
    sport: ports ? l4.readUInt16BE(0) : 0,
    dport: ports ? l4.readUInt16BE(2) : 0,
    tcp_flags: proto === 6 && l4.length >= 14 ? tcpFlags(l4[13]) : '',
  };
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
  for (const t of ns.traces) {
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

type Identity = Pick<PacketId, 'dir' | 'icmp_seq' | 'src' | 'dst' | 'proto' | 'sport' | 'dport' | 'tcp_flags'>;

/** The same packet: same addresses, and the same echo (ICMP) or ports and flags (TCP/UDP). */
function samePacket(a: Identity, e: Identity): boolean {
  if (a.src !== e.src || a.dst !== e.dst) return false;
  if (a.proto === 6 || a.proto === 17) return a.proto === e.proto && a.sport === e.sport && a.dport === e.dport && a.tcp_flags === e.tcp_flags;
  return a.dir === e.dir && a.icmp_seq === e.icmp_seq;
}

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
    sport: p.sport,
    dport: p.dport,
    tcp_flags: p.tcp_flags,
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
    const key = `${c.nf_pf}/${c.nf_hook}/${c.skb}/${c.dir}/${c.icmp_seq}`;
    if (!byKey.has(key)) byKey.set(key, { plan, seen: new Map() });
    byKey.get(key)!.seen.set(c.index, c);
  }
  return [...byKey.values()];
}

export function netfilterEvents(
  namespaces: readonly NamespaceVerdicts[],
  checkpoints: readonly CheckpointEvent[],
  /** What the hooks saw (hops, drops, route lookups): places decisions no checkpoint dated. */
  seen: readonly TraceEvent[],
  tables: readonly TableVerdictEvent[] = [],
): NetfilterEvent[] {
  const out: NetfilterEvent[] = [];
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
    const decisionOf = (judge: Judge, p: Identity) =>
      decisions.find((d) => d.judge === judge && samePacket(d.packet, p));
    const placed = new Set<ChainDecision>();

    for (const { plan, seen } of passages(ns, checkpoints)) {
      const entry = seen.get(0) ?? [...seen.values()][0];
      const packet: PacketId = {
        family: entry.family,
        src: entry.src,
        dst: entry.dst,
        dir: entry.dir,
        icmp_id: entry.icmp_id,
        icmp_seq: entry.icmp_seq,
        proto: entry.proto,
        sport: entry.sport,
        dport: entry.dport,
        tcp_flags: entry.tcp_flags,
      };
      for (let band = 1; band <= plan.priorities.length; band++) {
        const before = seen.get(band - 1);
        if (!before) break; // stopped earlier, or a record was lost
        const after = seen.get(band);
        const judges = judgesInBand(ns.judges, plan, band);
        const traced = judges.map((j) => ({ j, d: j.backend === 'nftables' ? decisionOf(j, packet) : undefined }));
        const nftDropped = traced.some(({ d }) => d && d.verdict !== 'ACCEPT');
        for (const { j, d } of traced) {
          if (d) {
            placed.add(d);
            out.push(event(ns, j, packet, (after ?? before).time_ns, d));
          } else if (!after && nftDropped) {
            // nftables stopped it in this band; whether this table ran first is unknowable.
            continue;
          } else {
            out.push(event(ns, j, packet, (after ?? before).time_ns, { verdict: after ? 'ACCEPT' : 'DROP' }));
          }
        }
        if (!after) break;
      }
    }

    // Decisions no checkpoint placed: kernels without BPF netfilter links.
    for (const d of decisions) {
      if (placed.has(d)) continue;
      out.push(event(ns, d.judge, d.packet, nearHops(ns.netns, d, seen), d));
    }
  }
  return out.sort((a, b) => a.time_ns - b.time_ns);
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
