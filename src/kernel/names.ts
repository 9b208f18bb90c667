/**
 * Names for what the kernel reports as numbers: drop reasons (from the
 * running kernel's BTF), code addresses (kallsyms), routing tables
 * (iproute2's rt_tables). Each source is read once, on first need.
 */
import * as fs from 'node:fs';
import type { DropEvent, HopEvent, RouteEvent } from '../events';
import { kernelDropReasons } from './btf';
import { Kallsyms } from './kallsyms';

let kallsyms: Kallsyms | undefined;
export function nameDrop(ev: DropEvent): void {
  ev.reason = kernelDropReasons().get(ev.reason_code) ?? `reason ${ev.reason_code}`;
  kallsyms ??= Kallsyms.fromSystem();
  ev.location = kallsyms.symbolize(BigInt(ev.location));
}

const WELL_KNOWN_TABLES: Record<number, string> = { 0: 'unspec', 253: 'default', 254: 'main', 255: 'local' };
let tables: Map<number, string> | undefined;

/** iproute2's table names: /etc/iproute2/rt_tables ("NUMBER NAME" lines). */
export function parseRtTables(text: string, into = new Map<number, string>()): Map<number, string> {
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (m) into.set(Number(m[1]), m[2]);
  }
  return into;
}

export function tableName(id: number): string {
  if (!tables) {
    tables = new Map();
    for (const file of ['/etc/iproute2/rt_tables', '/usr/share/iproute2/rt_tables']) {
      try {
        parseRtTables(fs.readFileSync(file, 'utf8'), tables);
      } catch {
        // not there
      }
    }
  }
  return WELL_KNOWN_TABLES[id] ?? tables.get(id) ?? String(id);
}

export function nameRoute(ev: RouteEvent): void {
  ev.table = tableName(ev.table_id);
}

/**
 * A lookup made while receiving the probe, back towards its source, is
 * either the route of an answer sent from here (output routing of an ICMP
 * flow: an echo reply or an error) or rp_filter's reverse-path check.
 */
export function classifyRoutes(routes: RouteEvent[], hops: readonly HopEvent[]): void {
  for (const r of routes) {
    if (r.skb === '0') continue;
    const answer = r.purpose === 'output' && (r.proto === 1 || r.proto === 58);
    const packet = hops.find((h) => h.skb === r.skb);
    if (!answer && packet && r.src === packet.dst && r.dst === packet.src) r.purpose = 'reverse-path';
  }
}
