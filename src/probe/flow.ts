/**
 * A TCP/UDP probe's own flow, fixed before anything is loaded so that the
 * kernel programs match it exactly (addresses, protocol and both ports):
 *
 * - the source address is the one the sender's namespace routes the target
 *   from (`ip route get`); the probe binds it, so the kernel cannot pick
 *   another;
 * - the source port is free there, outside the kernel's ephemeral range (no
 *   connection of the host's can take it meanwhile), outside the ports the
 *   administrator reserved, and outside Kubernetes' default NodePort range
 *   (a NodePort rule would rewrite or catch the probe's packets).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import type { FlowTuple } from '../bpf/config';
import { TracepktError } from '../errors';
import { inNetns } from '../names/netns-path';
import type { Native } from '../native';
import { randomInt } from '../random';

const run = promisify(execFile);

/** Kubernetes' default --service-node-port-range. */
export const NODE_PORTS: readonly [number, number] = [30000, 32767];
/** Below: well-known and registered ports of services a host may run. */
const LOWEST = 10000;

/** "32768\t60999" → [32768, 60999]. */
export function parsePortRange(text: string): [number, number] | null {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** "8080,9000-9010" (ip_local_reserved_ports) → the ranges. */
export function parseReservedPorts(text: string): [number, number][] {
  return text.trim() === '' ? [] : text.trim().split(',').map((part) => {
    const [a, b = a] = part.split('-').map(Number);
    return [a, b] as [number, number];
  });
}

/** Local ports in use, from /proc/net/{tcp,udp}{,6} text ("sl local_address ..." lines, address:PORT in hex). */
export function portsInUse(tables: readonly string[]): Set<number> {
  const used = new Set<number>();
  for (const table of tables) {
    for (const line of table.split('\n').slice(1)) {
      const m = /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s/i.exec(line);
      if (m) used.add(parseInt(m[1], 16));
    }
  }
  return used;
}

/** A port outside every range given and not in use, picked at random; null if none is left. */
export function pickPort(excluded: readonly (readonly [number, number])[], used: ReadonlySet<number>, random = randomInt): number | null {
  const free = (p: number) => !used.has(p) && !excluded.some(([a, b]) => p >= a && p <= b);
  const candidates: number[] = [];
  for (let p = LOWEST; p <= 65535; p++) if (free(p)) candidates.push(p);
  return candidates.length ? candidates[random(candidates.length)] : null;
}

/** What the sender's namespace says about its ports (read from inside it: /proc/sys/net and /proc/net are per namespace). */
function readPortState(native: Native, netnsPath: string | undefined): { ephemeral: [number, number]; reserved: [number, number][]; used: Set<number> } {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const inside = <T>(fn: () => T): T => {
    if (!netnsPath) return fn();
    native.enterNetns(netnsPath);
    try {
      return fn();
    } finally {
      native.leaveNetns();
    }
  };
  return inside(() => ({
    ephemeral: parsePortRange(read('/proc/sys/net/ipv4/ip_local_port_range')) ?? [32768, 60999],
    reserved: parseReservedPorts(read('/proc/sys/net/ipv4/ip_local_reserved_ports')),
    used: portsInUse(['tcp', 'tcp6', 'udp', 'udp6'].map((t) => read(`/proc/thread-self/net/${t}`))),
  }));
}

/** The source address the sender's namespace would use towards `target`; null without a route. */
export async function sourceAddress(target: string, family: 4 | 6, netnsPath: string | undefined): Promise<string | null> {
  const argv = inNetns(netnsPath, ['ip', `-${family}`, '-j', 'route', 'get', target]);
  try {
    const { stdout } = await run(argv[0], argv.slice(1), { encoding: 'utf8' });
    const routes = JSON.parse(stdout) as { prefsrc?: string }[];
    return routes[0]?.prefsrc ?? null;
  } catch {
    return null; // no route: the probe will fail there, and the journey says why
  }
}

export async function probeFlow(
  native: Native,
  o: { proto: 'tcp' | 'udp'; target: string; family: 4 | 6; port: number; netnsPath?: string },
): Promise<FlowTuple> {
  const src = (await sourceAddress(o.target, o.family, o.netnsPath)) ?? (o.family === 4 ? '0.0.0.0' : '::');
  const state = readPortState(native, o.netnsPath);
  const sport = pickPort([state.ephemeral, NODE_PORTS, ...state.reserved], state.used);
  if (sport === null) {
    throw new TracepktError(`no free source port for the probe outside the ephemeral range ${state.ephemeral.join('-')} and the NodePort range ${NODE_PORTS.join('-')}`);
  }
  return { family: o.family, proto: o.proto === 'tcp' ? 6 : 17, src, dst: o.target, sport, dport: o.port };
}
