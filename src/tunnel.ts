/** A tunnel's outer packet in words, for every renderer and the verdict alike. */
import { withPort } from './addr';
import type { TunnelInfo } from './events';
import { DEFAULT_UDP_TUNNELS } from './bpf/config';

/** "vxlan 42", "geneve 7", "gre key 5", "gretap", "ipip", "wireguard". */
export function tunnelName(t: TunnelInfo): string {
  if (t.id === null) return t.type;
  return t.type === 'gre' || t.type === 'gretap' ? `${t.type} key ${t.id}` : `${t.type} ${t.id}`;
}

/** "vxlan 42: 192.168.77.1 -> 192.168.77.2": the tunnel and its endpoints. */
export function tunnelLabel(t: TunnelInfo): string {
  return `${tunnelName(t)}: ${t.src} -> ${t.dst}`;
}

/** "vxlan 42: 192.168.77.1:41234 -> 192.168.77.2:4789", with the outer ports where there are. */
export function tunnelDetail(t: TunnelInfo): string {
  const end = (addr: string, port: number) => (port ? withPort(addr, port) : addr);
  return `${tunnelName(t)}: ${end(t.src, t.sport)} -> ${end(t.dst, t.dport)}`;
}

/** Two sightings in the same tunnel: same kind, id and endpoints. */
export function sameTunnel(a: TunnelInfo | null | undefined, b: TunnelInfo | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.type === b.type && a.id === b.id && a.src === b.src && a.dst === b.dst;
}

/**
 * The tunnel a route lookup's flow is for, where it is one a tunnel device
 * builds towards its remote endpoint (bpf/routes.h ties those to the probe):
 * UDP to an overlay's port, GRE, IP in IP or IPv6 in IP. Null otherwise.
 */
export function tunnelOfFlow(proto: number, dport: number): 'vxlan' | 'geneve' | 'gre' | 'ipip' | null {
  if (proto === 17) return DEFAULT_UDP_TUNNELS.find((t) => t.port === dport)?.tunnel ?? null;
  return proto === 47 ? 'gre' : proto === 4 || proto === 41 ? 'ipip' : null;
}
