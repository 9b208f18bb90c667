/**
 * What judges packets in one network namespace: nftables base chains
 * (iptables-nft rules live in those too) and iptables-legacy tables, each at
 * a hook and priority, and the checkpoints that bracket them.
 */
import { FAMILY_NAMES, hookName, LEGACY_TABLES, NFPROTO_IPV4, NFPROTO_IPV6, PRIORITY_MAX, PRIORITY_MIN } from './hooks';
import type { ChainInfo } from './nftables';

export interface Judge {
  backend: 'nftables' | 'iptables-legacy';
  /** nft family name: ip, ip6 or inet. */
  tableFamily: string;
  table: string;
  chain: string;
  hooknum: number;
  priority: number;
  /** NFPROTO_IPV4 / NFPROTO_IPV6: the families whose packets it sees. */
  pfs: number[];
}

/** A table tracepkt creates (this run's or another's): `inet tracepkt_` and 8 hex digits. */
export const isTracepktTable = (name: string): boolean => /^tracepkt_[0-9a-f]{8}$/.test(name);

/** The base chains that judge packets: every table's but tracepkt's own (this run's and other runs'). */
export function judgesFromChains(chains: readonly ChainInfo[]): Judge[] {
  const judges: Judge[] = [];
  for (const c of chains) {
    // Hooks 0-4 are the IP path's; inet's ingress (5) is not one a BPF netfilter link can join.
    if (c.hooknum === undefined || c.hooknum > 4 || c.priority === undefined || isTracepktTable(c.table)) continue;
    const pfs = c.family === 1 ? [NFPROTO_IPV4, NFPROTO_IPV6] : c.family === NFPROTO_IPV4 || c.family === NFPROTO_IPV6 ? [c.family] : [];
    if (pfs.length === 0) continue; // bridge, arp, netdev: not on the IP path
    judges.push({ backend: 'nftables', tableFamily: FAMILY_NAMES[c.family], table: c.table, chain: c.name, hooknum: c.hooknum, priority: c.priority, pfs });
  }
  return judges;
}

/** `tables` as /proc/net/ip_tables_names (pf IPv4) or ip6_tables_names (IPv6) lists them. */
export function judgesFromLegacy(pf: number, tables: readonly string[]): Judge[] {
  const judges: Judge[] = [];
  for (const table of tables) {
    for (const [hook, priority] of Object.entries(LEGACY_TABLES[table] ?? {})) {
      const hooknum = Number(hook);
      judges.push({
        backend: 'iptables-legacy',
        tableFamily: pf === NFPROTO_IPV4 ? 'ip' : 'ip6',
        table,
        chain: hookName(hooknum),
        hooknum,
        priority: priority!,
        pfs: [pf],
      });
    }
  }
  return judges;
}

/**
 * Checkpoints for one (family, hook): index 0 at the hook's entry, index i
 * just after the judges of the i-th distinct priority (priority + 1: the
 * kernel refuses a BPF hook at a priority that is taken; src/netfilter/watch.ts
 * steps further up when + 1 is taken too).
 */
export interface HookPlan {
  pf: number;
  hooknum: number;
  /** Distinct judge priorities, ascending: band i (1-based) holds priorities[i - 1]. */
  priorities: number[];
  /** Where each checkpoint index is attached. */
  checkpointPriorities: number[];
}

export function planCheckpoints(judges: readonly Judge[], maxCheckpoints: number): HookPlan[] {
  const byHook = new Map<string, { pf: number; hooknum: number; prios: Set<number> }>();
  for (const j of judges) {
    for (const pf of j.pfs) {
      const key = `${pf}/${j.hooknum}`;
      if (!byHook.has(key)) byHook.set(key, { pf, hooknum: j.hooknum, prios: new Set() });
      byHook.get(key)!.prios.add(j.priority);
    }
  }
  const plans: HookPlan[] = [];
  for (const { pf, hooknum, prios } of byHook.values()) {
    // A judge at the very last priority cannot be followed; those at the
    // very first are entered together with the hook.
    const priorities = [...prios].filter((p) => p < PRIORITY_MAX).sort((a, b) => a - b).slice(0, maxCheckpoints - 1);
    plans.push({ pf, hooknum, priorities, checkpointPriorities: [PRIORITY_MIN + 1, ...priorities.map((p) => p + 1)] });
  }
  return plans.sort((a, b) => a.pf - b.pf || a.hooknum - b.hooknum);
}

/** The judges in band `index` of a plan (the judges at its priority seeing that family). */
export function judgesInBand(judges: readonly Judge[], plan: HookPlan, band: number): Judge[] {
  const priority = plan.priorities[band - 1];
  return judges.filter((j) => j.hooknum === plan.hooknum && j.priority === priority && j.pfs.includes(plan.pf));
}
