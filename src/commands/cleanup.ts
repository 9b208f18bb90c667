/**
 * `tracepkt cleanup`: removes what a killed run could leave behind. BPF
 * programs and links die with the process (they are owned by its file
 * descriptors), and so do our nftables tables where the kernel takes the
 * owner flag (5.12+). Left behind can be: the namespaces of a demo lab
 * (bind mounts outlive us) and, on older kernels, our nftables tables and
 * the tc filters of `mangle --egress` (before tcx, 6.6).
 */
import { shown } from '../render/shown';
import { execFileSync } from 'node:child_process';
import { forgetLab, leftoverLabNamespaces, removeNamespace } from '../lab/lab';
import { removeLeftoverFilters } from '../mangle/legacy-tc';
import { NetnsResolver } from '../names/netns';
import { inNetns } from '../names/netns-path';
import { TABLE_PREFIX } from '../netfilter/watch';
import { requireTracingPrivileges } from '../privileges';
import type { Output } from './output';

function nft(netnsPath: string | null, ...args: string[]): string {
  const [cmd, ...rest] = inNetns(netnsPath, ['nft', ...args]);
  return execFileSync(cmd, rest, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

export function cleanupCommand(io: Output): number {
  requireTracingPrivileges();
  let removed = 0;
  for (const ns of leftoverLabNamespaces()) {
    removeNamespace(ns);
    forgetLab(ns.split('-')[1]);
    io.out(shown(`removed network namespace ${ns}`));
    removed++;
  }
  for (const ns of new NetnsResolver().list()) {
    let tables: string[];
    try {
      tables = nft(ns.path, 'list', 'tables').split('\n');
    } catch {
      continue; // no nftables there, or the namespace is gone
    }
    for (const line of tables) {
      const m = new RegExp(`^table inet (${TABLE_PREFIX}[0-9a-f]{8})$`).exec(line.trim());
      if (!m) continue;
      try {
        nft(ns.path, 'delete', 'table', 'inet', m[1]);
      } catch {
        continue; // owned by a tracepkt that is still running: not ours to remove
      }
      io.out(shown(`removed nftables table inet ${m[1]} in namespace ${ns.name ?? ns.inode}`));
      removed++;
    }
  }
  for (const f of removeLeftoverFilters()) {
    io.out(shown(`removed tc filter pref ${f.pref} on ${f.dev}'s egress${f.netns ? ` in ${f.netns}` : ''} (tracepkt mangle, pid ${f.pid})`));
    removed++;
  }
  if (removed === 0) io.out('nothing to clean up');
  return 0;
}
