/**
 * The last line of a journey: one plain sentence on what happened to the
 * probe, from the most telling evidence: a reply, a netfilter verdict, a
 * drop (explained by the route, the neighbour or the ICMP error it
 * concerns), an ICMP error, a failed route lookup, or the last place the
 * probe was seen.
 */
import { resolution } from './addr';
import { describeConntrack } from './conntrack';
import { describeProgram } from './kernel/attached-programs';
import { NO_REASON_GIVEN, reasonUnnamed, type BpfProgramOnPath, type DropEvent, type HopEvent, type NeighbourEvent, type NetfilterEvent, type ProgramReturn, type RouteEvent, type TraceEvent } from './events';
import { describeIcmpError } from './icmp';
import { probeSeq } from './journey';
import { chainLabel, decidedBy } from './netfilter/describe';
import type { NetfilterGap } from './netfilter/verdicts';
import { tunnelLabel, tunnelOfFlow } from './tunnel';

/** Interfaces that are down, by namespace inode, on this node (`node`: its name in a journey across nodes). */
export type DownInterfaces = ReadonlyMap<number, string[]> & { node?: string };

/** "c1", or "c1 on node b" where the journey spans nodes. */
const nsName = (e: { netns: number; netns_name: string | null; node?: string }) => `${e.netns_name ?? String(e.netns)}${e.node === undefined ? '' : ` on node ${e.node}`}`;

/** One namespace: the same inode on the same node (every host's first namespace has the same inode). */
const sameNs = (a: { netns: number; node?: string }, b: { netns: number; node?: string }) => a.netns === b.netns && a.node === b.node;

const ROUTE_ERRORS: Record<string, string> = {
  'no route': 'no route to',
  unreachable: 'unreachable route to',
  blackhole: 'blackhole route to',
  prohibit: 'prohibit route to',
};

/** "no route to 10.0.2.2 (table main)"; `what` names the destination ("its remote endpoint "). */
function routeFailure(r: RouteEvent, down: DownInterfaces, what = ''): string {
  const off = (down.node === undefined || r.node === undefined || r.node === down.node ? down.get(r.netns) : undefined) ?? [];
  const hint = off.length ? `; down there: ${off.join(', ')}` : '';
  return `${ROUTE_ERRORS[r.error!] ?? `${r.error} route to`} ${what}${r.dst} (table ${r.table}${hint})`;
}

const icmpError = (e: HopEvent) => describeIcmpError(e.family, e.icmp_type, e.icmp_code, e.mtu);

/**
 * A tunnel device that could not send the probe on: the drop reasons of
 * VXLAN and Geneve transmit paths (6.9+ name them; 6.1 frees without one).
 */
function tunnelDrop(d: DropEvent): string | null {
  const m = /^(vxlan|geneve)_(xmit)?/.exec(d.location);
  if (!m) return null;
  const [, driver, sending] = m;
  const dev = d.ifname ? `${driver} device ${d.ifname}` : `the ${driver} device`;
  switch (d.reason) {
    case 'NO_TX_TARGET':
    case 'VXLAN_NO_REMOTE':
      return `${dev} has no remote and no forwarding entry for the destination (${d.reason})`;
    case 'VXLAN_VNI_NOT_FOUND':
      return `no ${driver} device for VNI ${d.tunnel?.id ?? '?'} here (${d.reason})`;
    case 'NOT_SPECIFIED':
    case NO_REASON_GIVEN:
      // Kernels before 6.9 free without a reason: only where it was sending is a guess fair.
      return sending
        ? `${dev} could not send it on, and this kernel gives no reason (no remote or forwarding entry for the destination, or no route to the remote endpoint)`
        : `the ${driver} driver dropped it on receive, and this kernel gives no reason`;
    default:
      return null;
  }
}

/**
 * A failed route lookup a tunnel device made for its outer packet towards
 * its remote endpoint (its flow is a tunnel's: src/tunnel.ts), in words,
 * naming the device the probe entered just before. Null for other lookups.
 * The tunnel may have dropped the probe (VXLAN) or freed it silently
 * (Geneve consumes it): either way it went no further.
 */
function tunnelRouteFailure(failed: RouteEvent, events: readonly TraceEvent[], down: DownInterfaces, sayNamespace = true): string | null {
  const type = tunnelOfFlow(failed.proto, failed.dport);
  if (!type) return null;
  const entered = events.filter((e): e is HopEvent => e.kind === 'hop' && e.skb === failed.skb && e.node === failed.node && e.hook === 'net_dev_queue' && !e.tunnel && e.time_ns <= failed.time_ns).pop();
  const dev = entered ? `${type} device ${entered.ifname}${sayNamespace ? ` in namespace ${nsName(entered)}` : ''}` : `the ${type} tunnel`;
  const failure = routeFailure(failed, down, 'its remote endpoint ');
  return `${dev} has ${/^no /.test(failure) ? '' : /^[aeiou]/.test(failure) ? 'an ' : 'a '}${failure}`;
}

/** Where XDP and tc hand a packet to BPF programs, and the kernel code that frees what they drop. */
const XDP_PLACE = /^(do_xdp_generic|netif_receive_generic_xdp|bpf_prog_run_generic_xdp|veth_xdp_rcv|veth_xdp_rcv_skb|xdp_)/;
const TC_INGRESS_PLACE = /^(sch_handle_ingress|tcf_classify_ingress|tcx_run)/;
const TC_EGRESS_PLACE = /^(sch_handle_egress)/;

/**
 * A drop by XDP or tc, where the kernel says so (the reason, or where it
 * freed the packet): the hook, the interface, and the BPF program there
 * that returned the drop where their returns were traced, else those that
 * could have dropped it. Null for other drops.
 */
function bpfHookDrop(d: DropEvent, events: readonly TraceEvent[], programs: readonly BpfProgramOnPath[] | undefined, lost: number | undefined): string | null {
  const reason = reasonUnnamed(d.reason) ? '' : d.reason;
  const hook = reason === 'XDP' || XDP_PLACE.test(d.location) ? 'xdp'
    : reason === 'TC_INGRESS' || TC_INGRESS_PLACE.test(d.location) ? 'ingress'
    : reason === 'TC_EGRESS' || TC_EGRESS_PLACE.test(d.location) ? 'egress'
    : null;
  if (!hook) return placeOnlyTcDrop(d, events, programs);
  if (!programs) return `${hook === 'xdp' ? 'XDP' : `tc ${hook}`}${d.ifname ? ` on ${d.ifname}` : ''} dropped it${reason ? ` (${reason})` : ''}`;
  const here = programs.filter((p) => p.netns === d.netns && p.ifindex === d.ifindex && (hook === 'xdp' ? p.hook === 'xdp' : p.hook !== 'xdp' && p.direction === hook));
  const what = hook === 'xdp' ? 'XDP' : `tc ${hook}`;
  const why = reason ? ` (${reason})` : '';
  const on = d.ifname ? ` on ${d.ifname}` : '';
  if (here.length === 0) return `${what}${on} dropped it${why}; no BPF program is attached there now (it went away${hook === 'xdp' ? '' : ', or a tc action that is no BPF program dropped it'})`;
  // Traced (fexit on them): the program that returned a drop for this very packet is known.
  const returns = here.map((p) => ({ program: p, ret: returnBefore(p, d, events) }));
  const did = droppedBy(returns);
  if (did) return `${what}${on} dropped it${why}: ${describeProgram(did.program)} returned ${did.ret.action} for it`;
  // Every one of them let this packet pass, and no record was lost that could have said otherwise.
  if (!lost && returns.every((r) => r.ret && !r.ret.ends)) {
    const said = returns.map((r) => `${describeProgram(r.program)} returned ${r.ret!.action}`).join('; ');
    const after = hook === 'xdp' ? 'the frame was dropped after them (an XDP_TX or redirect that failed, or the driver)' : 'a tc action that is no BPF program dropped it, or a redirect that failed';
    return `${what}${on} dropped it${why}, though the BPF programs there let it pass (${said}): ${after}`;
  }
  const which = here.length === 1 ? `the BPF program that could have dropped it: ${describeProgram(here[0])}` : `the BPF programs that could have dropped it: ${here.map(describeProgram).join('; ')}`;
  return `${what}${on} dropped it${why}; ${which}`;
}

/**
 * What a traced program returned for the dropped packet itself, last
 * before the drop: by its sk_buff (tc), or for XDP (no sk_buff) the same
 * probe packet with no sighting of it in between. Null when none was recorded.
 */
function returnBefore(p: BpfProgramOnPath, d: DropEvent, events: readonly TraceEvent[]): ProgramReturn | null {
  const seq = probeSeq(d);
  const sightings = events.filter((e) => (e.kind === 'hop' || e.kind === 'drop') && e.dir === d.dir && probeSeq(e) === seq && e !== d);
  const mine = p.returned.filter((r) =>
    r.dir === d.dir && r.seq === seq && r.time_ns <= d.time_ns &&
    (r.skb !== '0' ? r.skb === d.skb : !sightings.some((e) => e.time_ns > r.time_ns && e.time_ns < d.time_ns)));
  return mine.pop() ?? null;
}

/** Of the programs' returns for a dropped packet, the one that dropped it, if any did. */
function droppedBy(returns: readonly { program: BpfProgramOnPath; ret: ProgramReturn | null }[]): { program: BpfProgramOnPath; ret: ProgramReturn } | null {
  const did = returns.filter((r) => r.ret?.ends === 'drop').pop();
  return did ? { program: did.program, ret: did.ret! } : null;
}

/**
 * A traced program that ended the probe's packet where no drop was
 * recorded and nothing saw it afterwards: XDP drops of frames without an
 * sk_buff (native XDP), and tc programs that take the packet
 * (TC_ACT_STOLEN: freed as consumed, not dropped).
 */
function programEnded(events: readonly TraceEvent[], programs: readonly BpfProgramOnPath[] | undefined): string | null {
  const first = events.find((e): e is HopEvent => e.kind === 'hop');
  if (!programs || !first) return null;
  const seq = probeSeq(first);
  const seenAfter = (r: ProgramReturn) => events.some((e) => (e.kind === 'hop' || e.kind === 'drop') && e.dir === r.dir && probeSeq(e) === seq && e.time_ns > r.time_ns);
  let end: { program: BpfProgramOnPath; ret: ProgramReturn } | null = null;
  for (const program of programs) {
    for (const ret of program.returned) {
      if (ret.seq === seq && ret.dir !== 'error' && ret.ends && !seenAfter(ret) && (!end || ret.time_ns < end.ret.time_ns)) end = { program, ret };
    }
  }
  if (!end) return null;
  const p = end.program;
  const where = `on ${p.ifname} in namespace ${nsName(p)}`;
  const what = end.ret.ends === 'drop' ? 'dropped' : 'taken (freed as consumed, not as a drop: no drop record)';
  return `${end.ret.dir} ${what} ${where} by ${describeProgram(p)}: it returned ${end.ret.action} for it`;
}

/**
 * Kernels that give no reason (before 5.17) free what tc drops inside the
 * function that runs it (sch_handle_* inlined): there, a drop is tc's only
 * if a tc program is attached on that side of the interface, and even then
 * only maybe (the same function frees packets for other causes), unless
 * the program's own return code, traced, says it.
 */
function placeOnlyTcDrop(d: DropEvent, events: readonly TraceEvent[], programs: readonly BpfProgramOnPath[] | undefined): string | null {
  if (d.reason !== NO_REASON_GIVEN || !programs) return null;
  const side = /^__dev_queue_xmit\b/.test(d.location) ? 'egress' : /^__netif_receive_skb_core\b/.test(d.location) ? 'ingress' : null;
  const here = programs.filter((p) => p.netns === d.netns && p.ifindex === d.ifindex && p.hook !== 'xdp' && p.direction === side);
  if (!side || here.length === 0) return null;
  const did = droppedBy(here.map((p) => ({ program: p, ret: returnBefore(p, d, events) })));
  if (did) return `tc ${side}${d.ifname ? ` on ${d.ifname}` : ''} dropped it: ${describeProgram(did.program)} returned ${did.ret.action} for it`;
  return `freed where tc ${side} runs${d.ifname ? ` on ${d.ifname}` : ''}, and this kernel gives no reason; the BPF program${here.length > 1 ? 's' : ''} there could have dropped it: ${here.map(describeProgram).join('; ')}`;
}

/** Kernel code of conntrack and NAT: a drop there is theirs. */
const CONNTRACK_PLACE = /^(__)?(nf_conntrack|nf_ct_|nf_confirm|ipv[46]_conntrack|nf_nat_)/;

/**
 * The conntrack entry a dropped packet had, where netfilter or conntrack
 * dropped it (elsewhere the entry explains nothing).
 */
function entryAtDrop(d: DropEvent): string {
  const netfilter = d.reason === 'NETFILTER_DROP' || /^(nft_do_chain|nf_hook_slow|ip6?t_do_table)\b/.test(d.location) || CONNTRACK_PLACE.test(d.location);
  if (!netfilter) return '';
  return d.conntrack ? `; its conntrack entry there: ${describeConntrack(d.conntrack)}` : '; it had no conntrack entry there (conntrack does not run there, or found it invalid)';
}

/** Why a drop happened, in words, from what else happened to the packet in that namespace. */
function explainDrop(d: DropEvent, events: readonly TraceEvent[], down: DownInterfaces, programs?: readonly BpfProgramOnPath[], lost?: number): string {
  const bpf = bpfHookDrop(d, events, programs, lost);
  if (bpf) return bpf;
  // Dropped in a tunnel: the outer packet's addresses are what routing and neighbours saw.
  const packet = d.tunnel ?? d;
  // The tunnel's own lookup for this packet: recorded where its device is, which may not be where it looked (IPv6 says).
  const tunnelRoute = events.find((e): e is RouteEvent => e.kind === 'route' && e.skb === d.skb && e.node === d.node && e.error !== null && !d.tunnel && tunnelOfFlow(e.proto, e.dport) !== null);
  const tunnelWhy = tunnelRoute && tunnelRouteFailure(tunnelRoute, events, down, false);
  if (tunnelWhy) return tunnelWhy;
  const routes = events.filter((e): e is RouteEvent => e.kind === 'route' && sameNs(e, d) && (e.skb === d.skb || e.skb === '0') && (!d.tunnel || (e.family === packet.family && (e.dst === packet.dst || e.dst === packet.src))));
  const failed = routes.find((r) => r.error !== null && r.purpose !== 'reverse-path');
  if (failed) return routeFailure(failed, down);
  // No reason named (none before 5.17, NOT_SPECIFIED on 6.1): the place says the neighbour layer gave up on it.
  const placeOnly = reasonUnnamed(d.reason);
  if (d.reason.startsWith('NEIGH_') || (placeOnly && /^(neigh_invalidate|__neigh_event_send|neigh_flush|neigh_destroy)\b/.test(d.location))) {
    // Where the packet was queued, the kernel named the next hop; else the route lookup made for it.
    const queued = events.filter((e): e is NeighbourEvent => e.kind === 'neighbour' && e.skb === d.skb && sameNs(e, d) && e.time_ns <= d.time_ns).pop();
    const via = routes.filter((r) => r.oif !== null && r.purpose !== 'reverse-path').pop();
    const nextHop = queued?.next_hop ?? via?.gateway ?? packet.dst;
    const dev = queued?.ifname ?? via?.oif ?? d.ifname;
    const what = d.tunnel ? ` (for the ${tunnelLabel(d.tunnel)} packet carrying the probe)` : '';
    return `next hop ${nextHop} did not answer ${resolution(nextHop)}${dev ? ` on ${dev}` : ''}${what}${placeOnly ? '' : ` (${d.reason})`}`;
  }
  if (d.reason === 'IP_RPFILTER') {
    const reverse = routes.find((r) => r.purpose === 'reverse-path');
    const back = reverse?.oif ? `replies to ${packet.src} would leave by ${reverse.oif}` : `no route back to ${packet.src}`;
    return `reverse path filter: ${back}, but it came in on ${d.ifname || 'another interface'}`;
  }
  const tunnel = tunnelDrop(d);
  if (tunnel) return tunnel;
  // Freed inside conntrack itself (its table full, a confirmation that lost a race, a helper).
  if (CONNTRACK_PLACE.test(d.location)) return `conntrack dropped it (${placeOnly ? 'the kernel gives no reason' : d.reason})`;
  // The kernel told the sender why, in an ICMP error from here: its words beat the reason's.
  const told = events.find((e): e is HopEvent => e.kind === 'hop' && e.dir === 'error' && sameNs(e, d));
  if (told) return icmpError(told);
  return d.reason.toLowerCase().replace(/_/g, ' ');
}

/**
 * One drop in words, from its own record alone (passive journeys keep no
 * events): where, why as far as the kernel said, and the conntrack entry
 * the packet had when it was dropped.
 */
export function dropSentence(d: DropEvent): string {
  const where = d.location.replace(/\+0x[0-9a-f]+$/, '');
  return `${d.dir} dropped in namespace ${nsName(d)} at ${where}: ${explainDrop(d, [d], new Map())}${entryAtDrop(d)}`;
}

/** What else is known about a journey besides its events. */
export interface VerdictContext {
  down?: DownInterfaces;
  /** Records the kernel lost in the whole run (ring buffer full): nothing is concluded from a last sighting older than a loss. */
  lost?: number;
  /** Netfilter bands the packet entered and did not leave, unexplained. */
  gaps?: readonly NetfilterGap[];
  /** The kernel refused to send: the MTU it named (ping's local error), and the output device's own MTU where known. */
  localMtu?: { mtu: number; deviceMtu: number | null } | null;
  /** An ICMP "too big" came from a tunnel device: what it and the link beneath it allow. */
  tunnelMtu?: TunnelMtu | null;
  /** The BPF programs attached to the interfaces the probe crossed (on this node). */
  programs?: readonly BpfProgramOnPath[];
  /**
   * A journey across nodes: this node's name. What was read here (interfaces down, BPF programs,
   * tunnel MTUs) concerns only its events: another node's namespaces may have the same inodes.
   */
  localNode?: string;
  /** Records each other node lost (its ring buffer full): its events are judged against its own count. */
  lostByNode?: ReadonlyMap<string, number>;
}

/** A tunnel device that took the probe in and could not carry it (src/probe/run.ts reads it with ip). */
export interface TunnelMtu {
  netns: number;
  device: string;
  /** ip -d link's kind: vxlan, geneve, gre... */
  kind: string;
  /** The device's own MTU: what it accepts. */
  mtu: number;
  /** The probe's IP length as it entered the device. */
  probeLen: number;
  /** The link the tunnel's outer packets leave by, where the device names one. */
  lower: { name: string; mtu: number } | null;
}

/**
 * The probe fit the tunnel device's MTU, but not the path its outer packet
 * takes: the device answered with the MTU that path leaves for the probe.
 */
function tooBigForTunnel(error: HopEvent, t: TunnelMtu): string {
  const room = error.mtu ?? 0;
  // The link beneath explains the room left only where it is what limits it.
  const beneath = t.lower && t.lower.mtu > room ? `over ${t.lower.name} (MTU ${t.lower.mtu}, ${t.lower.mtu - room} bytes of it for the tunnel's headers)` : 'over its underlay';
  const unfragmentable = error.family === 6 ? 'IPv6 is never fragmented on the way' : 'the probe carries DF';
  return `too big for the ${t.kind} tunnel ${t.device} in namespace ${nsName(error)}: its own MTU ${t.mtu} let the ${t.probeLen}-byte probe in, but it carries at most ${room} bytes ${beneath}; ${unfragmentable}, so ${t.device} sent back ${icmpError(error)}`;
}

/**
 * The sentence for a probe the sender's kernel refused to send: larger than
 * the way out allows. The MTU the kernel names is the device's, or a path
 * MTU it learned from an ICMP error earlier (then the device's differs).
 */
function tooBigToSend(events: readonly TraceEvent[], local: { mtu: number; deviceMtu: number | null }): string {
  const out = events.find((e): e is RouteEvent => e.kind === 'route' && e.skb === '0' && e.error === null && e.oif !== null);
  const via = out ? ` (route out of namespace ${nsName(out)} via ${out.oif})` : '';
  const learned = local.deviceMtu !== null && local.deviceMtu !== local.mtu;
  const what = learned ? `the path MTU ${local.mtu} the kernel learned from an earlier ICMP error (${out?.oif ?? 'the device'} itself has ${local.deviceMtu})` : `the MTU ${local.mtu}`;
  return `not sent: larger than ${what} of its way out${via}; it carries DF, so the sender may not fragment it`;
}

/** A verdict on a tunnel's outer packet: which tunnel, and the interface it came in on or left by. */
function inTunnel(v: NetfilterEvent, hops: readonly HopEvent[]): string {
  if (!v.tunnel) return '';
  const at = hops.filter((h) => sameNs(h, v) && h.tunnel && h.time_ns <= v.time_ns).pop();
  return ` (it matched the ${tunnelLabel(v.tunnel)} packet carrying the probe${at ? `, on ${at.ifname}` : ''})`;
}

/**
 * The neighbour a probe's packet was last queued at, where nothing shows it
 * going further: the kernel holds it until the next hop answers, and frees
 * it (NEIGH_FAILED) when none does, seconds later.
 */
function waitingForNeighbour(events: readonly TraceEvent[], context: VerdictContext): NeighbourEvent | null {
  const packets = events.filter((e) => e.kind === 'hop' || e.kind === 'neighbour' || e.kind === 'drop');
  const last = packets[packets.length - 1];
  if (last?.kind !== 'neighbour') return null;
  // Records lost after it (the ring was full): the packet may have gone on unseen. Each node counts its own.
  const remote = last.node !== undefined && context.localNode !== undefined && last.node !== context.localNode;
  const lost = remote ? (context.lostByNode?.get(last.node!) ?? 0) : context.lost;
  return lost !== undefined && lost > last.lost_so_far ? null : last;
}

/** The next hop that did not answer, whose packet was waiting (the probe, or a tunnel's outer packet), and where the probe was last seen. */
function unansweredNeighbour(n: NeighbourEvent, last: HopEvent | undefined): string {
  const what = n.tunnel ? `the ${tunnelLabel(n.tunnel)} packet carrying the ${n.dir}` : `the ${n.dir}`;
  const seen = last && (!sameNs(last, n) || last.ifname !== n.ifname) ? `; last seen as ${last.dir} on ${last.ifname} in namespace ${nsName(last)} (${last.hook})` : '';
  return `next hop ${n.next_hop} on ${n.ifname} in namespace ${nsName(n)} had not answered ${resolution(n.next_hop)} when the trace ended: ${what} was waiting for it there (neighbour ${n.neighbour_state} when it was queued)${seen}`;
}

/**
 * A rule that stopped the probe by its conntrack state (`ct state invalid
 * drop`): the entry the packet had when the kernel dropped it, from the drop
 * record of the same packet there. Empty for other rules.
 */
function conntrackOfStop(stop: NetfilterEvent, events: readonly TraceEvent[]): string {
  if (!stop.rule || !/\bct (state|status|direction|mark|zone)\b/.test(stop.rule)) return '';
  const drop = events.find((e): e is DropEvent => e.kind === 'drop' && sameNs(e, stop) && e.dir === stop.dir && e.time_ns >= stop.time_ns);
  if (!drop) return '';
  if (drop.conntrack) return `; its conntrack entry there: ${describeConntrack(drop.conntrack)}`;
  return /\bct state\b[^;]*\binvalid\b/.test(stop.rule) ? '; conntrack held no valid entry for it there (ct state invalid: it belongs to no connection conntrack knows)' : '; it had no conntrack entry there';
}

/**
 * The NAT a conntrack entry made on the probe's way, from the first request
 * hop whose entry maps something: "; NAT by conntrack in namespace r: dnat ...".
 */
function natOnTheWay(hops: readonly HopEvent[]): string {
  const mapped = hops.find((h) => h.dir === 'request' && h.conntrack?.nat && h.conntrack.direction === 'original');
  return mapped ? `; NAT by conntrack in namespace ${nsName(mapped)}: ${mapped.conntrack!.nat}` : '';
}

export function gapSentence(g: NetfilterGap): string {
  return `last seen in namespace ${nsName(g)} entering ${g.tables.join(', ')} at ${g.hook}; it did not come out, and nothing recorded a drop there (queued or stolen by netfilter, dropped by a hook that is no table, or a record lost)`;
}

export function verdictLine(events: readonly TraceEvent[], replied: boolean, context: VerdictContext = {}): string {
  const down: DownInterfaces = Object.assign(new Map(context.down ?? []), { node: context.localNode });
  const hops = events.filter((e): e is HopEvent => e.kind === 'hop');
  const reply = hops.find((h) => h.dir === 'reply');
  if (replied && reply) {
    // The request stopped by a rule where the answer came from: that rule answered (`reject with
    // tcp reset`, in the target's name), not the target.
    const stop = events.find((e): e is NetfilterEvent => e.kind === 'netfilter' && e.dir === 'request' && e.verdict !== 'ACCEPT' && sameNs(e, reply));
    if (stop && stop.time_ns <= reply.time_ns) {
      return `rejected in namespace ${nsName(stop)} by ${chainLabel(stop)}: ${decidedBy(stop)}; the answer came from there, in ${reply.src}'s name, not from the target`;
    }
    if (reply.proto !== 6) return 'delivered and answered';
    // The first reply hop is the server itself; the last, what the sender saw (NAT may differ).
    const seen = [...hops].reverse().find((h) => h.dir === 'reply' && h.tcp_flags === reply.tcp_flags)!;
    const nat = natOnTheWay(hops).replace(/^; /, '');
    const reached = seen.src !== reply.src || seen.sport !== reply.sport ? `reached as ${seen.src}:${seen.sport}` : '';
    const via = reached || nat ? ` (${[reached, nat].filter(Boolean).join('; ')})` : '';
    const answer = reply.tcp_flags.includes('R') ? `RST: port ${reply.sport} closed` : `SYN-ACK: port ${reply.sport} open`;
    return `answered with ${answer} on ${reply.src}${via}`;
  }

  const firstError = hops.find((h) => h.dir === 'error');
  const errorNote = firstError ? `; ${firstError.family === 6 ? 'ICMPv6' : 'ICMP'} error sent back by ${firstError.src}` : '';

  const stopped = events.find((e): e is NetfilterEvent => e.kind === 'netfilter' && e.verdict !== 'ACCEPT');
  if (stopped) return `dropped in namespace ${nsName(stopped)} by ${chainLabel(stopped)}: ${decidedBy(stopped)}${inTunnel(stopped, hops)}${conntrackOfStop(stopped, events)}${natOnTheWay(hops)}${errorNote}`;

  const drop = events.find((e): e is DropEvent => e.kind === 'drop' && e.dir !== 'error');
  if (drop) {
    const where = drop.location.replace(/\+0x[0-9a-f]+$/, '');
    const programs = context.localNode === undefined || drop.node === context.localNode ? context.programs : undefined;
    return `dropped in namespace ${nsName(drop)} at ${where}: ${explainDrop(drop, events, down, programs, context.lost)}${entryAtDrop(drop)}${natOnTheWay(hops)}${errorNote}`;
  }
  const ended = programEnded(events, context.programs);
  if (ended) return `${ended}${natOnTheWay(hops)}${errorNote}`;
  const t = context.tunnelMtu;
  if (firstError && t && firstError.mtu !== null && firstError.netns === t.netns && (context.localNode === undefined || firstError.node === context.localNode) && firstError.mtu < t.mtu && t.probeLen <= t.mtu) return tooBigForTunnel(firstError, t);
  if (firstError) return `${icmpError(firstError)} from ${firstError.src} (namespace ${nsName(firstError)})`;
  const failed = events.find((e): e is RouteEvent => e.kind === 'route' && e.error !== null && e.purpose !== 'reverse-path');
  const tunnelWhy = failed && tunnelRouteFailure(failed, events, down);
  if (tunnelWhy) return `no reply: ${tunnelWhy}`;
  if (failed) return `not sent: ${routeFailure(failed, down)} in namespace ${nsName(failed)}`;
  const requested = hops.some((h) => h.dir === 'request');
  if (!requested && context.localMtu) return tooBigToSend(events, context.localMtu);
  const last = hops[hops.length - 1];
  const gap = context.gaps?.filter((g) => !last || g.time_ns >= last.time_ns).pop();
  if (gap) return `no reply: ${gapSentence(gap)}`;
  const waiting = waitingForNeighbour(events, context);
  if (waiting) return `no reply: ${unansweredNeighbour(waiting, last)}`;
  if (!last) return 'not seen on any interface';
  return `no reply: last seen as ${last.dir} on ${last.ifname} in namespace ${nsName(last)} (${last.hook})${natOnTheWay(hops)}`;
}

/**
 * What the sender itself says of its probes, independent of the trace:
 * ping's reply lines and its local errors (src/probe/ping.ts reads them).
 */
export interface SenderReport {
  /** Sequence numbers the sender received an answer to. */
  answered: ReadonlySet<number>;
  /** Errors the kernel gave the sender when it tried to send. */
  localErrors: readonly string[];
  /** The MTU such an error named, if any. */
  localMtu: number | null;
}

/** One probe's fate. */
export interface ProbeOutcome {
  /** Its ICMP sequence number (1 for a TCP/UDP probe). */
  seq: number;
  answered: boolean;
  verdict: string;
}

/** The events of probe `seq`: its packets' sightings and verdicts, the route lookups made for them, the sender's own. */
export function eventsOfProbe(events: readonly TraceEvent[], seq: number): TraceEvent[] {
  // sk_buff addresses are each host's: keyed by node too.
  const skbs = new Set<string>();
  for (const e of events) if (e.kind !== 'route' && e.kind !== 'netfilter' && probeSeq(e) === seq) skbs.add(`${e.node} ${e.skb}`);
  return events.filter((e) => (e.kind === 'route' ? e.skb === '0' || skbs.has(`${e.node} ${e.skb}`) : probeSeq(e) === seq));
}

/**
 * Every ping probe's outcome. Whether it was answered is ping's word (its
 * reply lines): an independent witness of the trace. Where ping and the
 * trace disagree, both are said.
 */
export function probeOutcomes(events: readonly TraceEvent[], count: number, ping: SenderReport, context: VerdictContext = {}): ProbeOutcome[] {
  const outcomes: ProbeOutcome[] = [];
  for (let seq = 1; seq <= count; seq++) {
    const mine = eventsOfProbe(events, seq);
    const answered = ping.answered.has(seq);
    const sawReply = mine.some((e) => e.kind === 'hop' && e.dir === 'reply');
    const gaps = context.gaps?.filter((g) => g.icmp_seq === seq);
    // ping's local errors concern the probes it could not send: those the trace never saw leave.
    const local = ping.localErrors.length && ping.localMtu !== null ? (context.localMtu ?? { mtu: ping.localMtu, deviceMtu: null }) : null;
    let verdict = verdictLine(mine, answered, { ...context, gaps, localMtu: local });
    if (answered && !sawReply) verdict = 'answered (ping received the reply, but no hop of it was traced: events lost?)';
    const lastReply = mine.filter((e): e is HopEvent => e.kind === 'hop' && e.dir === 'reply').pop();
    if (!answered && lastReply && !mine.some((e) => e.kind === 'drop' || (e.kind === 'netfilter' && e.verdict !== 'ACCEPT')) && !programEnded(mine, context.programs)) {
      verdict = `no reply received by ping, though one was traced as far as ${lastReply.ifname} in namespace ${nsName(lastReply)} (${lastReply.hook})`;
    }
    outcomes.push({ seq, answered, verdict });
  }
  return outcomes;
}

/** The verdict over several probes: how many were answered, and each other one's fate (alike ones together). */
export function probesVerdict(outcomes: readonly ProbeOutcome[]): string {
  if (outcomes.length === 1) return outcomes[0].verdict;
  const answered = outcomes.filter((o) => o.answered).length;
  const n = outcomes.length;
  const lost = outcomes.filter((o) => !o.answered || o.verdict !== 'delivered and answered');
  if (lost.length === 0) return `delivered and answered (all ${n} probes)`;
  const byVerdict = new Map<string, number[]>();
  for (const o of lost) byVerdict.set(o.verdict, [...(byVerdict.get(o.verdict) ?? []), o.seq]);
  const head = answered === 0 ? `none of ${n} probes answered` : `${answered} of ${n} probes answered`;
  const fates = [...byVerdict].map(([verdict, seqs]) => `${seqs.length === 1 ? 'probe' : 'probes'} ${seqs.join(', ')}: ${verdict}`);
  return `${head}; ${fates.join('; ')}`;
}
