/** Sends the probe and traces it: the job behind `tracepkt TARGET`. */
import { execFileSync } from 'node:child_process';
import { inNetns } from '../names/netns-path';
import { TracepktError } from '../errors';
import type { CheckpointEvent, DropEvent, HopEvent, KernelEvent, RouteEvent, TraceEvent, TableVerdictEvent } from '../events';
import { classifyRoutes } from '../kernel/names';
import { markHops, tidy } from '../tidy';
import type { NetnsResolver } from '../names/netns';
import type { Native } from '../native';
import { fillRuleTexts } from '../netfilter/rule-text';
import { netfilterEvents } from '../netfilter/verdicts';
import { createTracer, type Tracer } from '../tracer';
import { gatedCommand, launchCommand, MARKER_OFFSET, newMarker, startGated } from './ping';
import type { KernelFilter } from '../bpf/config';
import { compileFilter } from '../filter/compile';
import { parseFilter } from '../filter/parse';
import * as path from 'node:path';
import { randomInt } from '../random';
import type { Target } from './target';

export interface ProbeOptions {
  target: Target;
  /** A TCP connection attempt or a UDP datagram to this port, instead of ICMP echo. */
  service?: { proto: 'tcp' | 'udp'; port: number };
  count: number;
  /** Seconds to wait for each reply. */
  timeout: number;
  /** Network namespace to send from: a path (bind mount or /proc/PID/ns/net). */
  fromPath?: string;
  ttl?: number;
  /** ICMP payload bytes (ping -s). */
  size?: number;
  /** Capture this many bytes of each sighted packet (for pcapng); 0 or absent: none. */
  snapLen?: number;
  /** Trace netfilter verdicts too (default true). */
  netfilter?: boolean;
  signal?: AbortSignal;
  native?: Native;
  resolver?: NetnsResolver;
  /** Called once everything is attached, just before the probe is sent. */
  onReady?: (tracer: Tracer) => void;
}

/** A TCP/UDP probe's packets go from its source port; the answers come back to it. */
function orientByPort(events: (KernelEvent | TraceEvent)[], sourcePort: number): void {
  for (const e of events) {
    if (e.kind !== 'route' && e.dir !== 'error') {
      e.dir = e.dport === sourcePort && e.sport !== sourcePort ? 'reply' : 'request';
    }
  }
}

/** A namespace's path for tools to enter: our own one needs none. */
function netnsPathOf(tracer: Tracer, netns: number, fromPath: string | undefined): string | null | undefined {
  const known = tracer.netfilter?.namespaces.find((ns) => ns.netns.inode === netns);
  if (known) return known.netns.path;
  return fromPath; // without netfilter tracing, the sender's namespace is the one we know
}

/**
 * Interfaces that are down in each namespace where a route lookup failed:
 * a down link takes its routes with it, and "no route" alone would hide why.
 */
function interfacesDownWhereRoutingFailed(events: readonly TraceEvent[], pathOf: (netns: number) => string | null | undefined): Map<number, string[]> {
  const down = new Map<number, string[]>();
  for (const e of events) {
    if (e.kind !== 'route' || e.error === null || down.has(e.netns)) continue;
    const path = pathOf(e.netns);
    if (path === undefined) continue;
    const cmd = inNetns(path, ['ip', '-o', 'link', 'show']);
    try {
      const out = execFileSync(cmd[0], cmd.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      down.set(e.netns, out.split('\n').flatMap((l) => {
        const m = /^\d+: ([^:@]+)[^<]*<([^>]*)>/.exec(l);
        return m && !m[2].split(',').includes('UP') && m[1] !== 'lo' ? [m[1]] : [];
      }));
    } catch {
      // the namespace is gone
    }
  }
  return down;
}

export interface ProbeResult {
  /** ping's exit status: 0 a reply came, 1 none did. */
  status: number;
  /** Hops, route lookups, drops and netfilter verdicts, in kernel time order. */
  events: TraceEvent[];
  /** Interfaces that are down, in the namespaces where a route lookup failed. */
  down: Map<number, string[]>;
  /** Records the kernel dropped because the ring buffer was full. */
  lost: number;
  /** What could not be traced, in words. */
  notes: string[];
  startupMs: number;
  aborted: boolean;
}

/** Source ports for TCP/UDP probes: below Linux's ephemeral range, so not one the kernel hands out. */
const PROBE_PORTS = [20000, 32767];

/** The kernel side of a probe: how its packets are recognised. */
function probeFilter(o: ProbeOptions, marker: Buffer, sourcePort: number): KernelFilter {
  const base = { marker, markerOffset: MARKER_OFFSET, family: o.target.family, target: o.target.address, snapLen: o.snapLen };
  if (!o.service) return base;
  return { ...base, match: 'filter', program: compileFilter(parseFilter(`${o.service.proto} and port ${sourcePort}`)) };
}

/** The probe's command: ping, or the TCP/UDP sender (src/probe/send.ts). */
function probeCommand(o: ProbeOptions, marker: Buffer, sourcePort: number): string[] {
  if (!o.service) {
    return launchCommand({ address: o.target.address, family: o.target.family, count: o.count, timeout: o.timeout, marker, netnsPath: o.fromPath, ttl: o.ttl, size: o.size });
  }
  const sender = [process.execPath, path.join(__dirname, 'send.js'), o.service.proto, o.target.address, String(o.service.port), String(sourcePort), String(o.timeout)];
  return gatedCommand(sender, o.fromPath);
}

export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const marker = newMarker();
  const sourcePort = PROBE_PORTS[0] + randomInt(PROBE_PORTS[1] - PROBE_PORTS[0]);
  const tracer = await createTracer({
    filter: probeFilter(o, marker, sourcePort),
    flow: o.service && { proto: o.service.proto, port: sourcePort },
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
    ping = startGated(probeCommand(o, marker, sourcePort), (pid) => tracer.addSender(pid));
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
    const { status, stdout, stderr } = await ping.done;
    clearTimeout(guard);
    o.signal?.removeEventListener('abort', stop);
    tracer.close();
    await reading;
    // ping gives up (exit 2) when the kernel refuses to send: no route from here. That is the
    // journey's answer, not tracepkt's failure; the route lookup event says where and why.
    const refused = !o.service && status === 2 && /unreachable|no route/i.test(stderr);
    if (!aborted && status !== 0 && status !== 1 && !refused) {
      const who = o.service ? `the ${o.service.proto.toUpperCase()} probe` : 'ping';
      throw new TracepktError(`${who} failed (exit status ${status}): ${stdout || stderr || 'no message'}`);
    }
    const notes = [...tracer.notes];
    if (refused) notes.push(`ping: ${stderr.split('\n')[0]}`);
    for (const ns of tracer.netfilter?.namespaces ?? []) {
      if (ns.lostTraces > 0) notes.push(`${ns.netns.name ?? ns.netns.inode}: ${ns.lostTraces} nftables trace message(s) lost (socket buffer full)`);
    }
    if (o.service) orientByPort(kernel, sourcePort);
    const events = await journeyEvents(tracer, kernel);
    if (o.service) orientByPort(events, sourcePort);
    if (o.service && stdout) notes.push(`${o.service.proto.toUpperCase()} probe: ${stdout}`);
    return {
      status: aborted || refused ? 1 : status,
      events,
      down: interfacesDownWhereRoutingFailed(events, (netns) => netnsPathOf(tracer, netns, o.fromPath)),
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

/**
 * Hops, drops and route lookups as the kernel saw them, and netfilter's
 * verdicts made from checkpoints and nftables traces, in kernel time order.
 */
async function journeyEvents(tracer: Tracer, kernel: readonly KernelEvent[]): Promise<TraceEvent[]> {
  const hops = kernel.filter((e): e is HopEvent => e.kind === 'hop');
  const routes = kernel.filter((e): e is RouteEvent => e.kind === 'route');
  classifyRoutes(routes, hops);
  const direct = tidy([...hops, ...routes, ...kernel.filter((e): e is DropEvent => e.kind === 'drop')]);
  markHops(direct);
  if (!tracer.netfilter) return direct.sort((a, b) => a.time_ns - b.time_ns);
  const checkpoints = kernel.filter((e): e is CheckpointEvent => e.kind === 'checkpoint');
  const namespaces = tracer.netfilter.namespaces.map((ns) => ({
    netns: ns.netns.inode,
    netnsName: ns.netns.name,
    judges: ns.judges,
    plans: ns.plans,
    traces: ns.traces,
  }));
  const tables = kernel.filter((e): e is TableVerdictEvent => e.kind === 'xt-table');
  const verdicts = netfilterEvents(namespaces, checkpoints, direct, tables);
  const paths = new Map(tracer.netfilter.namespaces.map((ns) => [ns.netns.inode, ns.netns.path]));
  await fillRuleTexts(verdicts, (netns) => paths.get(netns) ?? null);
  return [...direct, ...verdicts].sort((a, b) => a.time_ns - b.time_ns);
}
