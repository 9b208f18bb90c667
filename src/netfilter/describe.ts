/**
 * A netfilter verdict in words, for the table, the summary and the verdict
 * line alike: which chain judged the packet and what decided.
 */
import type { NetfilterEvent } from '../events';

/** "ip filter FORWARD", with the hook when the deciding chain is not the hook's own. */
export function chainLabel(ev: NetfilterEvent): string {
  const chain = `${ev.table_family} ${ev.table} ${ev.chain}`;
  return ev.chain === ev.hook ? chain : `${chain} (hook ${ev.hook})`;
}

/** What decided, in words: the rule, the policy, or what the checkpoints saw. */
export function decidedBy(ev: NetfilterEvent): string {
  if (ev.decided_by === 'policy') return `chain policy ${ev.verdict.toLowerCase()}`;
  if (ev.decided_by === 'rule') return ev.rule !== null ? `rule \`${ev.rule}\`` : `rule handle ${ev.handle}`;
  const passed = ev.verdict === 'ACCEPT';
  if (ev.backend === 'iptables-legacy') return `${passed ? 'it went through' : 'the kernel freed it there as a netfilter drop'}; iptables-legacy does not name its rules`;
  return passed ? 'it went through; the chain did not run for it' : 'the kernel freed it there as a netfilter drop; no trace named the rule';
}
