/** Whether this process may load and attach BPF programs, read from its capability set. */
import * as fs from 'node:fs';
import { TracepktError } from './errors';

const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;

export function effectiveCapabilities(status = '/proc/self/status'): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(status, 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/**
 * Loading programs takes CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN);
 * entering other namespaces (setns, nsenter) takes CAP_SYS_ADMIN; netfilter
 * links and nf_tables take CAP_NET_ADMIN. In practice: root.
 */
export function canTrace(caps = effectiveCapabilities()): boolean {
  const has = (cap: bigint) => ((caps >> cap) & 1n) === 1n;
  // CAP_SYS_ADMIN also allows loading programs: CAP_BPF and CAP_PERFMON add nothing here.
  return has(CAP_SYS_ADMIN) && has(CAP_NET_ADMIN);
}

export function requireTracingPrivileges(): void {
  if (!canTrace()) {
    throw new TracepktError(
      'tracepkt must run as root: it loads eBPF programs and enters network namespaces (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)',
    );
  }
}
