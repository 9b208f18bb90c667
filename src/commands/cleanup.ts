/**
 * `tracepkt cleanup`: removes what a killed run could leave behind. BPF
 * programs and links die with the process (they are owned by its file
 * descriptors); demo labs' namespaces are bind mounts and outlive it.
 */
import { leftoverLabNamespaces, removeNamespace } from '../lab/lab';
import { requireTracingPrivileges } from '../privileges';
import type { Output } from './output';

export function cleanupCommand(io: Output): number {
  requireTracingPrivileges();
  const left = leftoverLabNamespaces();
  for (const ns of left) {
    removeNamespace(ns);
    io.out(`removed network namespace ${ns}`);
  }
  if (left.length === 0) io.out('nothing to clean up');
  return 0;
}
