/** The hop-by-hop table, printed a line per event as events arrive. */
import type { TraceEvent } from '../events';

const COLUMNS = [
  ['TIME', 11],
  ['NETNS', 30],
  ['INTERFACE', 16],
  ['DIR', 8],
  ['ADDRESSES', 34],
  ['ICMP', 16],
  ['HOOK', 0],
] as const;

function row(cells: string[]): string {
  return cells
    .map((cell, i) => (COLUMNS[i][1] ? cell.padEnd(COLUMNS[i][1] - 1) + ' ' : cell))
    .join('')
    .trimEnd();
}

export function netnsLabel(netns: number, name: string | null): string {
  if (name === null) return String(netns);
  const short = name.length > 16 ? `${name.slice(0, 15)}…` : name;
  return `${short} (${netns})`;
}

export function formatDelta(ns: number): string {
  return `+${(ns / 1e6).toFixed(3)}ms`;
}

export class TableRenderer {
  private t0: number | undefined;

  header(): string {
    return row(COLUMNS.map(([name]) => name));
  }

  line(ev: TraceEvent): string {
    this.t0 ??= ev.time_ns;
    return row([
      formatDelta(ev.time_ns - this.t0),
      netnsLabel(ev.netns, ev.netns_name),
      ev.ifname,
      ev.dir,
      `${ev.src} -> ${ev.dst}`,
      `id ${ev.icmp_id} seq ${ev.icmp_seq}`,
      ev.hook,
    ]);
  }
}
