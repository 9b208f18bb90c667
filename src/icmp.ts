/** ICMP and ICMPv6 error messages in words (RFC 792, RFC 4443). */

const V4: Record<number, [string, Record<number, string>]> = {
  3: ['destination unreachable', { 0: 'network unreachable', 1: 'host unreachable', 2: 'protocol unreachable', 3: 'port unreachable', 4: 'fragmentation needed', 9: 'network administratively prohibited', 10: 'host administratively prohibited', 13: 'communication administratively prohibited' }],
  11: ['time exceeded', { 0: 'TTL exceeded in transit', 1: 'fragment reassembly time exceeded' }],
  12: ['parameter problem', {}],
};

const V6: Record<number, [string, Record<number, string>]> = {
  1: ['destination unreachable', { 0: 'no route to destination', 1: 'administratively prohibited', 3: 'address unreachable', 4: 'port unreachable', 5: 'source address failed policy', 6: 'reject route' }],
  2: ['packet too big', {}],
  3: ['time exceeded', { 0: 'hop limit exceeded in transit', 1: 'fragment reassembly time exceeded' }],
  4: ['parameter problem', {}],
};

/** "destination unreachable (host unreachable)", "packet too big (MTU 1280)". */
export function describeIcmpError(family: number, type: number, code: number, mtu: number | null = null): string {
  const entry = (family === 4 ? V4 : V6)[type];
  if (!entry) return `ICMP${family === 6 ? 'v6' : ''} type ${type} code ${code}`;
  const detail = entry[1][code] ?? (Object.keys(entry[1]).length ? `code ${code}` : null);
  const parts = [detail, mtu !== null ? `MTU ${mtu}` : null].filter(Boolean);
  return parts.length ? `${entry[0]} (${parts.join(', ')})` : entry[0];
}
