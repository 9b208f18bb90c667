/** Whether this process may load and attach BPF programs, read from its capability set. */
import * as fs from 'node:fs';
import { TracepktError } from './errors';

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

export function effectiveCapabilities(status = '/proc/self/status'): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(status, 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function canTrace(caps = effectiveCapabilities()): boolean {
  const has = (cap: bigint) => (caps >> cap) & 1n;
  return Boolean(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)));
}

export function requireTracingPrivileges(): void {
  if (!canTrace()) {
    throw new TracepktError(
      'tracepkt must run as root: it loads eBPF programs (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)',
    );
  }
}
