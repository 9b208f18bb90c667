/** Netfilter's vocabulary: hooks, verdicts, and where iptables-legacy tables sit. */

/** NF_INET_* → the name iptables gives the hook. */
export const HOOK_NAMES = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;

export function hookName(hooknum: number): string {
  return HOOK_NAMES[hooknum] ?? `hook${hooknum}`;
}

/** NF_DROP, NF_ACCEPT, ... and nf_tables' own codes (include/uapi/linux/netfilter/nf_tables.h). */
const VERDICTS: Record<number, string> = {
  0: 'DROP',
  1: 'ACCEPT',
  2: 'STOLEN',
  3: 'QUEUE',
  4: 'REPEAT',
  5: 'STOP',
  [-1]: 'CONTINUE',
  [-2]: 'BREAK',
  [-3]: 'JUMP',
  [-4]: 'GOTO',
  [-5]: 'RETURN',
};

export function verdictName(code: number): string {
  // NF_QUEUE verdicts carry the queue number in the upper 16 bits.
  return VERDICTS[code] ?? VERDICTS[code & 0xff] ?? `verdict ${code}`;
}

/** NFPROTO_* → the nft family name of a table. */
export const FAMILY_NAMES: Record<number, string> = { 1: 'inet', 2: 'ip', 10: 'ip6', 3: 'arp', 5: 'netdev', 7: 'bridge' };

export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

/**
 * iptables-legacy tables: hook → priority (include/uapi/linux/netfilter_ipv4.h;
 * the same values for IPv6). nat filters DNAT early and SNAT late.
 */
export const LEGACY_TABLES: Record<string, Partial<Record<number, number>>> = {
  raw: { 0: -300, 3: -300 },
  mangle: { 0: -150, 1: -150, 2: -150, 3: -150, 4: -150 },
  nat: { 0: -100, 1: 100, 3: -100, 4: 100 },
  filter: { 1: 0, 2: 0, 3: 0 },
  security: { 1: 50, 2: 50, 3: 50 },
};

/** BPF netfilter links refuse NF_IP_PRI_FIRST and NF_IP_PRI_LAST themselves. */
export const PRIORITY_MIN = -2147483647;
export const PRIORITY_MAX = 2147483646;
