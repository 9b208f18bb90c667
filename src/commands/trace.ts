/** `tracepkt TARGET`: send the probe, print its journey, exit with ping's status. */
import { shown } from '../render/shown';
import { summarize, type JourneySummary } from '../journey';
import { probeOutcomes, probesVerdict, verdictLine, type ProbeOutcome } from '../verdict';
import { netnsPath } from '../names/netns-path';
import { requireTracingPrivileges } from '../privileges';
import { runProbe, type ProbeResult } from '../probe/run';
import { resolveTarget } from '../probe/target';
import { JSON_SCHEMA_VERSION, jsonLine } from '../render/json';
import { renderPath } from '../render/path';
import { chainLabel, decidedBy } from '../netfilter/describe';
import { netnsLabel, TableRenderer } from '../render/table';
import { ansi, plain, type Paint } from '../render/colour';
import type { Tracer } from '../tracer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SNAP_MAX } from '../bpf/layout';
import { packetBytes } from '../decode';
import { TracepktError } from '../errors';
import type { TraceEvent } from '../events';
import { monotonicOffsetNs, pcapng } from '../render/pcapng';
import { renderHtml } from '../render/html';
import type { Output } from './output';
import { describeProgram, describeReturns } from '../kernel/attached-programs';
import type { NodeAddress } from '../cluster/remote';
import type { CredentialFiles } from '../cluster/credential-files';
// Types only: the code across nodes (TLS and all) is loaded when --node is given.
import type { AcrossNodes, ProbeNodes } from './probe-nodes';
import type { WireCrossing } from '../cluster/stitch';
import { tunnelLabel } from '../tunnel';

export interface TraceCommandOptions {
  target: string;
  family?: 4 | 6;
  count: number;
  /** Seconds to wait for each reply. */
  timeout: number;
  /** `ip netns` name or path of the namespace to send from. */
  from?: string;
  /** TTL / hop limit of the probe. */
  ttl?: number;
  /** ICMP payload bytes. */
  size?: number;
  /** A TCP/UDP probe to this port instead of ICMP echo. */
  service?: { proto: 'tcp' | 'udp'; port: number };
  /** Only the summary: no event table (text), no event lines (JSON). */
  quiet?: boolean;
  /** Colour the text output (a terminal, without NO_COLOR). */
  colour?: boolean;
  /** Write the sighted packets to this pcapng file. */
  pcap?: string;
  /** Write the journey as a self-contained HTML page to this file. */
  html?: string;
  json: boolean;
  /** Trace the probe on these nodes too, through their agents, with the token in tokenFile (src/commands/probe-nodes.ts). */
  nodes?: NodeAddress[];
  credentials?: CredentialFiles;
}

export async function traceCommand(o: TraceCommandOptions, io: Output, signal?: AbortSignal): Promise<number> {
  requireTracingPrivileges();
  const fromPath = o.from === undefined ? undefined : netnsPath(o.from);
  // Other nodes: the token read and names checked before anything is attached, then reached while ours loads.
  const cluster = o.nodes?.length ? { coordinator: await import('../cluster/coordinator'), probeNodes: await import('./probe-nodes') } : undefined;
  const wanted = cluster?.coordinator.nodesWanted(o.nodes!, o.credentials!);
  const target = await resolveTarget(o.target, o.family);
  const nodes: ProbeNodes | undefined = wanted && cluster!.probeNodes.ProbeNodes.reach(wanted, io);

  const start = (tracer: Tracer) => {
    const namespaces = tracer.netfilter?.namespaces.length ?? 0;
    const notes = [...(target.note ? [target.note] : []), ...tracer.notes];
    if (o.json) {
      const across = nodes ? { node: nodes.local, nodes: nodes.reached(), missing: nodes.missing() } : {};
      io.out(jsonLine({ kind: 'start', schema: JSON_SCHEMA_VERSION, target: target.address, target_input: target.input, probes: o.count, netfilter_namespaces: namespaces, ...across, notes }));
    } else {
      const to = target.input === target.address ? target.address : `${target.input} (${target.address})`;
      const what = o.service ? `${o.service.proto.toUpperCase()} port ${o.service.port} on ${to}` : `ICMP echo to ${to}, ${o.count} probe(s)`;
      const across = nodes ? `; nodes: ${[nodes.local, ...nodes.reached().map((n) => `${n.node} (clock ${n.clock})`)].join(', ')}` : '';
      io.err(shown(`tracing ${what}${o.from ? ` from ${o.from}` : ''}; netfilter in ${namespaces} namespace(s)${across}`));
      for (const note of notes) io.err(shown(`note: ${note}`));
      for (const n of nodes?.reached() ?? []) for (const note of n.notes) io.err(shown(`note: node ${n.node}: ${note}`));
    }
  };
  if (o.pcap !== undefined) checkWritable(o.pcap);
  if (o.html !== undefined) checkWritable(o.html);
  let result: ProbeResult;
  let ready: Tracer | undefined;
  try {
    result = await runProbe({
      target, service: o.service, count: o.count, timeout: o.timeout, fromPath, ttl: o.ttl, size: o.size, snapLen: o.pcap ? SNAP_MAX : 0, signal,
      // Across nodes, the start line waits until each node's witness is attached (or said missing).
      onReady: (tracer) => (nodes ? (ready = tracer) : start(tracer)),
      beforeSend: nodes && (async (id) => {
        // As long as the probe may take (runProbe's own bound), its witnesses' attaching and their parts' coming.
        const probeS = Math.ceil((o.count * 0.2 + o.timeout) * 3 + 30);
        await nodes.witness(id, o.count, probeS + (cluster!.coordinator.ATTACH_TIMEOUT_MS + cluster!.probeNodes.WITNESS_WAIT_MS) / 1000, signal);
        start(ready!);
      }),
    });
  } catch (err) {
    await nodes?.abandon();
    throw err;
  }
  const across = nodes && (await nodes.finish(result.events, signal));
  if (across) result = { ...result, events: across.events, notes: [...result.notes, ...across.notes] };
  if (o.pcap !== undefined) writePcap(o.pcap, result.events);
  if (o.html !== undefined) {
    const what = o.service ? `${o.service.proto.toUpperCase()} port ${o.service.port} on ${target.address}` : `ICMP echo to ${target.address}`;
    writeFile(o.html, renderHtml({ title: `tracepkt: ${what}${o.from ? ` from ${o.from}` : ''}`, verdict: probesVerdict(outcomesOf(o.count, result)), events: result.events, programs: result.programs }));
  }
  const summary = summarize(result.events, across !== undefined);
  const paint = o.colour ? ansi : plain;
  if (o.json) {
    if (!o.quiet) for (const ev of result.events) io.out(jsonLine(ev));
    io.out(jsonLine(summaryRecord(o, target.address, result, summary, across)));
  } else {
    const table = new TableRenderer(paint);
    if (!o.quiet && result.events.length > 0) io.out(table.header());
    if (!o.quiet) for (const ev of result.events) io.out(table.line(ev));
    for (const line of summaryLines(o.count, result, summary, paint, across)) io.out(line);
  }
  return result.aborted ? 130 : result.status;
}

/** Fails early, before anything is attached, if the file cannot be written. */
export function checkWritable(file: string): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new TracepktError(`cannot write ${file}: ${dir} is not a writable directory`);
  }
}

function writeFile(file: string, data: string | Buffer): void {
  try {
    fs.writeFileSync(file, data);
  } catch (err) {
    throw new TracepktError(`cannot write ${file}: ${(err as Error).message}`);
  }
}

export function writePcap(file: string, events: readonly TraceEvent[]): void {
  writeFile(file, pcapng(events, (e) => packetBytes.get(e), monotonicOffsetNs(), SNAP_MAX));
}

/**
 * Each probe's fate: for pings, one per probe ping sent (whether it was
 * answered is ping's word); a TCP/UDP probe is one.
 */
export function outcomesOf(count: number, r: ProbeResult, across?: AcrossNodes): ProbeOutcome[] {
  const lostByNode = new Map(across?.lost.map((l) => [l.node, l.events]));
  const context = { down: r.down, lost: r.lost, gaps: r.gaps, localMtu: r.localMtu, tunnelMtu: r.tunnelMtu, programs: r.programs, localNode: across?.local, lostByNode };
  const outcomes = r.ping
    ? probeOutcomes(r.events, r.aborted && r.ping.transmitted !== null ? Math.min(count, Math.max(1, r.ping.transmitted)) : count, r.ping, context)
    : [{ seq: 1, answered: r.status === 0, verdict: verdictLine(r.events, r.status === 0, context) }];
  // A node not seen from: the verdict says so, whatever the others saw. A node that saw nothing of
  // the probe matters where it was not answered (it may have been on the way); answered, a node
  // off its way sees nothing (the summary lists them).
  const silent = (across?.silent ?? []).map((n) =>
    `node ${n} saw no packet of the probe${r.flow ? ' (it knows a TCP/UDP probe by its flow as it left here: a NAT on the way changes it)' : ''}`);
  const missing = across?.missing ?? [];
  return outcomes.map((p) => {
    const said = [...missing, ...(p.answered ? [] : silent)];
    return said.length ? { ...p, verdict: `${p.verdict}; ${said.join('; ')}` } : p;
  });
}

/** "0.412 ms". */
const ms = (ns: number) => `${(ns / 1e6).toFixed(3)} ms`;

/** A wire crossing as a line: "request vm/n1 tp0 ==[vxlan 42: ...]==> far/host eth0: 0.412 ms ± 0.300 ms". */
function crossingLine(c: WireCrossing): string {
  const at = (e: WireCrossing['from']) => `${netnsLabel(e.netns, e.netns_name, e.node)} ${e.ifname}`;
  const how = c.tunnel ? ` ==[${tunnelLabel(c.tunnel)}]==> ` : ' --> ';
  return `${c.dir} ${c.seq}: ${at(c.from)}${how}${at(c.to)}: ${ms(c.latency_ns)} ± ${ms(c.uncertainty_ns)} by the clocks`;
}

function summaryRecord(o: TraceCommandOptions, address: string, r: ProbeResult, s: JourneySummary, across?: AcrossNodes) {
  const outcomes = outcomesOf(o.count, r, across);
  return {
    kind: 'summary',
    schema: JSON_SCHEMA_VERSION,
    target: address,
    probes: o.count,
    requests_seen: s.requestsSeen,
    replies_seen: s.repliesSeen,
    replied: r.status === 0,
    answered: outcomes.filter((p) => p.answered).length,
    outcomes,
    namespaces: s.namespaces.map((n) => ({ netns: n.netns, netns_name: n.name, ...(n.node === undefined ? {} : { node: n.node }) })),
    stopped_by: s.stoppedBy && {
      ...(s.stoppedBy.node === undefined ? {} : { node: s.stoppedBy.node }),
      netns: s.stoppedBy.netns,
      netns_name: s.stoppedBy.netns_name,
      hook: s.stoppedBy.hook,
      table_family: s.stoppedBy.table_family,
      table: s.stoppedBy.table,
      chain: s.stoppedBy.chain,
      verdict: s.stoppedBy.verdict,
      rule: s.stoppedBy.rule,
      handle: s.stoppedBy.handle,
      decided_by: s.stoppedBy.decided_by,
    },
    netfilter_gaps: r.gaps,
    bpf_programs: across ? r.programs.map((p) => ({ node: across.local, ...p })) : r.programs,
    notes: r.notes,
    lost_events: r.lost,
    ...(across ? acrossRecord(across) : {}),
    incomplete: r.lost > 0 || (across !== undefined && (across.missing.length > 0 || across.lost.length > 0 || across.doubts.length > 0)),
    verdict: probesVerdict(outcomes),
    exit_status: r.aborted ? 130 : r.status,
  };
}

/** The summary's fields of a journey across nodes (docs/json.md). */
function acrossRecord(a: AcrossNodes) {
  return {
    node: a.local,
    nodes: a.nodes,
    missing: a.missing,
    wire: a.crossings,
    wire_round_trips: a.roundTrips.map((t) => ({ node: t.node, seq: t.seq, ns: t.ns })),
    clock_shifts: Object.fromEntries(a.shifts),
    order_doubts: a.doubts,
    silent_nodes: a.silent,
    lost_events_on_nodes: a.lost,
  };
}

/** The summary's lines of a journey across nodes: the nodes, the wire between them, what is missing. */
function acrossLines(a: AcrossNodes): string[] {
  const lines = [`Nodes: ${a.local} (this host)${a.nodes.map((n) => `, ${n.node} at ${n.address} (Linux ${n.kernel}; clock ${n.clock})`).join('')}`];
  if (a.crossings.length > 0) lines.push('Across the wire (receive less transmit; the clock offsets are known within their bound):', ...a.crossings.map((c) => `    ${crossingLine(c)}`));
  for (const t of a.roundTrips) lines.push(`    probe ${t.seq} to ${t.node} and back: ${ms(t.ns)} on the wire both ways together (less the time on ${t.node}; no clock offset in it)`);
  for (const [node, shift] of a.shifts) lines.push(`Order of cause: node ${node}'s events are placed ${ms(Math.abs(shift))} ${shift > 0 ? 'later' : 'earlier'} than its clock offset says, after the transmits that caused them (their times are shown unchanged).`);
  for (const d of a.doubts) lines.push(`Order uncertain: ${d}.`);
  if (a.silent.length) lines.push(`Saw no packet of the probe: node(s) ${a.silent.join(', ')}.`);
  for (const m of a.missing) lines.push(`${m[0].toUpperCase()}${m.slice(1)}.`);
  for (const l of a.lost) lines.push(`Journey incomplete on node ${l.node}: ${l.events} event(s) lost there; hops may be missing.`);
  for (const note of a.notes) lines.push(`Note: ${note}.`);
  return lines;
}

export function summaryLines(count: number, r: ProbeResult, s: JourneySummary, paint: Paint = plain, across?: AcrossNodes): string[] {
  const here = across?.local; // in a journey across nodes, what was read on this host is labelled with it
  const lines = [''];
  if (r.events.length === 0) lines.push('No packet of the probe was seen on any interface.');
  const outcomes = outcomesOf(count, r, across);
  const got = outcomes.filter((p) => p.answered).length;
  const answered = outcomes.length === 1 ? (r.status === 0 ? 'reply received' : 'no reply') : `${got} of ${outcomes.length} answered`;
  lines.push(`Summary: ${outcomes.length} probe(s) sent, ${s.requestsSeen} request(s) and ${s.repliesSeen} reply(ies) seen; ${answered}.`);
  if (s.namespaces.length > 0) {
    lines.push(`Namespaces crossed: ${s.namespaces.map((n) => netnsLabel(n.netns, n.name, n.node)).join(' -> ')}`);
  }
  if (across) lines.push(...acrossLines(across));
  for (const [title, steps] of [['Request path', s.request], ['Reply path', s.reply]] as const) {
    const picture = renderPath(steps);
    if (picture.length === 0) continue;
    lines.push(`${title}:`, ...picture.map((l) => `    ${l}`));
  }
  if (s.stoppedBy) {
    const by = s.stoppedBy;
    const verb = by.verdict === 'DROP' ? 'Dropped' : `Stopped (${by.verdict})`;
    const backend = by.backend === 'iptables-legacy' ? ' (iptables-legacy)' : '';
    lines.push(`${verb} by ${chainLabel(by)}${backend} in namespace ${by.netns_name ?? by.netns}${by.node === undefined ? '' : ` on node ${by.node}`}: ${decidedBy(by)}.`);
  }
  if (r.status !== 0 && s.last) {
    const name = s.last.netns_name ?? String(s.last.netns);
    lines.push(`Last seen: ${s.last.dir} on ${s.last.ifname} in ${name}${s.last.node === undefined ? '' : ` on node ${s.last.node}`} (${s.last.hook}).`);
  }
  if (r.programs.length > 0) {
    lines.push('BPF programs on the path:');
    for (const p of r.programs) {
      const returns = describeReturns(p);
      lines.push(`    ${p.ifname} in ${netnsLabel(p.netns, p.netns_name, here)}: ${describeProgram(p)}${returns ? `; ${returns}` : ''}`);
    }
  }
  if (r.lost > 0) lines.push(`Journey incomplete: ${r.lost} event(s) lost because the ring buffer was full; hops may be missing.`);
  if (r.aborted) lines.push('Interrupted.');
  const verdict = probesVerdict(outcomes);
  const all = outcomes.every((p) => p.answered) && !across?.missing.length;
  // Names in these lines come from the traced system: shown, control characters made visible (paint shows its own).
  return [...lines.map(shown), paint(`Verdict: ${verdict}.`, all ? 'green' : r.status === 0 ? 'yellow' : 'red')];
}
