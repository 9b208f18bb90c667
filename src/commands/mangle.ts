/**
 * `tracepkt mangle DEV ...`: reproduce a field bug by altering or dropping a
 * share of the packets on one interface, for as long as the command runs.
 * Counters every second while they change, and at the end.
 */
import { shown } from '../render/shown';
import { parseArgs } from 'node:util';
import { MangleSelect } from '../bpf/layout';
import { TracepktError } from '../errors';
import { compilePcapFilter } from '../filter/pcap';
import { loadNative } from '../native';
import type { MangleCounters } from '../mangle/mangler';
import { checkSpec, parseRatio, parseTcpFlags, parseTtl, selection, type MangleSpec } from '../mangle/spec';
import { netnsPath } from '../names/netns-path';
import { requireTracingPrivileges } from '../privileges';
import { JSON_SCHEMA_VERSION, jsonLine } from '../render/json';
import type { Output } from './output';

export const MANGLE_USAGE = `Usage: tracepkt mangle DEV [options]   alter packets on DEV until Ctrl-C

  DEV                      the interface (in --netns NETNS if given)
      --netns NETNS        its network namespace (ip netns name, or a path such as /proc/PID/ns/net)
      --egress             its transmit path (tc, a tcx link: Linux 6.6+); default: receive (XDP)
      --ttl random|N       set the TTL / hop limit (without --filter: of ICMP echo replies only)
      --set-tcp-flags F    set TCP flags F (e.g. PSH, or PSH,URG) on segments without SYN, FIN or
                           RST; needs --egress
      --drop               drop the selected packets
      --ratio R            act on this share of the selected packets (0 < R <= 1, default 1)
      --filter EXPR        select packets by a tcpdump filter (man pcap-filter), on the frame from its
                           Ethernet header: 'icmp and host 10.0.0.2', 'tcp[tcpflags] & tcp-push != 0',
                           'vlan 10 and udp portrange 5000-5010', 'greater 1000'
      --json               JSON Lines: start, counters every second while they change, summary

Checksums stay valid. The program is attached through a link owned by tracepkt: it goes away when
tracepkt ends, however it ends.`;

export interface MangleCommandOptions {
  dev: string;
  netns?: string;
  spec: MangleSpec;
  filter?: string;
  json: boolean;
  /** Counters every this many milliseconds (default 1000). */
  intervalMs?: number;
}

export function parseMangleArgs(argv: string[]): MangleCommandOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        netns: { type: 'string' },
        egress: { type: 'boolean' },
        ttl: { type: 'string' },
        'set-tcp-flags': { type: 'string' },
        drop: { type: 'boolean' },
        ratio: { type: 'string' },
        filter: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new TracepktError(`${(err as Error).message.split(/\.\s|\n/)[0]} (see tracepkt mangle --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length !== 1) {
    throw new TracepktError(positionals.length === 0 ? 'mangle: no interface given (see tracepkt mangle --help)' : `mangle: one interface only, got: ${positionals.join(' ')}`);
  }
  const spec: MangleSpec = {
    ttl: values.ttl === undefined ? undefined : parseTtl(values.ttl),
    tcpFlags: values['set-tcp-flags'] === undefined ? undefined : parseTcpFlags(values['set-tcp-flags']),
    drop: values.drop ?? false,
    ratio: values.ratio === undefined ? 1 : parseRatio(values.ratio),
    egress: values.egress ?? false,
  };
  checkSpec(spec);
  return { dev: positionals[0], netns: values.netns, spec, filter: values.filter, json: values.json ?? false };
}

/** "ttl random on ICMP echo replies, 10% of them": what the run does, in words. */
export function describeSpec(spec: MangleSpec, filter?: string): string {
  const what = [
    spec.ttl !== undefined ? `set the TTL to ${spec.ttl === 'random' ? 'a random value' : spec.ttl}` : '',
    spec.tcpFlags !== undefined ? 'set TCP flags' : '',
    spec.drop ? 'drop' : '',
  ].filter(Boolean).join(' and ');
  const which = filter ? `packets matching "${filter}"` : selection(spec) === MangleSelect.ECHO_REPLIES ? 'ICMP echo replies' : spec.tcpFlags !== undefined ? 'TCP segments' : 'IP packets';
  return `${what} on ${spec.ratio < 1 ? `${+(spec.ratio * 100).toFixed(4)}% of ` : ''}${which}`;
}

const countersLine = (c: MangleCounters) => `seen ${c.seen}, selected ${c.selected}, altered ${c.altered}, dropped ${c.dropped}`;

export async function mangleCommand(o: MangleCommandOptions, io: Output, signal?: AbortSignal): Promise<number> {
  // The filter first: a bad one is refused before anything is asked of the kernel.
  const spec: MangleSpec = o.filter === undefined ? o.spec : { ...o.spec, pcap: compilePcapFilter(loadNative(), o.filter, 'ethernet') };
  requireTracingPrivileges();
  const netns = o.netns === undefined ? undefined : netnsPath(o.netns);
  const { Mangler } = await import('../mangle/mangler');
  const mangler = await Mangler.attach({ dev: o.dev, netns }, spec);
  const where = `${o.dev}${o.netns ? ` in ${o.netns}` : ''} (${mangler.hook})`;
  try {
    if (o.json) io.out(jsonLine({ kind: 'start', schema: JSON_SCHEMA_VERSION, dev: o.dev, netns: o.netns ?? null, hook: mangler.hook, doing: describeSpec(spec, o.filter) }));
    else io.err(shown(`mangling on ${where}: ${describeSpec(spec, o.filter)}; Ctrl-C to stop`));
    let last = countersLine({ seen: 0, selected: 0, altered: 0, dropped: 0 });
    const report = () => {
      const c = mangler.counters();
      const line = countersLine(c);
      if (line === last) return;
      last = line;
      io.out(o.json ? jsonLine({ kind: 'counters', ...c }) : line);
    };
    await new Promise<void>((resolve) => {
      const timer = setInterval(report, o.intervalMs ?? 1000);
      const stop = () => {
        clearInterval(timer);
        resolve();
      };
      if (signal?.aborted) stop();
      signal?.addEventListener('abort', stop, { once: true });
    });
    const c = mangler.counters();
    io.out(o.json ? jsonLine({ kind: 'summary', schema: JSON_SCHEMA_VERSION, dev: o.dev, netns: o.netns ?? null, ...c }) : shown(`Mangled on ${where}: ${countersLine(c)}.`));
    return signal?.aborted ? 130 : 0;
  } finally {
    mangler.close();
  }
}
