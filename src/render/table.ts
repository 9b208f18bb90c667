/** The hop-by-hop table, printed a line per event as events arrive. */
import type { DropEvent, HopEvent, NeighbourEvent, NetfilterEvent, RouteEvent, TraceEvent } from '../events';
import { describeIcmpError } from '../icmp';
import { chainLabel, decidedBy } from '../netfilter/describe';
import { tunnelDetail } from '../tunnel';
import { plain, type Paint, type Style } from './colour';
import { shown } from './shown';
import { hasPorts } from '../ip';
import { resolution } from '../addr';
import { conntrackShort } from '../conntrack';

const COLUMNS = [
  ['TIME', 11],
  ['HOP', 10],
  ['NETNS', 30],
  ['INTERFACE', 16],
  ['DIR', 8],
  ['ADDRESSES', 34],
  ['PACKET', 16],
  ['HOOK', 0],
] as const;

/**
 * Pads each cell to its column, then paints it: escape codes must not count
 * as width. Cells are shown first (their control characters made visible),
 * so a hostile name is as wide as it looks.
 */
function row(cells: string[], paint: Paint = plain, styles: (Style | undefined)[] = []): string {
  let out = '';
  for (let i = 0; i < cells.length; i++) {
    const width = COLUMNS[i][1];
    const cell = i === INTERFACE ? cut(shown(cells[i]), width - 1) : shown(cells[i]);
    const text = width ? cell.padEnd(width - 1) : cell;
    if (paint === plain) {
      out += text; // what plain paints of a shown cell: the cell (a line per event under a flood: no more work)
    } else {
      const painted = text.trimEnd();
      out += paint(painted, styles[i]) + text.slice(painted.length);
    }
    if (width) out += ' ';
  }
  return out.trimEnd();
}

const INTERFACE = COLUMNS.findIndex(([name]) => name === 'INTERFACE');

/**
 * An interface name has 15 bytes at most, but shown it can be four times as
 * wide: cut, marked with an ellipsis (JSON has it whole), never in the middle
 * of a shown character's escape.
 */
function cut(text: string, width: number): string {
  if (text.length <= width) return text;
  let kept = text.slice(0, width - 1);
  if (/[\uD800-\uDBFF]$/.test(kept)) kept = kept.slice(0, -1); // not half of a character beyond U+FFFF
  return `${kept.replace(/\\(x[0-9a-f]?|u(\{[0-9a-f]*)?)$/, '')}…`;
}

const DIR_STYLE: Record<string, Style> = { request: 'green', reply: 'cyan', error: 'yellow', route: 'dim' };

/** How a row's last column reads at a glance: drops red, accepted verdicts green, ICMP errors yellow. */
function hookStyle(ev: TraceEvent): Style | undefined {
  if (ev.kind === 'drop') return 'red';
  if (ev.kind === 'netfilter') return ev.verdict === 'ACCEPT' ? 'green' : 'red';
  if (ev.kind === 'route') return ev.error ? 'red' : 'dim';
  return ev.dir === 'error' ? 'yellow' : undefined;
}

/** "name (inode)", the name cut to `room` characters; "node/name (inode)" where the trace spans nodes (the node's name whole). */
export function netnsLabel(netns: number, raw: string | null, node?: string, room = 16): string {
  const where = node === undefined ? '' : `${shown(node)}/`;
  if (raw === null) return `${where}${netns}`;
  return `${where}${cut(shown(raw), Math.max(4, room - where.length))} (${netns})`;
}

/** "+0.042ms"; "-0.005ms" for an event before the first (another node's clock is known within a bound only). */
export function formatDelta(ns: number): string {
  return `${ns < 0 ? '-' : '+'}${(Math.abs(ns) / 1e6).toFixed(3)}ms`;
}

export class TableRenderer {
  private t0: number | undefined;

  constructor(private readonly paint: Paint = plain) {}

  header(): string {
    return row(COLUMNS.map(([name]) => name), this.paint, COLUMNS.map(() => 'bold' as const));
  }

  line(ev: TraceEvent): string {
    this.t0 ??= ev.time_ns;
    const styled = (cells: string[]) => row(cells, this.paint, [undefined, 'dim', undefined, undefined, DIR_STYLE[cells[4]], undefined, undefined, hookStyle(ev)]);
    const when = formatDelta(ev.time_ns - this.t0);
    const hop = ev.kind === 'hop' && ev.latency_ns != null ? formatDelta(ev.latency_ns) : '-';
    const where = netnsLabel(ev.netns, ev.netns_name, ev.node);
    const flow = `${ev.src} -> ${ev.dst}`;
    if (ev.kind === 'route') return styled([when, hop, where, ev.oif ?? '', 'route', flow, '', describeRoute(ev)]);
    const icmp = hasPorts(ev.proto) ? l4Label(ev) : `id ${ev.icmp_id} seq ${ev.icmp_seq}`;
    if (ev.kind === 'netfilter') return styled([when, hop, where, '', ev.dir, flow, icmp, describeVerdict(ev)]);
    if (ev.kind === 'drop') return styled([when, hop, where, ev.ifname, ev.dir, flow, icmp, describeDrop(ev)]);
    if (ev.kind === 'neighbour') return styled([when, hop, where, ev.ifname, ev.dir, flow, icmp, describeNeighbour(ev)]);
    return styled([when, hop, where, ev.ifname, ev.dir, flow, icmp, describeHop(ev)]);
  }
}

function describeVerdict(ev: NetfilterEvent): string {
  return `${ev.hook} ${chainLabel(ev)}: ${ev.verdict} (${decidedBy(ev)})${ev.tunnel ? ` (on the ${tunnelDetail(ev.tunnel)} packet)` : ''}`;
}

/** "tcp 20345>80 S", "udp 20345>53". */
function l4Label(ev: { proto: number; sport: number; dport: number; tcp_flags: string }): string {
  return `${ev.proto === 6 ? 'tcp' : 'udp'} ${ev.sport}>${ev.dport}${ev.tcp_flags ? ` ${ev.tcp_flags}` : ''}`;
}

function describeHop(ev: HopEvent): string {
  if (ev.dir !== 'error') {
    const notes = [ev.conntrack ? conntrackShort(ev.conntrack) : '', ev.vlan !== null ? `vlan ${ev.vlan}` : '', ev.tunnel ? `in ${tunnelDetail(ev.tunnel)}` : '', ev.rewritten ? `NAT: ${ev.rewritten}` : '', ev.altered ? `altered: ${ev.altered}` : ''].filter(Boolean);
    return notes.length ? `${ev.hook} (${notes.join('; ')})` : ev.hook;
  }
  return `${ev.hook}: ${ev.family === 6 ? 'ICMPv6' : 'ICMP'} ${describeIcmpError(ev.family, ev.icmp_type, ev.icmp_code, ev.mtu)} about the ${ev.quotes}`;
}

function describeRoute(ev: RouteEvent): string {
  const what = { input: 'route', output: 'route out', 'reverse-path': 'reverse-path check' }[ev.purpose] + (ev.for_icmp_error ? ' for the ICMP error' : '');
  if (ev.error !== null) return `${what} table ${ev.table}: ${ev.error}`;
  return `${what} table ${ev.table}: ${ev.gateway ? `via ${ev.gateway} ` : ''}dev ${ev.oif ?? '?'}`;
}

/** "waiting for ARP: 192.168.77.9 INCOMPLETE". */
export function describeNeighbour(ev: NeighbourEvent): string {
  return `waiting for ${resolution(ev.next_hop)}: ${ev.next_hop} ${ev.neighbour_state}${ev.tunnel ? ` (in ${tunnelDetail(ev.tunnel)})` : ''}`;
}

function describeDrop(ev: DropEvent): string {
  return `DROPPED at ${ev.location}: ${ev.reason}${ev.tunnel ? ` (in ${tunnelDetail(ev.tunnel)})` : ''}${ev.conntrack ? ` (${conntrackShort(ev.conntrack)})` : ''}`;
}
