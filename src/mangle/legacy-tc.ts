/**
 * Kernels without tcx links (before 6.6): the transmit-path program goes in
 * as a classic tc filter, through iproute2's `tc`, which takes a pinned
 * program. A filter is not owned by our file descriptors, so each one is
 * written down with our pid (src/records.ts), removed on every exit path we
 * see, and by `tracepkt cleanup` after a SIGKILL.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BpfObject } from '../bpf/object';
import { TracepktError } from '../errors';
import { inNetns } from '../names/netns-path';
import { alive, readRecords, removeRecord, writeRecord } from '../records';
/** Where our filters sit among a device's egress filters: out of the way of the usual 1-100. */
const FIRST_PREF = 49152;

export interface LegacyFilter {
  pid: number;
  /** The namespace's path (as --netns gave it), or null for ours. */
  netns: string | null;
  dev: string;
  pref: number;
  /** We added the clsact qdisc (nobody had): we remove it too. */
  qdisc: boolean;
}

function tc(netns: string | null, ...args: string[]): string {
  const [cmd, ...rest] = inNetns(netns, ['tc', ...args]);
  return execFileSync(cmd, rest, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Attaches `prog` of `obj` to dev's egress as a direct-action tc filter. */
export function attachLegacyEgress(obj: BpfObject, prog: string, netns: string | null, dev: string): LegacyFilter {
  // tc takes a pinned program: pin it in a bpffs of our own, only as long as tc needs it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-tc-'));
  let mounted = false;
  let qdisc = false;
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
    mounted = true;
    obj.pin(prog, path.join(dir, prog));
    try {
      tc(netns, 'qdisc', 'add', 'dev', dev, 'clsact');
      qdisc = true;
    } catch {
      // there already (someone's filters): ours goes next to theirs, and the qdisc stays theirs
    }
    const used = new Set([...tc(netns, 'filter', 'show', 'dev', dev, 'egress').matchAll(/pref (\d+)/g)].map((m) => Number(m[1])));
    let pref = FIRST_PREF;
    while (used.has(pref)) pref++;
    const record: LegacyFilter = { pid: process.pid, netns, dev, pref, qdisc };
    writeRecord(recordName(record), record); // first: a kill between the two leaves a record, never an unknown filter
    try {
      tc(netns, 'filter', 'add', 'dev', dev, 'egress', 'pref', String(pref), 'bpf', 'direct-action', 'object-pinned', path.join(dir, prog));
    } catch (err) {
      removeLegacyEgress(record);
      throw new TracepktError(`cannot attach to ${dev}'s egress with tc: ${String((err as { stderr?: string }).stderr ?? err).trim()}`);
    }
    return record;
  } catch (err) {
    if (qdisc) tryTc(netns, 'qdisc', 'del', 'dev', dev, 'clsact');
    throw err;
  } finally {
    if (mounted) execFileSync('umount', [dir]); // the filter holds the program now; the pin goes with the mount
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function tryTc(netns: string | null, ...args: string[]): void {
  try {
    tc(netns, ...args);
  } catch {
    // gone already (the device or the namespace with it)
  }
}

/** Removes the filter (and the qdisc if it was ours) and its record. */
export function removeLegacyEgress(f: LegacyFilter): void {
  tryTc(f.netns, 'filter', 'del', 'dev', f.dev, 'egress', 'pref', String(f.pref));
  if (f.qdisc) tryTc(f.netns, 'qdisc', 'del', 'dev', f.dev, 'clsact');
  removeRecord(recordName(f));
}

const recordName = (f: LegacyFilter) => `mangle-${f.pid}-${f.pref}`;

/** Filters of runs that are gone (killed): removed; returns what was removed. */
export function removeLeftoverFilters(): LegacyFilter[] {
  const removed: LegacyFilter[] = [];
  for (const { data } of readRecords<LegacyFilter>('mangle-')) {
    if (alive(data.pid)) continue;
    removeLegacyEgress(data);
    removed.push(data);
  }
  return removed;
}
