/** `tracepkt TARGET`: send the probe, print its journey, exit with ping's status. */
import type { TraceEvent } from '../events';
import { summarize, type JourneySummary } from '../journey';
import { netnsPath } from '../names/netns-path';
import { requireTracingPrivileges } from '../privileges';
import { runProbe, type ProbeResult } from '../probe/run';
import { resolveTarget } from '../probe/target';
import { JSON_SCHEMA_VERSION, jsonLine } from '../render/json';
import { renderPath } from '../render/path';
import { netnsLabel, TableRenderer } from '../render/table';
import type { Output } from './output';

export interface TraceCommandOptions {
  target: string;
  family?: 4 | 6;
  count: number;
  /** Seconds to wait for each reply. */
  timeout: number;
  /** `ip netns` name or path of the namespace to send from. */
  from?: string;
  json: boolean;
}

export async function traceCommand(o: TraceCommandOptions, io: Output, signal?: AbortSignal): Promise<number> {
  requireTracingPrivileges();
  const fromPath = o.from === undefined ? undefined : netnsPath(o.from);
  const target = await resolveTarget(o.target, o.family);

  const table = new TableRenderer();
  let printedHeader = false;
  const onEvent = (ev: TraceEvent) => {
    if (o.json) return io.out(jsonLine(ev));
    if (!printedHeader) io.out(table.header());
    printedHeader = true;
    io.out(table.line(ev));
  };
  if (!o.json) io.err(`tracing ICMP echo to ${target.address}${o.from ? ` from ${o.from}` : ''}, ${o.count} probe(s)`);

  const result = await runProbe({ target, count: o.count, timeout: o.timeout, fromPath, signal }, onEvent);
  const summary = summarize(result.events);
  if (o.json) io.out(jsonLine(summaryRecord(o, target.address, result, summary)));
  else for (const line of summaryLines(o.count, result, summary)) io.out(line);
  return result.aborted ? 130 : result.status;
}

function summaryRecord(o: TraceCommandOptions, address: string, r: ProbeResult, s: JourneySummary) {
  return {
    kind: 'summary',
    schema: JSON_SCHEMA_VERSION,
    target: address,
    probes: o.count,
    requests_seen: s.requestsSeen,
    replies_seen: s.repliesSeen,
    replied: r.status === 0,
    namespaces: s.namespaces.map((n) => ({ netns: n.netns, netns_name: n.name })),
    lost_events: r.lost,
    exit_status: r.aborted ? 130 : r.status,
  };
}

export function summaryLines(count: number, r: ProbeResult, s: JourneySummary): string[] {
  const lines = [''];
  if (r.events.length === 0) lines.push('No packet of the probe was seen on any interface.');
  const answered = r.status === 0 ? 'reply received' : 'no reply';
  lines.push(`Summary: ${count} probe(s) sent, ${s.requestsSeen} request(s) and ${s.repliesSeen} reply(ies) seen; ${answered}.`);
  if (s.namespaces.length > 0) {
    lines.push(`Namespaces crossed: ${s.namespaces.map((n) => netnsLabel(n.netns, n.name)).join(' -> ')}`);
  }
  for (const [title, steps] of [['Request path', s.request], ['Reply path', s.reply]] as const) {
    const picture = renderPath(steps);
    if (picture.length === 0) continue;
    lines.push(`${title}:`, ...picture.map((l) => `    ${l}`));
  }
  if (r.status !== 0 && s.last) {
    const name = s.last.netns_name ?? String(s.last.netns);
    lines.push(`Last seen: ${s.last.dir} on ${s.last.ifname} in ${name} (${s.last.hook}).`);
  }
  if (r.lost > 0) lines.push(`Warning: ${r.lost} event(s) lost because the ring buffer was full: the journey may have gaps.`);
  if (r.aborted) lines.push('Interrupted.');
  return lines;
}
