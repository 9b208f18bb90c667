/** TARGET on the command line → one IP address of the wanted family. */
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import { TracepktError } from '../errors';

export interface Target {
  /** What the user typed. */
  input: string;
  address: string;
  family: 4 | 6;
}

/** Looks like an address, even a broken one: report it as malformed rather than unresolvable. */
function looksLikeAddress(s: string): boolean {
  return /^[\d.]+$/.test(s) || (s.includes(':') && /^[\da-fA-F:.]+$/.test(s));
}

export async function resolveTarget(input: string, family?: 4 | 6): Promise<Target> {
  if (input.trim() === '') throw new TracepktError('empty target: give an IP address or a host name');
  const ipFamily = net.isIP(input);
  if (ipFamily === 4 || ipFamily === 6) {
    if (family && family !== ipFamily) {
      throw new TracepktError(`${input} is an IPv${ipFamily} address, but -${family} asks for IPv${family}`);
    }
    return { input, address: input, family: ipFamily };
  }
  if (looksLikeAddress(input)) throw new TracepktError(`malformed address: ${input}`);
  try {
    const found = await dns.lookup(input, { family: family ?? 0 });
    return { input, address: found.address, family: found.family === 6 ? 6 : 4 };
  } catch {
    const which = family ? ` to an IPv${family} address` : '';
    throw new TracepktError(`cannot resolve host ${input}${which}`);
  }
}
