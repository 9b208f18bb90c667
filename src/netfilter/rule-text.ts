/**
 * The text of a rule as `nft` prints it, for the rules that decided. Asked
 * of nft itself (stateless, so counters do not show) in the rule's
 * namespace: the only faithful printer of nftables expressions is nft.
 */
import { execFile } from 'node:child_process';
import type { NetfilterEvent } from '../events';
import { inNetns } from '../names/netns-path';

/**
 * Rule handle → text, from `nft -a` output ("... # handle 7"). A comment set
 * through netlink may hold a line break and a handle of its own: a handle
 * seen twice is one whose text cannot be told, so it has none.
 */
export function parseRuleHandles(listing: string): Map<number, string> {
  const rules = new Map<number, string>();
  const twice = new Set<number>();
  for (const line of listing.split('\n')) {
    const m = /^\s+(.*\S)\s+# handle (\d+)$/.exec(line);
    if (!m || /^(chain|table|type)\b/.test(m[1])) continue;
    const handle = Number(m[2]);
    if (rules.has(handle)) twice.add(handle);
    rules.set(handle, m[1]);
  }
  for (const handle of twice) rules.delete(handle);
  return rules;
}

function listChain(netnsPath: string | null, family: string, table: string, chain: string): Promise<string> {
  const nft = ['nft', '-s', '-a', 'list', 'chain', family, table, chain];
  const [cmd, ...args] = inNetns(netnsPath, nft);
  return new Promise((resolve) => execFile(cmd, args, { encoding: 'utf8' }, (err, stdout) => resolve(err ? '' : stdout)));
}

/** Fills `rule` on every event that names a rule handle; leaves null what nft cannot show. */
export async function fillRuleTexts(events: NetfilterEvent[], netnsPath: (netns: number) => string | null): Promise<void> {
  const listings = new Map<string, Promise<Map<number, string>>>();
  await Promise.all(
    events
      .filter((e) => e.handle !== null && e.backend === 'nftables')
      .map(async (e) => {
        const key = `${e.netns} ${e.table_family} ${e.table} ${e.chain}`;
        if (!listings.has(key)) {
          listings.set(key, listChain(netnsPath(e.netns), e.table_family, e.table, e.chain).then(parseRuleHandles));
        }
        e.rule = (await listings.get(key)!).get(e.handle!) ?? null;
      }),
  );
}
