import * as net from 'node:net';

/** IP addresses: from raw bytes, formatted as `ip` prints them; and back to the bytes the kernel holds. */

export function formatIPv4(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** RFC 5952: lower case, leading zeros dropped, the longest run (≥ 2) of zero groups as "::". */
export function formatIPv6(buf: Buffer, offset: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(offset + i * 2));

  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-mapped addresses keep their dotted tail, as `ip` shows them.
  if (bestStart === 0 && bestLen === 5 && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(buf, offset + 12)}`;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

export function formatAddress(family: number, buf: Buffer, offset: number): string {
  return family === 4 ? formatIPv4(buf, offset) : formatIPv6(buf, offset);
}

/** "10.0.0.1:80", "[fd00::1]:80": an address with a port, as ss and curl write it. */
export function withPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** An IP address as the kernel holds it: 4 or 16 bytes, network order. */
export function addressBytes(address: string): Buffer {
  // IPv6 has colons, IPv4 never; SocketAddress checks the rest (net.isIPv6 would compile a 12 ms regex first).
  const sa = new net.SocketAddress({ address, family: address.includes(':') ? 'ipv6' : 'ipv4' });
  if (sa.family === 'ipv4') return Buffer.from(sa.address.split('.').map(Number));
  // A dotted IPv4 tail (::ffff:10.0.0.1) is two groups.
  const text = sa.address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) =>
    `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
  );
  const [head, tail = ''] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = text.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16), i * 2));
  return buf;
}

/** How a next hop's link-layer address is found: ARP for IPv4, neighbour discovery for IPv6. */
export function resolution(nextHop: string): string {
  return nextHop.includes(':') ? 'neighbour discovery' : 'ARP';
}
