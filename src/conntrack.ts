/**
 * Conntrack entries as the kernel's records carry them (struct tp_conntrack):
 * what the state, the status bits and the NAT mapping are called, and the
 * short form the table and the path picture show.
 */
import { withPort } from './addr';
import type { ConntrackInfo, ConntrackTuple } from './events';
import { hasPorts } from './ip';

/** enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h), by bit. */
const STATUS_BITS = [
  'expected', 'seen_reply', 'assured', 'confirmed', 'src_nat', 'dst_nat', 'seq_adjust', 'src_nat_done',
  'dst_nat_done', 'dying', 'fixed_timeout', 'template', 'nat_clash', 'helper', 'offload', 'hw_offload',
] as const;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;

export function statusNames(status: number): string[] {
  return STATUS_BITS.filter((_, bit) => status & (1 << bit));
}

/** enum ip_conntrack_info (skb->_nfct's low bits): ESTABLISHED 0, RELATED 1, NEW 2, then the reply direction's (+3). */
export function stateOf(ctinfo: number): { state: 'new' | 'established' | 'related'; direction: 'original' | 'reply' } {
  const reply = ctinfo >= 3 && ctinfo < 7;
  const base = reply ? ctinfo - 3 : ctinfo;
  return { state: base === 2 ? 'new' : base === 1 ? 'related' : 'established', direction: reply ? 'reply' : 'original' };
}

const at = (addr: string, port: number, proto: number) => (hasPorts(proto) ? withPort(addr, port) : addr);

/**
 * The mapping NAT made, as it rewrites the original direction: DNAT changes
 * where the first packet goes (the reply comes from there), SNAT where it
 * comes from (the reply goes back there).
 */
export function natOf(status: number, proto: number, original: ConntrackTuple, reply: ConntrackTuple): string | null {
  const parts: string[] = [];
  if (status & IPS_DST_NAT && (original.dst !== reply.src || original.dport !== reply.sport)) {
    parts.push(`dnat ${at(original.dst, original.dport, proto)}->${at(reply.src, reply.sport, proto)}`);
  }
  if (status & IPS_SRC_NAT && (original.src !== reply.dst || original.sport !== reply.dport)) {
    parts.push(`snat ${at(original.src, original.sport, proto)}->${at(reply.dst, reply.dport, proto)}`);
  }
  return parts.length ? parts.join(' ') : null;
}

const SHORT_STATE: Record<ConntrackInfo['state'], string> = { new: 'new', established: 'est', related: 'rel', untracked: 'untracked', unreadable: '?' };

/** The short form a table cell shows, e.g. "ct new", "ct est reply dnat 10.0.0.1:8080->172.17.0.2:80 zone 5". */
export function conntrackShort(ct: ConntrackInfo): string {
  const words = ['ct', SHORT_STATE[ct.state]];
  if (ct.direction === 'reply') words.push('reply');
  if (ct.nat) words.push(ct.nat);
  if (ct.zone) words.push(`zone ${ct.zone}`);
  if (ct.mark) words.push(`mark 0x${ct.mark.toString(16)}`);
  return words.join(' ');
}

/** The long form a sentence uses: "new (original direction), dnat 10.0.0.1:8080->172.17.0.2:80, zone 5". */
export function describeConntrack(ct: ConntrackInfo): string {
  if (ct.state === 'untracked') return 'untracked';
  if (ct.state === 'unreadable') return 'attached, but this kernel does not describe it';
  const words = [`${ct.state} (${ct.direction} direction)`];
  if (ct.nat) words.push(ct.nat);
  if (ct.zone) words.push(`zone ${ct.zone}`);
  if (ct.mark) words.push(`mark 0x${ct.mark.toString(16)}`);
  return words.join(', ');
}
