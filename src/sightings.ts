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

/** What passive tracing shows: a packet seen, dropped, or waiting for its next hop's address. */
export type Sighting = HopEvent | DropEvent | NeighbourEvent;

/** How each sighting is written: a line of its own (JSON, the table), or not at all (--quiet). */
export type SightingLine = ((ev: Sighting, journey: Journey) => string) | null;

export class Sightings {
  readonly journeys: FlowJourneys;
  private readonly hops = new HopChain();
  /** Packet sightings counted (every event but those left out). */
  count = 0;
  private readonly text = new Utf8Lines();

  constructor(private readonly line: SightingLine, idleMs = 1000) {
    this.journeys = new FlowJourneys(idleMs);
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
      if (e.kind === 'checkpoint' || e.kind === 'route' || e.kind === 'xt-table' || e.kind === 'program-return') continue;
      const ev: Sighting = e;
      if (ev.kind === 'drop' && freedAfterDelivery(ev)) continue;
      const j = this.journeys.add(ev);
      this.count++;
      if (ev.kind === 'hop') this.hops.add(ev);
      else if (ev.kind === 'drop' && j.dropped === null) j.dropped = dropSentence(ev);
      if (lines) lines.add(this.line!(ev, j));
    }
    return lines?.end();
  }
}

/**
 * Lines encoded as they are made, into one buffer per batch. Joining a
 * batch's lines into one string first cost more than making them: under a
 * flood that string was flattened and encoded again on its way out (about
 * a third of user space in a profile). Each batch gets a buffer of its own
 * because a pipe is written after we return, from the buffer we hand it.
 */
const PER_LINE_MAX = 1024;

class Utf8Lines {
  private buf = Buffer.allocUnsafe(0);
  private at = 0;
  private count = 0;
  /**
   * Bytes per line of the last batch, and some, to size the next batch's buffer in one go; at most
   * PER_LINE_MAX, since a pipe holds the whole buffer while it writes the part used.
   */
  private perLine = 256;

  begin(events: number): this {
    this.buf = Buffer.allocUnsafe(Math.max(4096, events * this.perLine));
    this.at = 0;
    this.count = 0;
    return this;
  }

  add(line: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8; and the newline 1.
    if (this.buf.length - this.at < line.length * 3 + 1) this.grow(line.length * 3 + 1);
    this.at += this.buf.write(line, this.at);
    this.buf[this.at++] = 0x0a;
    this.count++;
  }

  end(): Buffer | undefined {
    if (this.count === 0) return undefined;
    this.perLine = Math.min(PER_LINE_MAX, Math.ceil((this.at / this.count) * 1.25));
    return this.buf.subarray(0, this.at);
  }

  private grow(need: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + need));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
}
