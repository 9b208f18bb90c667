/**
 * Facts about the running kernel that hold until it reboots (what its
 * verifier takes, where its code is), kept in /run/tracepkt (a tmpfs,
 * emptied at boot) under the boot's id, so that a run measures them once
 * per boot, not once per start: each costs tens of milliseconds (a test
 * program through the verifier, 5 MB of BTF, 120,000 lines of kallsyms).
 * A fact written under another boot's id is ignored and rewritten.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RECORDS_DIR } from '../records';

export function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

let thisBoot: string | undefined;

/** The fact `name` recorded during this boot; null when there is none (or no boot id to trust it by). */
export function readBootFact<T>(name: string, dir = RECORDS_DIR, boot = (thisBoot ??= bootId())): T | null {
  if (!boot) return null;
  try {
    const data = JSON.parse(fs.readFileSync(path.join(dir, `kernel-${name}.json`), 'utf8')) as { boot?: string; fact?: T };
    return data.boot === boot && data.fact !== undefined ? data.fact : null;
  } catch {
    return null; // none yet, or unreadable: measured again
  }
}

/** Records a fact for this boot; silently not where /run cannot be written (measured again next time). */
export function writeBootFact(name: string, fact: unknown, dir = RECORDS_DIR, boot = (thisBoot ??= bootId())): void {
  if (!boot) return;
  try {
    fs.mkdirSync(dir, { recursive: true });
    // Written whole, then renamed: a run starting meanwhile reads the old fact or the new, never half.
    const file = path.join(dir, `kernel-${name}.json`);
    const partial = `${file}.${process.pid}`;
    fs.writeFileSync(partial, JSON.stringify({ boot, fact }));
    fs.renameSync(partial, file);
  } catch {
    // read-only /run
  }
}
