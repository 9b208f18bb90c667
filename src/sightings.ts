/**
 * Passive tracing's chain for each event, after decoding and naming: what
 * is no packet on the way is left out, the rest is numbered by journey
 * (src/flows.ts), compared with the packet's previous sighting (per-hop
 * latency, NAT, alterations: src/tidy.ts), a journey's first drop put in
 * words, and the event rendered by the command's line function. A batch
 * in, its lines out as UTF-8 bytes: the command writes them with one system
 * call, and the benchmark runs the very same chain on recorded batches.
 */
import type { DropEvent, HopEvent, KernelEvent, NeighbourEvent } from './events';
import { FlowJourneys, type Journey } from './flows';
import { freedAfterDelivery, HopChain } from './tidy';
import { dropSentence } from './verdict';
import { Utf8Lines } from './utf8-lines';

/** What passive tracing shows: a packet seen, dropped, or waiting for its next hop's address. */
export type Sighting = HopEvent | DropEvent | NeighbourEvent;

/** Whether passive tracing shows this event (an agent sends only these, too). */
export function isSighting(e: KernelEvent): e is Sighting {
  return e.kind === 'hop' || e.kind === 'drop' || e.kind === 'neighbour';
}

/** How each sighting is written: a line of its own into the batch's lines (JSON, the table), or not at all (--quiet). */
export type SightingLine = ((ev: Sighting, journey: Journey, lines: Utf8Lines) => void) | null;

export class Sightings {
  readonly journeys: FlowJourneys;
  private readonly hops = new HopChain();
  /** Packet sightings counted (every event but those left out). */
  count = 0;
  private readonly text = new Utf8Lines();

  /** `journeys`: shared with the chains of other nodes (tracing across nodes: one journey, each node's hops). */
  constructor(private readonly line: SightingLine, idleMs = 1000, journeys?: FlowJourneys) {
    this.journeys = journeys ?? new FlowJourneys(idleMs);
  }

  /**
   * The events of one batch, in time order: their lines (each ending in a
   * newline) as UTF-8, or undefined when there is nothing to write.
   */
  take(events: readonly KernelEvent[]): Buffer | undefined {
    const lines = this.line ? this.text.begin(events.length) : undefined;
    for (const e of events) {
      // Route lookups and program returns are not even loaded in passive tracing; checkpoints and
      // table verdicts are netfilter's, and passive tracing does not follow netfilter.
      if (!isSighting(e)) continue;
      const ev: Sighting = e;
      if (ev.kind === 'drop' && freedAfterDelivery(ev)) continue;
      const j = this.journeys.add(ev);
      this.count++;
      if (ev.kind === 'hop') this.hops.add(ev);
      else if (ev.kind === 'drop' && j.dropped === null) j.dropped = dropSentence(ev);
      if (lines) this.line!(ev, j, lines);
    }
    return lines?.end();
  }
}
