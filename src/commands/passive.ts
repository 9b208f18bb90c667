/**
 * `tracepkt --filter EXPR` without a target: trace the traffic that already
 * flows, everywhere, as long as it matches EXPR (evaluated in the kernel:
 * the rest never reaches us). Prints each packet as it comes, numbered by
 * journey (flow); ends on Ctrl-C, or once --count journeys are complete.
 */
import { shown } from '../render/shown';
import type { KernelFilter } from '../bpf/config';
import { loadTracingObject } from '../bpf/tracing-object';
import { blameFilter, compilePcapFilter } from '../filter/pcap';
import { loadNative } from '../native';
import { requireTracingPrivileges } from '../privileges';
import type { Journey } from '../flows';
import type { Sightings, SightingLine } from '../sightings';
import { decodeBatch, exampleBatch } from '../decode';
import { NetnsResolver } from '../names/netns';
import type { KernelEvent } from '../events';
import { ansi, plain } from '../render/colour';
import type { Output } from './output';

export interface PassiveOptions {
  filter: string;
  /** Stop once this many journeys are complete; undefined: until interrupted. */
  count?: number;
  json: boolean;
  /** A journey is complete after this long without packets. */
  idleMs?: number;
  /** Only the summary. */
  quiet?: boolean;
  /** Colour the text output. */
  colour?: boolean;
  /** Ring buffer bytes (default: the tracer's); tests shrink it to make the kernel lose events. */
  ringBytes?: number;
}

/** Events run through the chain before the trace starts: enough for V8 to compile it optimised. */
const WARM_UP_EVENTS = 20_000;

function warmUp(sightings: Sightings): void {
  const events: KernelEvent[] = [];
  decodeBatch(exampleBatch(WARM_UP_EVENTS), (ev) => {
    ev.netns_name = 'warm-up';
    if (ev.kind === 'drop') {
      ev.reason = 'NO_SOCKET';
      ev.location = 'ping_rcv+0x0';
    }
    events.push(ev);
  });
  for (let i = 0; i < events.length; i += 1000) sightings.take(events.slice(i, i + 1000));
}

/** Why events were lost, in words: the kernel's ring buffer full, tracepkt's own queue full, or both. */
export function lossCauses(all: number, inUserSpace: number): string {
  if (inUserSpace === 0) return ' because the ring buffer was full';
  if (inUserSpace === all) return ' because tracepkt fell behind (its queue was full)';
  return `: ${all - inUserSpace} because the ring buffer was full, ${inUserSpace} because tracepkt fell behind (its queue was full)`;
}

/** How each sighting is written for these options: JSON Lines with the journey's number, a table row after it, or nothing (--quiet). */
export async function sightingLine(o: Pick<PassiveOptions, 'json' | 'quiet' | 'colour'>): Promise<SightingLine> {
  if (o.quiet) return null;
  if (o.json) {
    const { writeJsonLine } = await import('../render/json');
    return (ev, j, lines) => {
      ev.journey = j.id;
      writeJsonLine(ev, lines);
    };
  }
  const table = new (await import('../render/table')).TableRenderer(o.colour ? ansi : plain);
  return (ev, j, lines) => lines.add(`#${String(j.id).padEnd(6)} ${table.line(ev)}`);
}

async function tableHeader(o: Pick<PassiveOptions, 'colour'>): Promise<string> {
  return new (await import('../render/table')).TableRenderer(o.colour ? ansi : plain).header();
}

export async function passiveCommand(o: PassiveOptions, io: Output, signal?: AbortSignal): Promise<number> {
  const pcap = compilePcapFilter(loadNative(), o.filter, 'raw'); // before anything is attached
  requireTracingPrivileges();
  const filter: KernelFilter = { match: 'filter', pcap, marker: Buffer.alloc(8), markerOffset: 0, family: 0 };
  // Start-up: the kernel verifies the programs on a worker thread while the rest of the code loads.
  const preloaded = loadTracingObject({ filter, routes: false, ringBytes: o.ringBytes });
  preloaded.catch(() => {}); // its failure is reported by createTracer below
  const [{ Sightings }, { JSON_SCHEMA_VERSION, jsonLine }, { netnsLabel }, { createTracer }] =
    await Promise.all([import('../sightings'), import('../render/json'), import('../render/table'), import('../tracer')]);
  // While the kernel verifies the programs: the chain each event takes, run on made-up ones, so that a
  // flood from the first moment finds it compiled (interpreted, the first 100 ms of one overflowed the ring).
  warmUp(new Sightings(await sightingLine(o), o.idleMs ?? 1000));
  // The namespaces there are now, named before the first packet: a flood's first events would wait for the scan.
  const resolver = new NetnsResolver();
  void resolver.scanAsync().catch(() => undefined);
  const tracer = await createTracer({ filter, routes: false, preloaded, resolver }).catch(async (err) => {
    // A filter the verifier refuses is said as such: the same programs without it are loaded to know.
    throw await blameFilter(err, pcap, async () => (await loadTracingObject({ filter: { ...filter, pcap: undefined }, routes: false })).close());
  });
  const sightings = new Sightings(await sightingLine(o), o.idleMs ?? 1000);
  const journeys = sightings.journeys;
  let completed = 0;
  // Once stopped, the rest is drained without waiting for a slow reader (nor adding listeners to wait with).
  let stopped = false;
  let stopWaiting!: () => void;
  const stopping = new Promise<void>((resolve) => (stopWaiting = resolve));
  const stop = () => {
    stopped = true;
    tracer.close();
    stopWaiting();
  };
  signal?.addEventListener('abort', stop, { once: true });
  if (signal?.aborted) stop();

  if (o.json) io.out(jsonLine({ kind: 'start', schema: JSON_SCHEMA_VERSION, filter: o.filter, notes: tracer.notes }));
  else {
    io.err(shown(`tracing packets matching "${o.filter}" in every namespace; Ctrl-C to stop`));
    if (!o.quiet) io.out(`JOURNEY ${await tableHeader(o)}`);
  }
  // What start-up made and left (the warm-up's events and chain, libbpf's reading of the kernel's BTF
  // as V8 saw it, names read) collected once, before the first event: ~14 MB less resident for the
  // whole trace (bin/tracepkt runs Node with --expose-gc; elsewhere this is skipped).
  (globalThis as { gc?: () => void }).gc?.();
  // Lost events are never silent: the journeys open when the count grows are marked incomplete.
  // Kernel time (bpf_ktime_get_ns and hrtime are both CLOCK_MONOTONIC): losses are placed in it.
  const monoNs = () => Number(process.hrtime.bigint());
  let lost = 0;
  let lossCheckedNs = monoNs();
  const checkLosses = () => {
    const at = monoNs();
    const now = tracer.lost();
    if (now > lost) journeys.recordLoss(lossCheckedNs, at);
    // What tracepkt itself dropped while behind is placed by the records' own times, long before now.
    for (const [from, to] of tracer.takeUserSpaceGaps()) journeys.recordLoss(from, to);
    lost = now;
    lossCheckedNs = at;
  };
  const journeyRecord = (j: Journey) => ({
    journey: j.id,
    flow: j.label,
    packets: j.packets,
    namespaces: [...j.namespaces].map(([netns, name]) => ({ netns, netns_name: name })),
    complete: j.complete,
    incomplete: j.incomplete,
    dropped: j.dropped,
  });
  const journeyLine = (j: Journey) => {
    const gap = j.incomplete ? ' (incomplete: events were lost meanwhile)' : '';
    const dropped = j.dropped ? `; ${j.dropped}` : '';
    return `#${j.id} ${j.label}: ${j.packets} sighting(s) in ${[...j.namespaces].map(([n, name]) => netnsLabel(n, name)).join(', ')}${dropped}${gap}`;
  };
  // A complete journey is handed out at once and forgotten (all but the last few, for the summary).
  const timer = setInterval(() => {
    checkLosses();
    // Idle up to the oldest event still waiting in the tracer (for a name, say), or now.
    for (const j of journeys.completeIdle(tracer.pendingSince() ?? monoNs())) {
      completed++;
      if (o.quiet) continue;
      if (o.json) io.out(jsonLine({ kind: 'journey', schema: JSON_SCHEMA_VERSION, ...journeyRecord(j) }));
      else io.out(shown(`  ${journeyLine(j)}: complete`));
    }
    if (o.count !== undefined && completed >= o.count) stop();
  }, 100);
  try {
    for await (const batch of tracer.batches()) {
      const text = sightings.take(batch);
      if (!text) continue;
      io.write(text); // one write per batch
      // A reader behind (a slow pipe): wait for it rather than pile up output; meanwhile the tracer's
      // bounded queue fills, and what comes beyond it is counted lost.
      const behind = stopped ? undefined : io.backlogged?.();
      if (behind) await Promise.race([behind, stopping]);
    }
  } finally {
    clearInterval(timer);
    signal?.removeEventListener('abort', stop);
    tracer.close();
    checkLosses();
  }
  const all = journeys.all();
  const total = all.length + journeys.forgotten;
  if (o.json) {
    io.out(jsonLine({
      kind: 'summary',
      schema: JSON_SCHEMA_VERSION,
      filter: o.filter,
      journeys_total: total,
      journeys: all.map(journeyRecord),
      lost_events: tracer.lost(),
      lost_in_user_space: tracer.lostInUserSpace(),
    }));
  } else {
    io.out('');
    const older = journeys.forgotten ? `; the ${journeys.forgotten} oldest were listed as they completed, the rest follow` : '';
    io.out(`Summary: ${total} journey(s), ${sightings.count} packet sighting(s)${older}.`);
    for (const j of all) io.out(shown(`  ${journeyLine(j)}`));
    if (tracer.lost() > 0) io.out(`Warning: ${tracer.lost()} event(s) lost${lossCauses(tracer.lost(), tracer.lostInUserSpace())}.`);
  }
  return 0;
}
