/** Sends the probe and traces it: the job behind `tracepkt TARGET`. */
import { TracepktError } from '../errors';
import type { TraceEvent } from '../events';
import type { NetnsResolver } from '../names/netns';
import type { Native } from '../native';
import { createTracer } from '../tracer';
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
  signal?: AbortSignal;
  native?: Native;
  resolver?: NetnsResolver;
}

export interface ProbeResult {
  /** ping's exit status: 0 a reply came, 1 none did. */
  status: number;
  events: TraceEvent[];
  /** Records the kernel dropped because the ring buffer was full. */
  lost: number;
  startupMs: number;
  aborted: boolean;
}

export async function runProbe(o: ProbeOptions, onEvent?: (ev: TraceEvent) => void): Promise<ProbeResult> {
  const marker = newMarker();
  const tracer = await createTracer({
    filter: { marker, markerOffset: MARKER_OFFSET, family: o.target.family },
    native: o.native,
    resolver: o.resolver,
  });
  const events: TraceEvent[] = [];
  const reading = (async () => {
    for await (const ev of tracer) {
      events.push(ev);
      onEvent?.(ev);
    }
  })();

  let aborted = false;
  let ping;
  try {
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
    return { status: aborted ? 1 : status, events, lost: tracer.lost(), startupMs: tracer.startupMs, aborted };
  } finally {
    ping?.child.kill('SIGKILL');
    tracer.close();
  }
}
