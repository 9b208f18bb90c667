/**
 * `tracepkt demo`: a Docker-like lab in throwaway namespaces — a "host"
 * with bridge docker0 and Docker-style iptables rules, a "container" behind
 * a veth pair — a ping traced into it, and the lab removed. Nothing on the
 * real host is touched.
 */
import { shown } from '../render/shown';
import { Lab } from '../lab/lab';
import { requireTracingPrivileges } from '../privileges';
import type { Output } from './output';
import { traceCommand } from './trace';

export const DEMO = {
  bridge: 'docker0',
  host: { v4: '172.17.0.1', v6: 'fd00:17::1' },
  container: { v4: '172.17.0.2', v6: 'fd00:17::2' },
} as const;

/** Builds the demo topology, IPv4 and IPv6; the caller destroys the lab. */
export function buildDemoLab(lab: Lab): { host: string; container: string; veth: string } {
  const host = lab.netns('host');
  const container = lab.netns('ctr');
  const veth = `veth${lab.id}`;
  lab.veth(host, veth, container, 'eth0');
  lab.bridge(host, DEMO.bridge, veth);
  for (const [v, len] of [['v4', 16], ['v6', 64]] as const) {
    lab.addr(host, DEMO.bridge, `${DEMO.host[v]}/${len}`);
    lab.addr(container, 'eth0', `${DEMO.container[v]}/${len}`);
    lab.route(container, 'default', 'via', DEMO.host[v]);
  }
  // Rules in the style Docker writes: masquerade what leaves the bridge's
  // subnet, let traffic from the bridge in.
  lab.exec(host, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', '172.17.0.0/16', '!', '-o', DEMO.bridge, '-j', 'MASQUERADE');
  lab.exec(host, 'iptables', '-A', 'INPUT', '-i', DEMO.bridge, '-j', 'ACCEPT');
  return { host, container, veth };
}

export async function demoCommand(io: Output, signal?: AbortSignal, colour = false): Promise<number> {
  requireTracingPrivileges();
  const lab = new Lab();
  try {
    const { host, container, veth } = buildDemoLab(lab);
    io.err(shown(`demo lab: namespace ${host} (bridge ${DEMO.bridge}, port ${veth}) and ${container} (eth0 ${DEMO.container.v4})`));
    return await traceCommand({ target: DEMO.container.v4, count: 1, timeout: 2, from: host, json: false, colour }, io, signal);
  } finally {
    lab.destroy();
  }
}
