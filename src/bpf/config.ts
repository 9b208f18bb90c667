/** Encodes struct tp_config (bpf/tracepkt.h) for the programs' .rodata. */
import { addressBytes } from '../addr';
import type { PcapFilter } from '../filter/pcap';
import { CONFIG, Match, Reader, Tunnel, TUPLE, UDP_TUNNEL, UDP_TUNNELS } from './layout';

const T = TUPLE;

/** A flow as it leaves its sender: addresses, protocol and ports. */
export interface FlowTuple {
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** How bytes beyond an sk_buff's linear part are read (bpf/packet.h). */
export type SkbReader = { kind: 'linear' } | { kind: 'dynptr' } | { kind: 'pages'; pageOffsetBase: bigint; vmemmapBase: bigint };

export interface KernelFilter {
  /**
   * Recognise ping probes by their marker (default), packets by a compiled
   * filter (passive tracing), or one flow exactly, either way and through
   * NAT (TCP/UDP probes).
   */
  match?: 'marker' | 'filter' | 'flow';
  /** For match "filter": the pcap filter, compiled for raw IP (src/filter/pcap.ts); none: every packet. */
  pcap?: PcapFilter;
  /** For match "flow": the probe's flow. */
  flow?: FlowTuple;
  /** Default: linear reads only. */
  reader?: SkbReader;
  /** The 8 bytes the probe carries in its ICMP payload. */
  marker: Buffer;
  /** Where the marker sits, counted from the start of the ICMP header. */
  markerOffset: number;
  /** 4 or 6 to trace one family only, 0 for both. */
  family: 0 | 4 | 6;
  /** Where the probe goes: ties the sender's own route lookup to it. */
  target?: string;
  /** Bytes of each sighted packet to capture (for --pcap), up to SNAP_MAX; 0 or absent: none. */
  snapLen?: number;
  /** UDP destination ports that carry tunnels, looked into for the probe (default: DEFAULT_UDP_TUNNELS). */
  udpTunnels?: readonly UdpTunnel[];
}

export interface UdpTunnel {
  port: number;
  tunnel: 'vxlan' | 'geneve';
}

/**
 * The ports overlays use: VXLAN's IANA port (Docker Swarm, Calico), the
 * Linux kernel's default VXLAN port (Flannel, Cilium), Geneve's (OVN, Cilium).
 */
export const DEFAULT_UDP_TUNNELS: readonly UdpTunnel[] = [
  { port: 4789, tunnel: 'vxlan' },
  { port: 8472, tunnel: 'vxlan' },
  { port: 6081, tunnel: 'geneve' },
];

/**
 * How long after the probe is received a route lookup on that CPU may still
 * be made for it. A packet's receive processing takes microseconds on real
 * hardware, but more than a millisecond under emulation (the 6.1 kernel
 * matrix missed lookups at 1 ms). Later, unrelated lookups stay out anyway:
 * the next packet received on that CPU clears the slot, and a lookup must be
 * between the probe's addresses.
 */
export const CURRENT_PACKET_NS = 20_000_000;

/**
 * How long a packet recognised by its sk_buff address (filtered and flow
 * tracing, through NAT) stays recognised without being seen again; also how
 * long learned flows, fragments and echoes hold. A packet crosses the kernel
 * in microseconds to milliseconds; a reused address must not inherit its
 * identity for longer (and even then only with a tuple NAT could have made).
 */
export const TRACKED_PACKET_NS = 1_000_000_000;

export function encodeConfig(filter: KernelFilter): Buffer {
  if (filter.marker.length !== CONFIG.marker[1]) {
    throw new RangeError(`marker must be ${CONFIG.marker[1]} bytes`);
  }
  const buf = Buffer.alloc(CONFIG.$size);
  filter.marker.copy(buf, CONFIG.marker[0]);
  buf.writeUInt16LE(filter.markerOffset, CONFIG.marker_offset[0]);
  buf.writeUInt8(filter.family, CONFIG.family[0]);
  buf.writeUInt32LE(CURRENT_PACKET_NS, CONFIG.current_ns[0]);
  buf.writeUInt16LE(filter.snapLen ?? 0, CONFIG.snap_len[0]);
  if (filter.target) addressBytes(filter.target).copy(buf, CONFIG.target[0]);
  // Packets remembered by sk_buff, flows learned through NAT, fragments and echoes: how long each holds.
  buf.writeUInt32LE(TRACKED_PACKET_NS, CONFIG.track_ns[0]);
  const reader = filter.reader ?? { kind: 'linear' };
  buf[CONFIG.reader[0]] = reader.kind === 'dynptr' ? Reader.DYNPTR : reader.kind === 'pages' ? Reader.PAGES : Reader.LINEAR;
  if (reader.kind === 'pages') {
    buf.writeBigUInt64LE(reader.pageOffsetBase, CONFIG.page_offset_base[0]);
    buf.writeBigUInt64LE(reader.vmemmapBase, CONFIG.vmemmap_base[0]);
  }
  const tunnels = filter.udpTunnels ?? DEFAULT_UDP_TUNNELS;
  if (tunnels.length > UDP_TUNNELS) throw new RangeError(`at most ${UDP_TUNNELS} UDP tunnel ports`);
  tunnels.forEach((t, i) => {
    const at = CONFIG.udp_tunnels[0] + i * UDP_TUNNEL.$size;
    buf.writeUInt16LE(t.port, at + UDP_TUNNEL.port[0]);
    buf[at + UDP_TUNNEL.tunnel[0]] = t.tunnel === 'vxlan' ? Tunnel.VXLAN : Tunnel.GENEVE;
  });
  if (filter.match === 'filter') {
    buf[CONFIG.match[0]] = Match.FILTER;
    // The filter's code goes into the object itself (src/bpf/filter-slot.ts): here only that it is there.
    if (filter.pcap) {
      if (filter.pcap.linktype !== 'raw') throw new RangeError('the tracing programs see packets from their IP header: compile the filter for raw IP');
      buf[CONFIG.filter[0]] = 1;
      buf.writeUInt16LE(filter.pcap.reach, CONFIG.filter_reach[0]);
    }
  } else if (filter.match === 'flow') {
    if (!filter.flow) throw new RangeError('match "flow" needs the flow');
    buf[CONFIG.match[0]] = Match.FLOW;
    encodeTuple(buf, CONFIG.flow.$offset, filter.flow);
  }
  return buf;
}

/** Writes struct tp_tuple at `offset`. */
export function encodeTuple(buf: Buffer, offset: number, t: FlowTuple): void {
  addressBytes(t.src).copy(buf, offset + T.saddr[0]);
  addressBytes(t.dst).copy(buf, offset + T.daddr[0]);
  buf.writeUInt16LE(t.sport, offset + T.sport[0]);
  buf.writeUInt16LE(t.dport, offset + T.dport[0]);
  buf[offset + T.family[0]] = t.family;
  buf[offset + T.proto[0]] = t.proto;
}
