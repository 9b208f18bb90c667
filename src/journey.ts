/**
 * Groups a probe's events into what a person asks of them: which way did
 * the request go, which way did the reply come back, which namespaces were
 * crossed, and where was the packet last seen.
 */
import type { Direction, HopEvent, NetfilterEvent, PacketFields, TraceEvent, TunnelInfo } from './events';
import { isIcmp } from './ip';

/**
 * Which probe a packet belongs to: ping numbers its echoes, and an ICMP
 * error about one quotes its number; a TCP or UDP probe is its run's only
 * one, probe 1.
 */
export function probeSeq(e: Pick<PacketFields, 'proto' | 'icmp_seq'>): number {
  return isIcmp(e.proto) ? e.icmp_seq : 1;
}

export interface PathStep {
  netns: number;
  netnsName: string | null;
  /** The node it is on, in a journey across nodes. */
  node?: string;
  ifname: string;
  /** The tunnel the probe travels in there (an overlay's underlay); null elsewhere. */
  tunnel: TunnelInfo | null;
}

export interface JourneySummary {
  /** Namespaces in the order the probe first reached them. */
  namespaces: { netns: number; name: string | null; node?: string }[];
  /** Interfaces crossed by the first probe's request and by its reply. */
  request: PathStep[];
  reply: PathStep[];
  requestsSeen: number;
  repliesSeen: number;
  /** The last hop seen: where a probe without reply was last. */
  last: HopEvent | null;
  /** The first netfilter verdict that did not let the probe through. */
  stoppedBy: NetfilterEvent | null;
}

function hops(events: readonly TraceEvent[]): HopEvent[] {
  return events.filter((e): e is HopEvent => e.kind === 'hop');
}

/** Interfaces a packet went through, each once however many hooks saw it there. */
export function pathOf(events: readonly HopEvent[], dir: Direction, seq: number): PathStep[] {
  const steps: PathStep[] = [];
  for (const e of events) {
    if (e.dir !== dir || probeSeq(e) !== seq) continue;
    const prev = steps[steps.length - 1];
    if (prev && prev.netns === e.netns && prev.node === e.node && prev.ifname === e.ifname) continue;
    steps.push({ netns: e.netns, netnsName: e.netns_name, ...(e.node === undefined ? {} : { node: e.node }), ifname: e.ifname, tunnel: e.tunnel });
  }
  return steps;
}

/**
 * `ordered`: the events are in the journey's order already (across nodes: the order of cause,
 * src/cluster/stitch.ts), not to be sorted by time.
 */
export function summarize(events: readonly TraceEvent[], ordered = false): JourneySummary {
  const all = ordered ? hops(events) : hops(events).slice().sort((a, b) => a.time_ns - b.time_ns);
  const namespaces: JourneySummary['namespaces'] = [];
  for (const e of all) {
    if (!namespaces.some((n) => n.netns === e.netns && n.node === e.node)) namespaces.push({ netns: e.netns, name: e.netns_name, ...(e.node === undefined ? {} : { node: e.node }) });
  }
  const firstSeq = all.length ? Math.min(...all.map(probeSeq)) : 0;
  // The first exchange: TCP sends several packets each way (SYN, ACK, RST): the path is the first's.
  // Positions in the journey's order (time order, or across nodes the order of cause).
  const at = new Map(all.map((e, i) => [e, i]));
  const firstReply = all.find((e) => e.dir === 'reply' && probeSeq(e) === firstSeq);
  const nextRequest = firstReply && all.find((e) => e.dir === 'request' && at.get(e)! > at.get(firstReply)! && probeSeq(e) === firstSeq);
  const exchange = all.filter((e) =>
    e.dir === 'request' ? !firstReply || at.get(e)! < at.get(firstReply)! : !nextRequest || at.get(e)! < at.get(nextRequest)!,
  );
  const distinct = (dir: Direction) => new Set(all.filter((e) => e.dir === dir).map(probeSeq)).size;
  return {
    namespaces,
    request: pathOf(exchange, 'request', firstSeq),
    reply: pathOf(exchange, 'reply', firstSeq),
    requestsSeen: distinct('request'),
    repliesSeen: distinct('reply'),
    last: all.length ? all[all.length - 1] : null,
    stoppedBy:
      events
        .filter((e): e is NetfilterEvent => e.kind === 'netfilter' && e.verdict !== 'ACCEPT')
        .sort((a, b) => (ordered ? 0 : a.time_ns - b.time_ns))[0] ?? null,
  };
}
