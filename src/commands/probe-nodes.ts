/**
 * `tracepkt --node NAME=ADDR:PORT ... TARGET`: the probe traced on other
 * nodes too. Each node's agent witnesses it by what identifies its packets
 * (src/probe/witness.ts), attached before the probe leaves; once it is
 * answered or given up, each sends its part of the journey, judged there,
 * and the parts are stitched into one (src/cluster/stitch.ts). A node that
 * cannot be reached, refuses, fails or answers too late is said, and the
 * journey is shown without its part, marked as such.
 */
import { shown } from '../render/shown';
import type { TraceEvent } from '../events';
import { TRACE_LIMITS, type ProbeRequest } from '../cluster/messages';
import { RemoteViews, type NodesWanted } from '../cluster/coordinator';
import { stitch, type Stitched } from '../cluster/stitch';
import { boundAt } from '../cluster/clock';
import type { ProbeIdentity } from '../probe/run';
import type { Output } from './output';

/**
 * How long, once the probe is done, each node has to send its part: it judges its journey first
 * (nftables traces, rule texts read with nft), which takes seconds under emulation.
 */
export const WITNESS_WAIT_MS = 60_000;
/**
 * Events one node's part of a probe's journey may hold, per probe: a ping's is a dozen to a few
 * dozen on a node (more where netfilter has many chains); a node that sends more is cut off there,
 * and said. At least PROBE_PART_EVENTS_MIN for a run.
 */
export const PROBE_PART_EVENTS_PER_PROBE = 500;
export const PROBE_PART_EVENTS_MIN = 20_000;

/** Each node reached, as the start line and the summary say it. */
export type ReachedNode = ReturnType<RemoteViews['reached']>[number];

export interface AcrossNodes extends Stitched {
  /** This host's name in the journey. */
  local: string;
  nodes: ReachedNode[];
  /** A sentence per node whose view is missing in whole or in part. */
  missing: string[];
  /** Records lost on other nodes (their ring buffers full, or dropped on the way): their parts may lack hops. */
  lost: { node: string; events: number }[];
  /** What the other nodes found they could not see once their trace ended (prefixed with their name). */
  notes: string[];
  /** Nodes whose witness attached and saw no packet of the probe. */
  silent: string[];
}

export class ProbeNodes {
  private views: RemoteViews | undefined;
  private readonly parts = new Map<string, TraceEvent[]>();

  private constructor(
    private readonly wanted: NodesWanted,
    private readonly reaching: Promise<RemoteViews>,
    private readonly io: Output,
  ) {}

  /** Starts reaching the nodes (the local tracer loads meanwhile). */
  static reach(wanted: NodesWanted, io: Output): ProbeNodes {
    const reaching = RemoteViews.connect(wanted.nodes, wanted.credentials);
    reaching.catch(() => undefined); // connect() fails no view: it records why
    return new ProbeNodes(wanted, reaching, io);
  }

  get local(): string {
    return this.wanted.local;
  }

  /**
   * Asks every node reached to witness the probe (for at most `seconds`), and waits until each
   * attached, failed, or the run is interrupted.
   */
  async witness(id: ProbeIdentity, probes: number, seconds: number, signal?: AbortSignal): Promise<void> {
    const views = (this.views = await this.reaching);
    if (signal?.aborted) return; // interrupted while ours loaded: nothing asked of the nodes
    const probe: ProbeRequest = {
      marker: id.marker.toString('hex'),
      marker_offset: id.markerOffset,
      family: id.family,
      target: id.target,
      ...(id.flow ? { flow: { proto: id.flow.proto as 6 | 17, src: id.flow.src, dst: id.flow.dst, sport: id.flow.sport, dport: id.flow.dport } } : {}),
    };
    for (const v of views.views) if (v.state === 'failed') this.io.err(shown(`Warning: no view from node ${v.name}: ${v.why}`));
    views.start({ probe }, {
      events: (view, events) => {
        const part = this.parts.get(view.name) ?? this.parts.set(view.name, []).get(view.name)!;
        for (const e of events) part.push(e);
      },
      loss: () => undefined, // the agent's done counts what its node lost
      failed: (view, why) => this.io.err(shown(`Warning: the view from node ${view.name} ended: ${why}`)),
      lagging: () => undefined, // nothing waits on a witness's watermark: its part comes at the end
    }, { seconds, maxEvents: Math.min(TRACE_LIMITS.events, Math.max(PROBE_PART_EVENTS_MIN, probes * PROBE_PART_EVENTS_PER_PROBE)) });
    const waiting = setTimeout(() => {
      const slow = views.attaching();
      if (slow.length) this.io.err(shown(`waiting for node(s) ${slow.join(', ')} to attach...`));
    }, 1000);
    const interrupted = new Promise<void>((resolve) => {
      if (signal?.aborted) resolve();
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    try {
      await Promise.race([views.attached(), interrupted]);
    } finally {
      clearTimeout(waiting);
    }
  }

  /** Each node reached, for the start line. */
  reached(): ReachedNode[] {
    return this.views?.reached() ?? [];
  }

  missing(): string[] {
    return this.views?.missing() ?? [];
  }

  /** Asks each node for its part, waits for them (a Ctrl-C ends the wait: the parts in are shown), and stitches them to ours. */
  async finish(localEvents: readonly TraceEvent[], signal?: AbortSignal): Promise<AcrossNodes> {
    const views = this.views ?? (await this.reaching);
    const stopping = views.stop(WITNESS_WAIT_MS, `its part of the journey did not come within ${WITNESS_WAIT_MS / 1000} s`);
    const waiting = setTimeout(() => {
      const slow = views.ending();
      if (slow.length) this.io.err(shown(`waiting for node(s) ${slow.join(', ')} to send their part of the journey...`));
    }, 1000);
    const interrupt = () => void views.stop(0, 'interrupted before its part of the journey came');
    if (signal?.aborted) interrupt();
    signal?.addEventListener('abort', interrupt, { once: true });
    try {
      await stopping;
    } finally {
      clearTimeout(waiting);
      signal?.removeEventListener('abort', interrupt);
    }
    for (const e of localEvents) e.node = this.wanted.local;
    // Each node's clock bound, widened by the drift since it was measured (at the end of the probe: the most).
    const now = Number(process.hrtime.bigint());
    const uncertainty = new Map<string, number>();
    for (const v of views.views) if (v.remote) uncertainty.set(v.name, boundAt(v.remote.offset, v.remote.measuredAtNs, now));
    const all = [...localEvents, ...[...this.parts.values()].flat()];
    const stitched = stitch(all, uncertainty, this.wanted.local);
    const lost: AcrossNodes['lost'] = [];
    const notes: string[] = [];
    const silent = views.views.filter((v) => v.state === 'done' && !this.parts.get(v.name)?.length).map((v) => v.name);
    for (const v of views.views) {
      const n = (v.done?.lost_events ?? 0) + (v.done?.lost_in_transit ?? 0);
      if (n > 0) lost.push({ node: v.name, events: n });
      for (const note of v.done?.notes ?? []) notes.push(`node ${v.name}: ${note}`); // what it said when attaching is in nodes[].notes
    }
    return { ...stitched, local: this.wanted.local, nodes: views.reached(), missing: views.missing(), lost, notes, silent };
  }

  /** Ends every view at once (an error before the probe was sent). */
  async abandon(): Promise<void> {
    const views = this.views ?? (await this.reaching.catch(() => undefined));
    await views?.stop(0);
  }
}
