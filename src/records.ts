/**
 * What a run leaves in the system that the kernel would not remove for us
 * (lab namespaces, classic tc filters) is written down here with the run's
 * pid, so that `tracepkt cleanup` removes only what belongs to runs that
 * are gone, never what a run still going holds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const RECORDS_DIR = '/run/tracepkt';

export function writeRecord(name: string, data: object, dir = RECORDS_DIR): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ pid: process.pid, ...data }));
}

export function removeRecord(name: string, dir = RECORDS_DIR): void {
  fs.rmSync(path.join(dir, `${name}.json`), { force: true });
  try {
    fs.rmdirSync(dir); // the last record gone: nothing of ours left in /run
  } catch {
    // other records still there
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, not ours to signal
  }
}

/** Records named `prefix...` : name (without .json) and content. */
export function readRecords<T extends { pid: number }>(prefix: string, dir = RECORDS_DIR): { name: string; data: T }[] {
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.json'));
  } catch {
    return [];
  }
  const out: { name: string; data: T }[] = [];
  for (const file of files) {
    try {
      out.push({ name: file.slice(0, -5), data: JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as T });
    } catch {
      // half written by a run killed at that moment: nothing to act on
    }
  }
  return out;
}
