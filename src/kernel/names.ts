/**
 * Names for what the kernel reports as numbers: drop reasons (from the
 * running kernel's BTF), code addresses (kallsyms), routing tables
 * (iproute2's rt_tables). Each source is read once, on first need.
 */
import * as fs from 'node:fs';
import { NO_REASON_GIVEN, type DropEvent, type RouteEvent } from '../events';
import { cachedDropReasons, kernelDropReasons, kernelDropReasonsAsync } from './btf';
import { readBootFact, writeBootFact } from './boot-facts';
import { Kallsyms } from './kallsyms';
import { Limits } from '../bpf/layout';

let kallsyms: Kallsyms | undefined;

/** Core kernel code names kept for this boot: the places that free packets and route callers of the runs before. */
const CODE_NAMES_FACT = 'code-names';
/** Enough for every place a trace meets, many times over; a bound on the file. */
const CODE_NAMES_KEPT = 4096;

/**
 * The running kernel's symbols, one instance per process (it caches what it
 * found), starting from the core kernel's names earlier runs of this boot
 * found (src/kernel/boot-facts.ts): a trace that meets only those reads no kallsyms.
 */
export function systemKallsyms(): Kallsyms {
  if (!kallsyms) {
    kallsyms = Kallsyms.fromSystem();
    const kept = readBootFact<Record<string, string>>(CODE_NAMES_FACT);
    if (kept && typeof kept === 'object') {
      kallsyms.seed(Object.entries(kept).filter(([a, n]) => /^[0-9a-f]{1,16}$/.test(a) && typeof n === 'string').map(([a, n]) => [BigInt(`0x${a}`), n]));
    }
    kallsyms.onLasting = (names) => {
      const newest = [...names].slice(-CODE_NAMES_KEPT);
      writeBootFact(CODE_NAMES_FACT, Object.fromEntries(newest.map(([a, n]) => [a.toString(16), n])));
    };
  }
  return kallsyms;
}
/** A drop reason's name; where the kernel gives none (before 5.17), says so: the place names the drop then. */
function reasonName(code: number, reasons: ReadonlyMap<number, string>): string {
  if (code === Limits.NO_DROP_REASON) return NO_REASON_GIVEN;
  return reasons.get(code) ?? `reason ${code}`;
}

export function nameDrop(ev: DropEvent): void {
  ev.reason = reasonName(ev.reason_code, kernelDropReasons());
  ev.location = systemKallsyms().symbolize(BigInt(ev.location));
}

/**
 * Names a drop from what is already known, touching no file: false when its
 * reason or code address still has to be looked up (lookUpKernelNames).
 */
export function nameDropCached(ev: DropEvent): boolean {
  if (!isAddress(ev.location)) return true; // named already
  const reasons = cachedDropReasons();
  const where = kallsyms?.cached(BigInt(ev.location));
  if (!reasons || where === undefined) return false;
  ev.reason = reasonName(ev.reason_code, reasons);
  ev.location = where;
  return true;
}

/**
 * Reads what naming these drops needs (BTF's reasons, kallsyms for their
 * addresses) without blocking; `callers`: more code addresses to name in the
 * same pass (route lookups' caller chains).
 */
export async function lookUpKernelNames(drops: readonly DropEvent[], callers: readonly bigint[] = []): Promise<void> {
  const addresses = drops.filter((d) => isAddress(d.location)).map((d) => BigInt(d.location));
  await Promise.all([drops.length ? kernelDropReasonsAsync() : undefined, systemKallsyms().symbolizeAll([...addresses, ...callers])]);
}

/** A drop's location as decoded (a code address), not yet a name. */
const isAddress = (location: string) => /^0x[0-9a-f]+$/.test(location);

const WELL_KNOWN_TABLES: Record<number, string> = { 0: 'unspec', 253: 'default', 254: 'main', 255: 'local' };
const RT_TABLES = ['/etc/iproute2/rt_tables', '/usr/share/iproute2/rt_tables'];
let tables: Map<number, string> | undefined;

/** Reads iproute2's table names without blocking (tableName then needs no file). */
export async function loadTableNames(): Promise<void> {
  if (tables) return;
  const texts = await Promise.all(RT_TABLES.map((f) => fs.promises.readFile(f, 'utf8').catch(() => '')));
  const read = new Map<number, string>();
  for (const text of texts) parseRtTables(text, read);
  tables ??= read;
}

/** Whether tableName can answer without reading a file. */
export const tableNamesLoaded = (): boolean => tables !== undefined;

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
    for (const file of RT_TABLES) {
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
