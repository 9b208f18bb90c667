/** Sends the probe and traces it: the job behind `tracepkt TARGET`. */
import { TracepktError } from '../errors';
import type { CheckpointEvent, HopEvent, KernelEvent, TraceEvent } from '../events';
import type { NetnsResolver } from '../names/netns';
import type { Native } from '../native';
import { fillRuleTexts } from '../netfilter/rule-text';
import { netfilterEvents } from '../netfilter/verdicts';
import { createTracer, type Tracer } from '../tracer';
import { MARKER_OFFSET, newMarker, startPing } from './ping';
import type { Target } from './target';

export interface ProbeOptions {
  target: Target;
  count: number;
  /** Seconds to wait for each reply. */
  timeout: number;
  /** Network namespace to send from: a path (bind mount or /proc/PID/ns/net). */
  fromPath?: string;
  ttl?: number;
  /** Trace netfilter verdicts too (default true). */
  netfilter?: boolean;
  signal?: AbortSignal;
  native?: Native;
  resolver?: NetnsResolver;
  /** Called once everything is attached, just before the probe is sent. */
  onReady?: (tracer: Tracer) => void;
}

export interface ProbeResult {
  /** ping's exit status: 0 a reply came, 1 none did. */
  status: number;
  /** Hops and netfilter verdicts, in kernel time order. */
  events: TraceEvent[];
  /** Records the kernel dropped because the ring buffer was full. */
  lost: number;
  /** What could not be traced, in words. */
  notes: string[];
  startupMs: number;
  aborted: boolean;
}

export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const marker = newMarker();
  const tracer = await createTracer({
    filter: { marker, markerOffset: MARKER_OFFSET, family: o.target.family },
    netfilter: o.netfilter ?? true,
    native: o.native,
    resolver: o.resolver,
  });
  const kernel: KernelEvent[] = [];
  const reading = (async () => {
    for await (const ev of tracer) kernel.push(ev);
  })();

  let aborted = false;
  let ping;
  try {
    o.onReady?.(tracer);
    ping = startPing({
      address: o.target.address,
      family: o.target.family,
      count: o.count,
      timeout: o.timeout,
      marker,
      netnsPath: o.fromPath,
      ttl: o.ttl,
    });
    const child = ping.child;
    const stop = () => {
      aborted = true;
      child.kill('SIGTERM');
    };
    // A signal may have come while we were loading: it still counts.
    if (o.signal?.aborted) stop();
    else o.signal?.addEventListener('abort', stop, { once: true });
    // ping bounds itself with -W; this only guards against one that hangs.
    const guard = setTimeout(stop, (o.count * 0.2 + o.timeout + 5) * 1000);
    const { status, stderr } = await ping.done;
    clearTimeout(guard);
    o.signal?.removeEventListener('abort', stop);
    tracer.close();
    await reading;
    if (!aborted && status !== 0 && status !== 1) {
      throw new TracepktError(`ping failed (exit status ${status}): ${stderr || 'no message'}`);
    }
    const notes = [...tracer.notes];
    for (const ns of tracer.netfilter?.namespaces ?? []) {
      if (ns.lostTraces > 0) notes.push(`${ns.netns.name ?? ns.netns.inode}: ${ns.lostTraces} nftables trace message(s) lost (socket buffer full)`);
    }
    return {
      status: aborted ? 1 : status,
      events: await journeyEvents(tracer, kernel),
      lost: tracer.lost(),
      notes,
      startupMs: tracer.startupMs,
      aborted,
    };
  } finally {
    ping?.child.kill('SIGKILL');
    tracer.close();
  }
}

/** Hops as the kernel saw them, and netfilter's verdicts made from checkpoints and nftables traces. */
async function journeyEvents(tracer: Tracer, kernel: readonly KernelEvent[]): Promise<TraceEvent[]> {
  const hops = kernel.filter((e): e is HopEvent => e.kind === 'hop');
  if (!tracer.netfilter) return hops;
  const checkpoints = kernel.filter((e): e is CheckpointEvent => e.kind === 'checkpoint');
  const namespaces = tracer.netfilter.namespaces.map((ns) => ({
    netns: ns.netns.inode,
    netnsName: ns.netns.name,
    judges: ns.judges,
    plans: ns.plans,
    traces: ns.traces,
  }));
  const verdicts = netfilterEvents(namespaces, checkpoints, hops);
  const paths = new Map(tracer.netfilter.namespaces.map((ns) => [ns.netns.inode, ns.netns.path]));
  await fillRuleTexts(verdicts, (netns) => paths.get(netns) ?? null);
  return [...hops, ...verdicts].sort((a, b) => a.time_ns - b.time_ns);
}
