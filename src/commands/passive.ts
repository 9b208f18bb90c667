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
import type { Sighting, Sightings, SightingLine } from '../sightings';
import { decodeBatch, exampleBatch } from '../decode';
import { NetnsResolver } from '../names/netns';
import type { KernelEvent } from '../events';
import { ansi, plain } from '../render/colour';
import type { Output } from './output';
import type { Tracer } from '../tracer';
import type { NodeAddress } from '../cluster/remote';
import type { CredentialFiles } from '../cluster/credential-files';
import type { NodesWanted, NodeView, RemoteViews } from '../cluster/coordinator';
import { journeyNamespaces } from '../flows';

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
  /** Trace these nodes too, through their agents (src/cluster), with the token in tokenFile. */
  nodes?: NodeAddress[];
  /** How to prove ourselves to them: the token, or certificates. */
  credentials?: CredentialFiles;
}

/** Other nodes' events held at most while waiting for the start line (the rest dropped, counted and placed). */
const EARLY_MAX = 100_000;

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

/**
 * The passive tracer for a pcap filter expression, attached: what `--filter` runs here and an agent
 * runs for a coordinator. `meanwhile` runs while the kernel verifies the programs.
 */
export async function openPassiveTracer(expression: string, o: { ringBytes?: number; meanwhile?: () => Promise<void> } = {}): Promise<Tracer> {
  const pcap = compilePcapFilter(loadNative(), expression, 'raw'); // before anything is attached
  requireTracingPrivileges();
  const filter: KernelFilter = { match: 'filter', pcap, marker: Buffer.alloc(8), markerOffset: 0, family: 0 };
  // Start-up: the kernel verifies the programs on a worker thread while the rest of the code loads.
  const preloaded = loadTracingObject({ filter, routes: false, ringBytes: o.ringBytes });
  preloaded.catch(() => {}); // its failure is reported by createTracer below
  const { createTracer } = await import('../tracer');
  await o.meanwhile?.();
  // The namespaces there are now, named before the first packet: a flood's first events would wait for the scan.
  const resolver = new NetnsResolver();
  void resolver.scanAsync().catch(() => undefined);
  return createTracer({ filter, routes: false, preloaded, resolver }).catch(async (err) => {
    // A filter the verifier refuses is said as such: the same programs without it are loaded to know.
    throw await blameFilter(err, pcap, async () => (await loadTracingObject({ filter: { ...filter, pcap: undefined }, routes: false })).close());
  });
}

/** What --node needs, checked before anything is attached. */
async function nodesWanted(o: PassiveOptions): Promise<NodesWanted | undefined> {
  if (!o.nodes?.length) return undefined;
  return (await import('../cluster/coordinator')).nodesWanted(o.nodes, o.credentials!);
}

/** Reaches the other nodes (while the local tracer loads). */
async function reachNodes(wanted: NodesWanted | undefined): Promise<{ views: RemoteViews; local: string } | undefined> {
  if (!wanted) return undefined;
  const { RemoteViews } = await import('../cluster/coordinator');
  return { views: await RemoteViews.connect(wanted.nodes, wanted.credentials), local: wanted.local };
}

export async function passiveCommand(o: PassiveOptions, io: Output, signal?: AbortSignal): Promise<number> {
  const [{ Sightings }, { JSON_SCHEMA_VERSION, jsonLine }, { netnsLabel }] = await Promise.all([import('../sightings'), import('../render/json'), import('../render/table')]);
  // The other nodes are reached while the kernel verifies our programs.
  const reaching = reachNodes(await nodesWanted(o));
  reaching.catch(() => undefined); // said below, after the local tracer's own errors
  // While the kernel verifies the programs: the chain each event takes, run on made-up ones, so that a
  // flood from the first moment finds it compiled (interpreted, the first 100 ms of one overflowed the ring).
  let tracer: Tracer;
  try {
    tracer = await openPassiveTracer(o.filter, { ringBytes: o.ringBytes, meanwhile: async () => warmUp(new Sightings(await sightingLine(o), o.idleMs ?? 1000)) });
  } catch (err) {
    void reaching.then((r) => r?.views.stop(), () => undefined);
    throw err;
  }
  let cluster: Awaited<typeof reaching>;
  try {
    cluster = await reaching;
  } catch (err) {
    tracer.close();
    throw err;
  }
  const sightingLineNow = await sightingLine(o);
  const sightings = new Sightings(sightingLineNow, o.idleMs ?? 1000);
  const journeys = sightings.journeys;
  /** Each other node's chain: its own hop chain (sk_buffs are each host's), the journeys shared. */
  const nodeSightings = new Map<NodeView, InstanceType<typeof Sightings>>();
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

  const views = cluster?.views;
  // The other nodes' traces attach while ours is: the start line says when all are (or which are not).
  // Events that come before it (a node attached, another still verifying) wait, up to EARLY_MAX.
  let early: (() => void)[] | undefined = [];
  let earlyEvents = 0;
  if (!stopped) views?.start({ filter: o.filter }, {
    events: (view, events) => {
      // Our own reader behind (a slow pipe): another node's events are dropped here, counted and
      // placed, rather than queued without bound (ours wait in the tracer's bounded queue meanwhile).
      if (early ? earlyEvents + events.length > EARLY_MAX : io.backlogged?.()) {
        view.lostHere += events.length;
        journeys.recordLoss(events[0].time_ns, events[events.length - 1].time_ns);
        return;
      }
      if (early) earlyEvents += events.length;
      const take = () => {
        let chain = nodeSightings.get(view);
        if (!chain) nodeSightings.set(view, (chain = new Sightings(sightingLineNow, o.idleMs ?? 1000, journeys)));
        const text = chain.take(events as Sighting[]); // a passive trace's events are checked as sightings (src/cluster/remote.ts)
        if (text) io.write(text);
      };
      // Events that come before the start line is out wait for it.
      if (early) early.push(take);
      else take();
    },
    loss: (_view, fromNs, toNs) => journeys.recordLoss(fromNs, toNs),
    failed: (view, why) => {
      io.err(shown(`Warning: the view from node ${view.name} ended: ${why}`));
      // Whatever journey is open now or comes later may lack that node's part.
      journeys.recordLoss(view.uptoNs, Number.MAX_SAFE_INTEGER);
    },
    lagging: (view) => io.err(shown(`Warning: node ${view.name}'s events are more than 5 s behind: journeys meanwhile are marked incomplete`)),
  });
  if (views) {
    // Said if it takes a while: another kernel may take seconds to verify the programs.
    const patience = setTimeout(() => {
      const waiting = views.attaching();
      if (waiting.length) io.err(shown(`waiting for node(s) ${waiting.join(', ')} to attach (Ctrl-C to stop)`));
    }, 1000);
    await Promise.race([views.attached(), stopping]);
    clearTimeout(patience);
  }
  // A node asked for and not seen from at all: every journey may lack its part.
  if (views?.views.some((v) => v.state === 'failed' && v.events === 0)) journeys.recordLoss(0, Number.MAX_SAFE_INTEGER);
  if (o.json) {
    const nodes = cluster ? { node: cluster.local, nodes: views!.reached(), missing: views!.missing() } : {};
    io.out(jsonLine({ kind: 'start', schema: JSON_SCHEMA_VERSION, filter: o.filter, notes: tracer.notes, ...nodes }));
  } else {
    const where = cluster ? `on ${[cluster.local, ...views!.reached().map((n) => n.node)].join(', ')}` : 'in every namespace';
    io.err(shown(`tracing packets matching "${o.filter}" ${where}; Ctrl-C to stop`));
    for (const n of views?.reached() ?? []) {
      io.err(shown(`  node ${n.node} (${n.address}, Linux ${n.kernel}): clock ${n.clock} from ${cluster!.local}'s`));
      for (const note of n.notes) io.err(shown(`    ${note}`));
    }
    for (const line of views?.missing() ?? []) io.err(shown(`Warning: ${line}`));
    if (!o.quiet) io.out(`JOURNEY ${await tableHeader(o)}`);
  }
  for (const take of early) take();
  early = undefined;
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
    namespaces: journeyNamespaces(j).map(({ node, netns, name }) => (node === undefined ? { netns, netns_name: name } : { node, netns, netns_name: name })),
    complete: j.complete,
    incomplete: j.incomplete,
    dropped: j.dropped,
  });
  const journeyLine = (j: Journey) => {
    const cause = views?.missing().length ? 'events were lost meanwhile, or a node\'s view is missing' : 'events were lost meanwhile';
    const gap = j.incomplete ? ` (incomplete: ${cause})` : '';
    const dropped = j.dropped ? `; ${j.dropped}` : '';
    const where = journeyNamespaces(j).map(({ node, netns, name }) => netnsLabel(netns, name, node));
    return `#${j.id} ${j.label}: ${j.packets} sighting(s) in ${where.join(', ')}${dropped}${gap}`;
  };
  // A complete journey is handed out at once and forgotten (all but the last few, for the summary).
  const timer = setInterval(() => {
    checkLosses();
    // Idle up to the oldest event still waiting in the tracer (for a name, say), or now; and up to
    // where every other node's events are in.
    const localNs = tracer.pendingSince() ?? monoNs();
    for (const j of journeys.completeIdle(views ? views.watermark(localNs) : localNs)) {
      completed++;
      if (o.quiet) continue;
      if (o.json) io.out(jsonLine({ kind: 'journey', schema: JSON_SCHEMA_VERSION, ...journeyRecord(j) }));
      else io.out(shown(`  ${journeyLine(j)}: complete`));
    }
    if (o.count !== undefined && completed >= o.count) stop();
  }, 100);
  try {
    for await (const batch of tracer.batches()) {
      if (cluster) for (const e of batch) e.node = cluster.local;
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
    await views?.stop();
  }
  const sighted = sightings.count + [...nodeSightings.values()].reduce((n, s) => n + s.count, 0);
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
      ...(views ? { nodes: nodeSummaries(views), missing: views.missing() } : {}),
    }));
  } else {
    io.out('');
    const older = journeys.forgotten ? `; the ${journeys.forgotten} oldest were listed as they completed, the rest follow` : '';
    io.out(`Summary: ${total} journey(s), ${sighted} packet sighting(s)${older}.`);
    for (const j of all) io.out(shown(`  ${journeyLine(j)}`));
    const on = cluster ? ` on ${cluster.local}` : '';
    if (tracer.lost() > 0) io.out(shown(`Warning: ${tracer.lost()} event(s) lost${on}${lossCauses(tracer.lost(), tracer.lostInUserSpace())}.`));
    for (const n of views ? nodeSummaries(views) : []) {
      const all = n.lost_events + n.lost_in_transit + n.lost_behind_output;
      const slow = n.lost_in_transit + n.lost_behind_output;
      if (all > 0) io.out(shown(`Warning: ${all} event(s) of node ${n.node} lost${slow ? ` (${slow} because this coordinator or its output did not take them fast enough)` : ''}.`));
    }
    for (const line of views?.missing() ?? []) io.out(shown(`Warning: ${line}.`));
  }
  return 0;
}

/** What the summary says of each node reached: who it is, what it saw and lost. */
function nodeSummaries(views: RemoteViews) {
  return views.views
    .filter((v) => v.remote)
    .map((v) => ({
      node: v.name,
      events: v.events,
      lost_events: v.done?.lost_events ?? 0,
      lost_in_user_space: v.done?.lost_in_user_space ?? 0,
      lost_in_transit: v.done?.lost_in_transit ?? 0,
      lost_behind_output: v.lostHere,
      view: v.why === null ? 'whole' : v.events > 0 ? 'partial' : 'none',
    }));
}
