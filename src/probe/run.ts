/** Sends the probe and traces it: the job behind `tracepkt TARGET`. */
import { execFileSync } from 'node:child_process';
import { inNetns } from '../names/netns-path';
import { TracepktError } from '../errors';
import type { BpfProgramOnPath, CheckpointEvent, DropEvent, HopEvent, KernelEvent, NeighbourEvent, ProgramReturnEvent, RouteEvent, TraceEvent, TableVerdictEvent } from '../events';
import { systemKallsyms } from '../kernel/names';
import { programsOnPath } from '../kernel/attached-programs';
import { tieReturns, type ProgramTarget } from '../kernel/program-returns';
import { classifyRoutes } from '../kernel/route-purpose';
import { markHops, tidy } from '../tidy';
import type { NetnsResolver } from '../names/netns';
import type { Native } from '../native';
import { fillRuleTexts } from '../netfilter/rule-text';
import { netfilterFindings, type NetfilterGap } from '../netfilter/verdicts';
import { createTracer, type Tracer } from '../tracer';
import { gatedCommand, launchCommand, MARKER_OFFSET, newMarker, parsePingOutput, spawnGated, type GatedProbe, type PingReport } from './ping';
import type { FlowTuple, KernelFilter } from '../bpf/config';
import type { TunnelMtu } from '../verdict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadNative } from '../native';
import { probeFlow } from './flow';
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
  /**
   * Awaited after onReady, before the probe is sent, with what identifies its packets: tracing
   * across nodes starts the other nodes' witnesses of it there (src/probe/witness.ts).
   */
  beforeSend?: (identity: ProbeIdentity) => Promise<void>;
}

/** What identifies a probe's packets wherever they are seen: its marker, and a TCP/UDP probe's flow. */
export interface ProbeIdentity {
  marker: Buffer;
  markerOffset: number;
  family: 4 | 6;
  target: string;
  flow: FlowTuple | undefined;
}

/** A TCP/UDP probe's packets go from its source port; the answers come back to it. */
export function orientByPort(events: (KernelEvent | TraceEvent)[], sourcePort: number): void {
  for (const e of events) {
    if (e.kind !== 'route' && e.dir !== 'error') {
      e.dir = e.dport === sourcePort && e.sport !== sourcePort ? 'reply' : 'request';
    }
  }
}

/**
 * The devices tunnel modules create, down, in every namespace (ip_gre, ip6_tunnel, ipip, sit...):
 * they carry no route, and would bury the down interface that matters.
 */
const FALLBACK_TUNNELS = /^(gre0|gretap0|erspan0|ip6gre0|ip6erspan0|ip6tnl0|tunl0|sit0|ip_vti0|ip6_vti0)$/;

/** A namespace's path for tools to enter (null: our own, which needs none); undefined where unknown. */
function netnsPathOf(tracer: Tracer, netns: number, fromPath: string | undefined): string | null | undefined {
  const known = tracer.netfilter?.namespaces.find((ns) => ns.netns.inode === netns);
  if (known) return known.netns.path;
  // Without netfilter tracing, the namespaces known are the sender's and our own.
  const inode = (p: string) => {
    try {
      return fs.statSync(p).ino;
    } catch {
      return -1;
    }
  };
  if (fromPath !== undefined && inode(fromPath) === netns) return fromPath;
  return inode('/proc/self/ns/net') === netns ? null : undefined;
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
        return m && !m[2].split(',').includes('UP') && m[1] !== 'lo' && !FALLBACK_TUNNELS.test(m[1]) ? [m[1]] : [];
      }));
    } catch {
      // the namespace is gone
    }
  }
  return down;
}

/** The MTU of the device the sender's own route lookup chose, read in the sender's namespace. */
function deviceMtu(events: readonly TraceEvent[], fromPath: string | undefined): number | null {
  const out = events.find((e): e is RouteEvent => e.kind === 'route' && e.skb === '0' && e.oif !== null);
  if (!out?.oif) return null;
  const cmd = inNetns(fromPath, ['ip', '-j', 'link', 'show', 'dev', out.oif]);
  try {
    const [link] = JSON.parse(execFileSync(cmd[0], cmd.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { mtu?: number }[];
    return link?.mtu ?? null;
  } catch {
    return null;
  }
}

/** Tunnel device kinds (ip -d link's info_kind) whose MTU is the lower link's less their headers. */
const TUNNEL_KINDS = new Set(['vxlan', 'geneve', 'gre', 'gretap', 'ip6gre', 'ip6gretap', 'ipip', 'sit', 'ip6tnl', 'wireguard']);

/**
 * Where an ICMP "fragmentation needed" / "packet too big" came from a tunnel
 * device (the probe fits the device's MTU, not the path its outer packet
 * takes): the device, its kind and MTU, and the link beneath it, read in
 * that namespace. Null where the error was not about a tunnel.
 */
function tunnelTooSmall(events: readonly TraceEvent[], pathOf: (netns: number) => string | null | undefined): TunnelMtu | null {
  const error = events.find((e): e is HopEvent => e.kind === 'hop' && e.dir === 'error' && e.mtu !== null);
  if (!error) return null;
  // The same probe's last transmit in the error's namespace, before the error: the device it entered.
  const into = events.filter((e): e is HopEvent => e.kind === 'hop' && e.dir === 'request' && e.icmp_seq === error.icmp_seq && e.netns === error.netns && e.hook === 'net_dev_queue' && e.time_ns <= error.time_ns && !e.tunnel).pop();
  const path = into ? pathOf(into.netns) : undefined;
  if (!into || path === undefined) return null;
  const link = (dev: string) => {
    const cmd = inNetns(path, ['ip', '-d', '-j', 'link', 'show', 'dev', dev]);
    try {
      return (JSON.parse(execFileSync(cmd[0], cmd.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 })) as { mtu?: number; linkinfo?: { info_kind?: string; info_data?: { link?: string } } }[])[0];
    } catch {
      return undefined;
    }
  };
  const dev = link(into.ifname);
  const kind = dev?.linkinfo?.info_kind;
  if (!dev?.mtu || !kind || !TUNNEL_KINDS.has(kind)) return null;
  const lowerName = dev.linkinfo?.info_data?.link;
  const lower = lowerName ? link(lowerName) : undefined;
  return { netns: into.netns, device: into.ifname, kind, mtu: dev.mtu, probeLen: into.len, lower: lowerName && lower?.mtu ? { name: lowerName, mtu: lower.mtu } : null };
}

export interface ProbeResult {
  /** ping's exit status: 0 a reply came, 1 none did. */
  status: number;
  /** ICMP probes: what ping itself said (answered sequence numbers, local errors). */
  ping: PingReport | null;
  /** TCP/UDP probes: the flow, as it left the sender. */
  flow: FlowTuple | null;
  /** The sender's kernel refused to send (EMSGSIZE): the MTU it named, and its output device's own. */
  localMtu: { mtu: number; deviceMtu: number | null } | null;
  /** An ICMP "too big" from a tunnel device the probe fit into: the device and the link beneath it. */
  tunnelMtu: TunnelMtu | null;
  /** Hops, route lookups, drops and netfilter verdicts, in kernel time order. */
  events: TraceEvent[];
  /** Interfaces that are down, in the namespaces where a route lookup failed. */
  down: Map<number, string[]>;
  /** Netfilter bands a packet entered and did not leave, with nothing to say why. */
  gaps: NetfilterGap[];
  /** The BPF programs attached to the interfaces the probe crossed (XDP, tc, tcx). */
  programs: BpfProgramOnPath[];
  /** Records the kernel dropped because the ring buffer was full. */
  lost: number;
  /** What could not be traced, in words. */
  notes: string[];
  startupMs: number;
  aborted: boolean;
}

/**
 * The kernel side of a probe: how its packets are recognised. Pings by their
 * marker; TCP/UDP probes by their whole flow, either way (and what NAT makes
 * of it, learned on the way). The same on every node that traces it.
 */
export function probeFilter(id: ProbeIdentity, snapLen?: number): KernelFilter {
  const base = { marker: id.marker, markerOffset: id.markerOffset, family: id.family, target: id.target, snapLen };
  return id.flow ? { ...base, match: 'flow', flow: id.flow } : base;
}

/** The probe's command: ping, or the TCP/UDP sender (src/probe/send.ts). */
function probeCommand(o: ProbeOptions, marker: Buffer, flow: FlowTuple | undefined): string[] {
  if (!o.service || !flow) {
    return launchCommand({ address: o.target.address, family: o.target.family, count: o.count, timeout: o.timeout, marker, netnsPath: o.fromPath, ttl: o.ttl, size: o.size });
  }
  const sender = [process.execPath, path.join(__dirname, 'send.js'), o.service.proto, o.target.address, String(o.service.port), flow.src, String(flow.sport), String(o.timeout)];
  return gatedCommand(sender, o.fromPath);
}

export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const native = o.native ?? loadNative();
  const marker = newMarker();
  const flow = o.service
    ? await probeFlow(native, { proto: o.service.proto, target: o.target.address, family: o.target.family, port: o.service.port, netnsPath: o.fromPath })
    : undefined;
  // The probe's process is started while the kernel verifies the programs, held at its gate until they are attached.
  let probe: GatedProbe | undefined;
  const spawnProbe = () => (probe ??= spawnGated(probeCommand(o, marker, flow)));
  let tracer: Tracer;
  const kernel: KernelEvent[] = [];
  let targets: readonly ProgramTarget[] = [];
  try {
    tracer = await createTracer({
      filter: probeFilter({ marker, markerOffset: MARKER_OFFSET, family: o.target.family, target: o.target.address, flow }, o.snapLen),
      flow: o.service && flow && { proto: o.service.proto, port: flow.sport },
      netfilter: o.netfilter ?? true,
      native,
      resolver: o.resolver,
      whileLoading: spawnProbe,
    });
    try {
      targets = await tracer.traceProgramReturns(native, o.fromPath);
    } catch (err) {
      tracer.close();
      throw err;
    }
  } catch (err) {
    probe?.child.kill('SIGKILL');
    throw err;
  }
  const reading = (async () => {
    for await (const ev of tracer) kernel.push(ev);
  })();

  let aborted = false;
  try {
    o.onReady?.(tracer);
    await o.beforeSend?.({ marker, markerOffset: MARKER_OFFSET, family: o.target.family, target: o.target.address, flow });
    const ping = spawnProbe();
    ping.open((pid) => tracer.addSender(pid));
    const child = ping.child;
    const stop = () => {
      aborted = true;
      child.kill('SIGTERM');
    };
    // A signal may have come while we were loading: it still counts.
    if (o.signal?.aborted) stop();
    else o.signal?.addEventListener('abort', stop, { once: true });
    // ping bounds itself with -W; this only guards against one that hangs. Generous: on a loaded
    // machine (or an emulated kernel) starting a process alone can take seconds.
    const expectedS = o.count * 0.2 + o.timeout;
    const hangS = Math.ceil(expectedS * 3 + 30);
    let hung = false;
    const guard = setTimeout(() => {
      hung = true;
      child.kill('SIGTERM');
    }, hangS * 1000);
    const { status, stdout, stderr } = await ping.done;
    clearTimeout(guard);
    o.signal?.removeEventListener('abort', stop);
    tracer.close();
    await reading;
    // ping gives up (exit 2) when the kernel refuses to send: no route from here. That is the
    // journey's answer, not tracepkt's failure; the route lookup event says where and why.
    const refused = !o.service && status === 2 && /unreachable|no route/i.test(stderr);
    const who = o.service ? `the ${o.service.proto.toUpperCase()} probe` : 'ping';
    if (hung && !aborted) throw new TracepktError(`${who} did not end within ${hangS} s (it should have after ${expectedS.toFixed(1)} s): stopped it`);
    if (!aborted && status !== 0 && status !== 1 && !refused) {
      throw new TracepktError(`${who} failed (exit status ${status}): ${stdout || stderr || 'no message'}`);
    }
    const notes = [...tracer.notes];
    if (refused) notes.push(`ping: ${stderr.split('\n')[0]}`);
    for (const ns of tracer.netfilter?.namespaces ?? []) {
      const lost = ns.lost();
      if (lost > 0) notes.push(`${ns.netns.name ?? ns.netns.inode}: ${lost} nftables trace message(s) lost (socket buffer full)`);
    }
    if (flow) orientByPort(kernel, flow.sport);
    const { events, gaps } = await journeyEvents(tracer, kernel);
    if (flow) orientByPort(events, flow.sport);
    if (o.service && stdout) notes.push(`${o.service.proto.toUpperCase()} probe: ${stdout}`);
    const report = o.service ? null : parsePingOutput(stdout, stderr);
    const localMtu = report?.localMtu ? { mtu: report.localMtu, deviceMtu: deviceMtu(events, o.fromPath) } : null;
    const pathOf = (netns: number) => netnsPathOf(tracer, netns, o.fromPath);
    const returns = kernel.filter((e): e is ProgramReturnEvent => e.kind === 'program-return');
    const { programs, unasked } = programsOnPath(native, [...events, ...returns], pathOf);
    tieReturns(programs, returns, targets);
    for (const netns of unasked) notes.push(`BPF programs on the interfaces of namespace ${netns} not listed: it could not be entered`);
    return {
      status: aborted || refused ? 1 : status,
      ping: report,
      localMtu,
      tunnelMtu: tunnelTooSmall(events, pathOf),
      flow: flow ?? null,
      events,
      down: interfacesDownWhereRoutingFailed(events, pathOf),
      gaps,
      programs,
      lost: tracer.lost(),
      notes,
      startupMs: tracer.startupMs,
      aborted,
    };
  } finally {
    probe?.child.kill('SIGKILL');
    tracer.close();
  }
}

/**
 * Hops, drops and route lookups as the kernel saw them, and netfilter's
 * verdicts made from checkpoints and nftables traces, in kernel time order.
 */
export async function journeyEvents(tracer: Tracer, kernel: readonly KernelEvent[]): Promise<{ events: TraceEvent[]; gaps: NetfilterGap[] }> {
  const hops = kernel.filter((e): e is HopEvent => e.kind === 'hop');
  const routes = kernel.filter((e): e is RouteEvent => e.kind === 'route');
  await classifyRoutes(routes, hops, systemKallsyms());
  const direct = tidy([...hops, ...routes, ...kernel.filter((e): e is DropEvent | NeighbourEvent => e.kind === 'drop' || e.kind === 'neighbour')]);
  markHops(direct);
  if (!tracer.netfilter) return { events: direct.sort((a, b) => a.time_ns - b.time_ns), gaps: [] };
  const checkpoints = kernel.filter((e): e is CheckpointEvent => e.kind === 'checkpoint');
  const namespaces = tracer.netfilter.namespaces.map((ns) => ({
    netns: ns.netns.inode,
    netnsName: ns.netns.name,
    judges: ns.judges,
    plans: ns.plans,
    traces: ns.traces,
    ownTable: tracer.netfilter!.table,
  }));
  const tables = kernel.filter((e): e is TableVerdictEvent => e.kind === 'xt-table');
  const { events: verdicts, gaps } = netfilterFindings(namespaces, checkpoints, direct, tables);
  const paths = new Map(tracer.netfilter.namespaces.map((ns) => [ns.netns.inode, ns.netns.path]));
  await fillRuleTexts(verdicts, (netns) => paths.get(netns) ?? null);
  return { events: [...direct, ...verdicts].sort((a, b) => a.time_ns - b.time_ns), gaps };
}
