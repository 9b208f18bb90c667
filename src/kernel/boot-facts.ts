/**
 * Facts about the running kernel that hold until it reboots (what its
 * verifier takes, where its code is), kept in /run/tracepkt (a tmpfs,
 * emptied at boot) under the boot's id, so that a run measures them once
 * per boot, not once per start: each costs tens of milliseconds (a test
 * program through the verifier, 5 MB of BTF, 120,000 lines of kallsyms).
 * A fact written under another boot's id, or by another version of
 * tracepkt (whose test programs may differ), is ignored and rewritten; so is
 * one in a file or directory that is not ours or that others could write.
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
// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION = (require('../../../package.json') as { version: string }).version;

/** Ours (root's, as tracepkt runs), and writable by no one else: a planted file must not name the kernel's code for us. */
function trusted(st: fs.Stats): boolean {
  return st.uid === process.getuid!() && (st.mode & 0o022) === 0;
}

/** The fact `name` recorded during this boot; null when there is none (or no boot id to trust it by). */
export function readBootFact<T>(name: string, dir = RECORDS_DIR, boot = (thisBoot ??= bootId())): T | null {
  if (!boot) return null;
  const file = path.join(dir, `kernel-${name}.json`);
  let fd: number | undefined;
  try {
    if (!trusted(fs.statSync(dir))) return null;
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    if (!trusted(fs.fstatSync(fd))) return null;
    const data = JSON.parse(fs.readFileSync(fd, 'utf8')) as { boot?: string; version?: string; fact?: T };
    return data.boot === boot && data.version === VERSION && data.fact !== undefined ? data.fact : null;
  } catch {
    return null; // none yet, or unreadable: measured again
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Records a fact for this boot; silently not where /run cannot be written (measured again next time). */
export function writeBootFact(name: string, fact: unknown, dir = RECORDS_DIR, boot = (thisBoot ??= bootId())): void {
  if (!boot) return;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    // Written whole, then renamed: a run starting meanwhile reads the old fact or the new, never half.
    // The partial file is made new (O_EXCL: never through a link someone left at its name), mode 0644.
    const file = path.join(dir, `kernel-${name}.json`);
    const partial = `${file}.${process.pid}`;
    fs.rmSync(partial, { force: true });
    fs.writeFileSync(partial, JSON.stringify({ boot, version: VERSION, fact }), { flag: 'wx', mode: 0o644 });
    fs.renameSync(partial, file);
  } catch {
    // read-only /run
  }
}
