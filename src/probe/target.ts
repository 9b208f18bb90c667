/** TARGET on the command line → one IP address of the wanted family. */
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import { execFile } from 'node:child_process';
import { TracepktError } from '../errors';
import { inNetns } from '../names/netns-path';
import { looksLikeNetns, resolveNetns, SYSTEM_SPEC_ROOTS, type ResolvedNetns } from '../names/netns-spec';

export interface Target {
  /** What the user typed. */
  input: string;
  address: string;
  family: 4 | 6;
  /** How the address was chosen, where the input was a namespace with several. */
  note?: string;
}

/** An interface's address, as `ip -j addr show` lists it. */
interface IfAddress {
  ifname: string;
  address: string;
  family: 4 | 6;
}

/** The global addresses of a namespace's interfaces (loopback aside), from `ip -j addr show`. */
export function globalAddresses(ipJson: string): IfAddress[] {
  let links: { ifname?: string; flags?: string[]; addr_info?: { family?: string; local?: string; scope?: string }[] }[];
  try {
    links = JSON.parse(ipJson);
  } catch {
    return [];
  }
  if (!Array.isArray(links)) return [];
  return links.flatMap((l) =>
    l.flags?.includes('LOOPBACK') || !Array.isArray(l.addr_info)
      ? []
      : l.addr_info
          .filter((a) => a.scope === 'global' && typeof a.local === 'string' && (a.family === 'inet' || a.family === 'inet6'))
          .map((a) => ({ ifname: String(l.ifname ?? '?'), address: a.local!, family: a.family === 'inet' ? (4 as const) : (6 as const) })),
  );
}

/**
 * A namespace as a target: its address of the wanted family (IPv4 first
 * when none is asked for), the first interface's where it has several, and
 * a note saying which of them was taken.
 */
export function chooseAddress(ns: ResolvedNetns, addresses: readonly IfAddress[], family?: 4 | 6): Pick<Target, 'address' | 'family' | 'note'> {
  const wanted = family ?? (addresses.some((a) => a.family === 4) ? 4 : 6);
  const candidates = addresses.filter((a) => a.family === wanted);
  if (candidates.length === 0) throw new TracepktError(`${ns.name} has no global IPv${wanted} address to send to: give the address`);
  const [first] = candidates;
  const note = candidates.length > 1 ? `${ns.name} has ${candidates.length} IPv${wanted} addresses (${candidates.map((a) => `${a.ifname} ${a.address}`).join(', ')}): tracing to ${first.address}` : undefined;
  return { address: first.address, family: wanted, note };
}

function ipAddrIn(ns: ResolvedNetns): Promise<string> {
  const [cmd, ...args] = inNetns(ns.path, ['ip', '-j', 'addr', 'show']);
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new TracepktError(`cannot list the addresses of ${ns.name}: ${stderr.trim() || err.message}`)) : resolve(stdout))),
  );
}

/**
 * The namespace a target names, if it names one. A bare word is a namespace
 * only by its exact name (an ip netns name, a container's name): a host name
 * made of hex digits is never taken for a container id prefix. A bare name
 * several containers have is refused, never passed to DNS.
 */
function targetNetns(input: string): ResolvedNetns | null {
  let ns: ResolvedNetns;
  try {
    ns = resolveNetns(input, SYSTEM_SPEC_ROOTS);
  } catch (err) {
    if (looksLikeNetns(input) || /names \d+ containers/.test((err as Error).message)) throw err;
    return null;
  }
  return looksLikeNetns(input) || ns.name === input || ns.name.endsWith(`:${input}`) ? ns : null;
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
  const ns = targetNetns(input);
  if (ns) return { input, ...chooseAddress(ns, globalAddresses(await ipAddrIn(ns)), family) };
  try {
    const found = await dns.lookup(input, { family: family ?? 0 });
    return { input, address: found.address, family: found.family === 6 ? 6 : 4 };
  } catch {
    const which = family ? ` to an IPv${family} address` : '';
    throw new TracepktError(`cannot resolve host ${input}${which}`);
  }
}
