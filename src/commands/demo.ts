/**
 * `tracepkt demo`: a Docker-like lab in throwaway namespaces — a "host"
 * with bridge docker0 and a "container" behind a veth pair — a ping traced
 * into it, and the lab removed. Nothing on the real host is touched.
 */
import { Lab } from '../lab/lab';
import { requireTracingPrivileges } from '../privileges';
import type { Output } from './output';
import { traceCommand } from './trace';

export const DEMO = {
  bridge: 'docker0',
  bridgeAddr: '172.17.0.1/16',
  containerAddr: '172.17.0.2/16',
  target: '172.17.0.2',
} as const;

/** Builds the demo topology; the caller destroys the lab. */
export function buildDemoLab(lab: Lab): { host: string; container: string; veth: string } {
  const host = lab.netns('host');
  const container = lab.netns('ctr');
  const veth = `veth${lab.id}`;
  lab.veth(host, veth, container, 'eth0');
  lab.bridge(host, DEMO.bridge, veth);
  lab.addr(host, DEMO.bridge, DEMO.bridgeAddr);
  lab.addr(container, 'eth0', DEMO.containerAddr);
  lab.route(container, 'default', 'via', DEMO.bridgeAddr.split('/')[0]);
  return { host, container, veth };
}

export async function demoCommand(io: Output, signal?: AbortSignal): Promise<number> {
  requireTracingPrivileges();
  const lab = new Lab();
  try {
    const { host, container, veth } = buildDemoLab(lab);
    io.err(`demo lab: namespace ${host} (bridge ${DEMO.bridge}, port ${veth}) and ${container} (eth0 ${DEMO.target})`);
    return await traceCommand({ target: DEMO.target, count: 1, timeout: 2, from: host, json: false }, io, signal);
  } finally {
    lab.destroy();
  }
}
