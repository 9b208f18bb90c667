/**
 * Decodes ring-buffer batches (src/batch.ts) into events. One pass, no
 * intermediate arrays. Numbers the kernel reports (drop reasons, code
 * addresses, table ids) are named later, where names are needed.
 */
import { formatAddress } from './addr';
import { forEachRecord } from './batch';
import { EVENT_FIELDS as F, EVENT_SIZE, EventKind, HOOK_NAMES, PACKET_FIELDS as P } from './bpf/layout';
import type { CheckpointEvent, Direction, DropEvent, HopEvent, KernelEvent, PacketFields, RouteEvent, TableVerdictEvent } from './events';

const ECHO_REQUEST = new Set([8, 128]);
const ECHO_REPLY = new Set([0, 129]);
/** ICMP "fragmentation needed" (3/4) and ICMPv6 "packet too big" (2) announce an MTU. */
const announcesMtu = (family: number, type: number, code: number) => (family === 4 ? type === 3 && code === 4 : type === 2);

/**
 * The packet bytes a sighting carried (struct tp_packet, when the trace asked
 * for them), from the IP header on. Kept beside the events, not in them, so
 * JSON output stays small.
 */
export const packetBytes = new WeakMap<object, Buffer>();

/** Calls onEvent for every record in the batch; returns how many were decoded. */
export function decodeBatch(batch: Buffer, onEvent: (ev: KernelEvent) => void): number {
  let count = 0;
  forEachRecord(batch, (rec, len) => {
    if (len < EVENT_SIZE) return;
    const ev = decodeRecord(batch, rec);
    if (!ev) return;
    if (len >= P.data[0] && ev.kind !== 'route') {
      const caplen = Math.min(batch.readUInt16LE(rec + P.caplen[0]), P.data[1]);
      if (caplen > 0) packetBytes.set(ev, Buffer.from(batch.subarray(rec + P.data[0], rec + P.data[0] + caplen)));
    }
    onEvent(ev);
    count++;
  });
  return count;
}

function decodeRecord(buf: Buffer, rec: number): KernelEvent | null {
  switch (buf[rec + F.kind[0]]) {
    // One object per event, its kind first (JSON keeps the order), the kind's fields added after.
    case EventKind.HOP: {
      const ev = packetFields<HopEvent>(buf, rec, 'hop');
      ev.hook = HOOK_NAMES[buf[rec + F.hook[0]]] ?? `hook${buf[rec + F.hook[0]]}`;
      return ev;
    }
    case EventKind.NF_CHECKPOINT: {
      const ev = packetFields<CheckpointEvent>(buf, rec, 'checkpoint');
      ev.nf_hook = buf[rec + F.nf_hook[0]];
      ev.nf_pf = buf[rec + F.nf_pf[0]];
      ev.index = buf[rec + F.nf_index[0]];
      return ev;
    }
    case EventKind.DROP: {
      const ev = packetFields<DropEvent>(buf, rec, 'drop');
      ev.reason = '';
      ev.reason_code = buf.readUInt32LE(rec + F.reason[0]);
      ev.location = `0x${hex64(buf, rec + F.location[0])}`;
      return ev;
    }
    case EventKind.ROUTE:
      return decodeRoute(buf, rec);
    case EventKind.NF_TABLE: {
      const ev = packetFields<TableVerdictEvent>(buf, rec, 'xt-table');
      ev.nf_hook = buf[rec + F.nf_hook[0]];
      ev.nf_pf = buf[rec + F.nf_pf[0]];
      ev.table = readCString(buf, rec + F.gateway[0], F.gateway[1]);
      ev.priority = buf.readInt32LE(rec + F.table[0]);
      ev.verdict = buf.readUInt32LE(rec + F.reason[0]);
      return ev;
    }
    default:
      return null;
  }
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off);
}

/** A little-endian u64 in hex, without a BigInt. */
function hex64(buf: Buffer, off: number): string {
  const hi = buf.readUInt32LE(off + 4);
  const lo = buf.readUInt32LE(off).toString(16);
  return hi === 0 ? lo : hi.toString(16) + '00000000'.slice(lo.length) + lo;
}

/**
 * sk_buff addresses in hex, per event: the kernel reuses a bounded set of
 * them, so each is formatted once (keyed by the low half, checked on the high).
 */
const skbNames = new Map<number, { hi: number; name: string }>();

function skbName(buf: Buffer, off: number): string {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  const known = skbNames.get(lo);
  if (known !== undefined && known.hi === hi) return known.name;
  if (skbNames.size >= CACHE_MAX) skbNames.clear();
  const name = hex64(buf, off);
  skbNames.set(lo, { hi, name });
  return name;
}

/**
 * Address strings by their bytes: a trace sees few distinct addresses many
 * times, so each is formatted once (bounded, in case it sees many).
 */
const ipv4Names = new Map<number, string>();
const ipv6Names = new Map<string, string>();
/** Bound of each formatting cache: cleared when full. */
const CACHE_MAX = 1 << 16;

function address(family: 4 | 6, buf: Buffer, off: number): string {
  if (family === 4) {
    const key = buf.readUInt32LE(off);
    let name = ipv4Names.get(key);
    if (name === undefined) {
      if (ipv4Names.size >= CACHE_MAX) ipv4Names.clear();
      ipv4Names.set(key, (name = formatAddress(4, buf, off)));
    }
    return name;
  }
  const key = buf.toString('latin1', off, off + 16);
  let name = ipv6Names.get(key);
  if (name === undefined) {
    if (ipv6Names.size >= CACHE_MAX) ipv6Names.clear();
    ipv6Names.set(key, (name = formatAddress(6, buf, off)));
  }
  return name;
}

function readCString(buf: Buffer, off: number, size: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('latin1', off, end < 0 || end > off + size ? off + size : end);
}

/**
 * ICMP packets by type: echo request, echo reply, or an error. Other packets
 * start as requests, made replies by whoever knows the flow (src/probe/run.ts).
 */
function direction(proto: number, type: number): Direction {
  if (proto !== 1 && proto !== 58) return 'request';
  if (ECHO_REQUEST.has(type)) return 'request';
  if (ECHO_REPLY.has(type)) return 'reply';
  return 'error'; // the programs emit no other ICMP
}

/** TCP flags in tcpdump's letters. */
export function tcpFlags(bits: number): string {
  return TCP_FLAG_NAMES[bits & 0x3f];
}

const TCP_FLAG_NAMES = Array.from({ length: 64 }, (_, bits) =>
  ([[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x10, '.'], [0x20, 'U']] as const)
    .filter(([bit]) => bits & bit)
    .map(([, letter]) => letter)
    .join(''),
);

const isIcmp = (proto: number) => proto === 1 || proto === 58;

/** The fields every packet event has, in a new event of `kind` (the caller adds the kind's own). */
function packetFields<E extends KernelEvent>(buf: Buffer, rec: number, kind: E['kind']): E {
  const family = buf[rec + F.family[0]] === 6 ? 6 : 4;
  const type = buf[rec + F.icmp_type[0]];
  const code = buf[rec + F.icmp_code[0]];
  const proto = buf[rec + F.l4proto[0]];
  const dir = direction(proto, type);
  const rest = buf.readUInt32BE(rec + F.l4_rest[0]);
  const ev: PacketFields & { kind: string } = {
    kind,
    time_ns: readU64(buf, rec + F.time_ns[0]),
    skb: skbName(buf, rec + F.skb[0]),
    netns: buf.readUInt32LE(rec + F.netns[0]),
    netns_name: null,
    ifindex: buf.readUInt32LE(rec + F.ifindex[0]),
    ifname: readCString(buf, rec + F.ifname[0], F.ifname[1]),
    dir,
    family,
    src: address(family, buf, rec + F.saddr[0]),
    dst: address(family, buf, rec + F.daddr[0]),
    icmp_id: buf.readUInt16LE(rec + F.icmp_id[0]),
    icmp_seq: buf.readUInt16LE(rec + F.icmp_seq[0]),
    icmp_type: type,
    icmp_code: code,
    // An error about an echo says which one; about anything else, the probe itself.
    quotes: dir === 'error' ? (ECHO_REPLY.has(buf[rec + F.inner_type[0]]) && isIcmp(buf[rec + F.inner_proto[0]]) ? 'reply' : 'request') : null,
    mtu: dir === 'error' && announcesMtu(family, type, code) ? (family === 4 ? rest & 0xffff : rest) : null,
    proto: dir === 'error' ? buf[rec + F.inner_proto[0]] : proto,
    sport: buf.readUInt16LE(rec + F.sport[0]),
    dport: buf.readUInt16LE(rec + F.dport[0]),
    tcp_flags: proto === 6 ? tcpFlags(buf[rec + F.tcp_flags[0]]) : '',
    tcp_seq: proto === 6 ? rest : 0,
    ttl: buf[rec + F.ttl[0]],
    len: buf.readUInt16LE(rec + F.ip_len[0]),
  };
  return ev as unknown as E;
}

/** IPv4 lookups report -errno (fib_props in net/ipv4/fib_semantics.c). */
const IPV4_ERRORS: Record<number, string> = {
  [-11]: 'no route', // -EAGAIN: no match in this table
  [-101]: 'no route', // -ENETUNREACH
  [-113]: 'unreachable', // -EHOSTUNREACH: an unreachable route
  [-13]: 'prohibit', // -EACCES: a prohibit route
  [-22]: 'blackhole', // -EINVAL: a blackhole route
};

/** IPv6 lookups report the route's type (RTN_*). The "no route" entry is an unreachable one. */
const IPV6_TYPES: Record<number, string | null> = { 1: null, 2: null, 3: null, 4: null, 5: null, 6: 'blackhole', 7: 'unreachable', 8: 'prohibit', 9: 'throw' };

/**
 * Input routing names the receiving device as the flow's input interface;
 * output routing names loopback. Among output lookups made while receiving
 * the probe, rp_filter's reverse-path check (not ICMP: no answer is being
 * sent) is told apart once the packet is known (src/kernel/names.ts).
 */
function routePurpose(buf: Buffer, rec: number): RouteEvent['purpose'] {
  const iif = buf.readUInt32LE(rec + F.iif[0]);
  return iif > 1 ? 'input' : 'output';
}

function decodeRoute(buf: Buffer, rec: number): RouteEvent {
  const family = buf[rec + F.family[0]] === 6 ? 6 : 4;
  const err = buf.readInt32LE(rec + F.error[0]);
  const error = family === 4 ? (err === 0 ? null : (IPV4_ERRORS[err] ?? `error ${err}`)) : (IPV6_TYPES[buf[rec + F.route_type[0]]] ?? null);
  const gwFamily = buf[rec + F.gw_family[0]];
  const gateway = gwFamily === 2 ? formatAddress(4, buf, rec + F.gateway[0]) : gwFamily === 10 ? formatAddress(6, buf, rec + F.gateway[0]) : null;
  const oif = readCString(buf, rec + F.ifname[0], F.ifname[1]);
  const tableId = buf.readUInt32LE(rec + F.table[0]);
  return {
    kind: 'route',
    time_ns: readU64(buf, rec + F.time_ns[0]),
    skb: skbName(buf, rec + F.skb[0]),
    netns: buf.readUInt32LE(rec + F.netns[0]),
    netns_name: null,
    family,
    src: address(family, buf, rec + F.saddr[0]),
    dst: address(family, buf, rec + F.daddr[0]),
    table: String(tableId),
    table_id: tableId,
    oif: error === null && oif !== '' ? oif : null,
    gateway: error === null ? gateway : null,
    error,
    purpose: routePurpose(buf, rec),
    proto: buf[rec + F.proto[0]],
  };
}
