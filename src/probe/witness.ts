/**
 * A probe sent from another node, traced here: what an agent runs when a
 * coordinator's `tracepkt --node ... TARGET` asks (src/cluster/agent.ts).
 * The programs recognise the probe's packets as the sender's node does (the
 * ping's marker, a TCP/UDP probe's flow; in a tunnel, the packet inside),
 * and netfilter is followed in every namespace here. The events are held
 * until the trace ends: a probe's journey is judged whole (netfilter's
 * verdicts come from checkpoints and nftables traces together, route lookups
 * are classified against the hops) and sent at once, as the sender's node
 * makes its own (src/probe/run.ts).
 */
import type { FlowTuple } from '../bpf/config';
import type { KernelEvent, TraceEvent } from '../events';
import type { TraceSource } from '../cluster/agent';
import type { ProbeRequest } from '../cluster/messages';
import { requireTracingPrivileges } from '../privileges';
import { loadNative } from '../native';
import { NetnsResolver } from '../names/netns';
import { createTracer, type Tracer } from '../tracer';
import { journeyEvents, orientByPort, probeFilter } from './run';
import { gapSentence } from '../verdict';

/**
 * Kernel records a witness holds at most (hops, checkpoints, route lookups of the probe's packets: a
 * ping's are a few dozen per probe). Beyond, it stops tracing and says so: held until the end, they
 * would otherwise grow without bound for a probe that is not one.
 */
const WITNESS_RECORDS_MAX = 200_000;

/** The kernel filter for a probe as the coordinator describes it (checked by src/cluster/messages.ts). */
function filterOf(p: ProbeRequest) {
  const flow: FlowTuple | undefined = p.flow && { family: p.family, ...p.flow };
  return {
    filter: probeFilter({ marker: Buffer.from(p.marker, 'hex'), markerOffset: p.marker_offset, family: p.family, target: p.target, flow }),
    flow,
  };
}

export async function openProbeWitness(p: ProbeRequest): Promise<TraceSource> {
  requireTracingPrivileges();
  const { filter, flow } = filterOf(p);
  const resolver = new NetnsResolver();
  const tracer = await createTracer({
    filter,
    flow: flow && { proto: flow.proto === 6 ? 'tcp' : 'udp', port: flow.sport },
    netfilter: true,
    native: loadNative(),
    resolver,
  });
  return new ProbeWitness(tracer, flow);
}

class ProbeWitness implements TraceSource {
  private readonly kernel: KernelEvent[] = [];
  private readonly startNs = Number(process.hrtime.bigint());
  private judged: string[] = [];

  constructor(
    private readonly tracer: Tracer,
    private readonly flow?: FlowTuple,
  ) {}

  get notes(): readonly string[] {
    return this.tracer.notes;
  }

  async *batches(): AsyncGenerator<TraceEvent[]> {
    for await (const batch of this.tracer.batches()) {
      if (this.kernel.length + batch.length > WITNESS_RECORDS_MAX) {
        this.judged.push(`more than ${WITNESS_RECORDS_MAX} records of the probe here: tracing stopped there, later hops are missing`);
        this.tracer.close();
        break;
      }
      for (const e of batch) this.kernel.push(e);
    }
    // Closed: the journey as this node saw it, judged here where netfilter's traces are.
    if (this.flow) orientByPort(this.kernel, this.flow.sport);
    const { events, gaps } = await journeyEvents(this.tracer, this.kernel);
    if (this.flow) orientByPort(events, this.flow.sport);
    // Netfilter bands the probe entered here and did not leave, unexplained: said in words.
    for (const g of gaps) this.judged.push(gapSentence(g));
    for (const ns of this.tracer.netfilter?.namespaces ?? []) {
      const lost = ns.lost();
      if (lost > 0) this.judged.push(`${ns.netns.name ?? ns.netns.inode}: ${lost} nftables trace message(s) lost (socket buffer full)`);
    }
    if (events.length) yield events;
  }

  finalNotes(): string[] {
    return this.judged;
  }

  lost(): number {
    return this.tracer.lost();
  }

  lostInUserSpace(): number {
    return this.tracer.lostInUserSpace();
  }

  takeUserSpaceGaps(): [number, number][] {
    return this.tracer.takeUserSpaceGaps();
  }

  /** Nothing is sent before the end: the trace's start is as far as this node's events are in. */
  pendingSince(): number {
    return this.startNs;
  }

  close(): void {
    this.tracer.close();
  }
}
