/**
 * Decodes ring-buffer batches (src/batch.ts) into events: each record's
 * header says its kind, its kind's struct (bpf/tracepkt.h, laid out as the
 * generated view in src/bpf/layout.ts says) what follows. One pass, no
 * intermediate arrays. Numbers the kernel reports (drop reasons, code
 * addresses, table ids) are named later, where names are needed.
 */
import { formatAddress } from './addr';
import { forEachRecord } from './batch';
import { CHECKPOINT, CtPresence, DROP, EventKind, Frag, HEADER, HOOK_NAMES, HOP, Hook, NEIGH, PROG_RETURN, ROUTE, SNAPSHOT, TABLE_VERDICT, Tunnel } from './bpf/layout';
import type { CheckpointEvent, ConntrackInfo, ConntrackTuple, Direction, DropEvent, HopEvent, KernelEvent, NeighbourEvent, PacketFields, ProgramReturnEvent, RouteEvent, TableVerdictEvent, TunnelInfo } from './events';
import { tcpFlags } from './tcp';
import { isIcmp } from './ip';
import { natOf, stateOf, statusNames } from './conntrack';

const ECHO_REPLY = new Set([0, 129]);
/** ICMP errors, which quote the packet they are about: destination unreachable, time exceeded, parameter problem (and ICMPv6's packet too big). */
const ICMP_ERRORS = new Set([3, 11, 12]);
const ICMPV6_ERRORS = new Set([1, 2, 3, 4]);
/** ICMP "fragmentation needed" (3/4) and ICMPv6 "packet too big" (2) announce an MTU. */
const announcesMtu = (family: number, type: number, code: number) => (family === 4 ? type === 3 && code === 4 : type === 2);

/**
 * The packet bytes a sighting carried (struct tp_snapshot, when the trace
 * asked for them), from the IP header on. Kept beside the events, not in
 * them, so JSON output stays small.
 */
export const packetBytes = new WeakMap<object, Buffer>();

/** Route lookups whose flow does not say what they were for: their stack id in tp_stacks. Beside the events too. */
export const routeStackIds = new WeakMap<object, number>();

/** Each kind's record size: the snapshot, when there is one, follows it. */
const SIZES: Record<number, number> = {
  [EventKind.HOP]: HOP.$size,
  [EventKind.DROP]: DROP.$size,
  [EventKind.NF_CHECKPOINT]: CHECKPOINT.$size,
  [EventKind.NF_TABLE]: TABLE_VERDICT.$size,
  [EventKind.ROUTE]: ROUTE.$size,
  [EventKind.NEIGH]: NEIGH.$size,
  [EventKind.PROG_RETURN]: PROG_RETURN.$size,
};

/** Calls onEvent for every record in the batch; returns how many were decoded. */
export function decodeBatch(batch: Buffer, onEvent: (ev: KernelEvent) => void): number {
  let count = 0;
  forEachRecord(batch, (rec, len) => {
    if (len < HEADER.$size) return;
    const size = SIZES[batch[rec + HEADER.kind[0]]];
    if (size === undefined || len < size) return; // an unknown kind, or a truncated record
    const ev = decodeRecord(batch, rec);
    if (len >= size + SNAPSHOT.$size && ev.kind !== 'route') {
      const caplen = Math.min(batch.readUInt16LE(rec + size + SNAPSHOT.caplen[0]), SNAPSHOT.data[1]);
      const data = rec + size + SNAPSHOT.data[0];
      if (caplen > 0) packetBytes.set(ev, Buffer.from(batch.subarray(data, data + caplen)));
    }
    onEvent(ev);
    count++;
  });
  return count;
}

/**
 * A batch of `count` records as the kernel writes them: one ICMP echo's
 * request and reply sightings on loopback, in turn, and drops. For warming the code
 * that handles events before the first real ones come (a flood finds it
 * compiled, not interpreted); nothing of it is shown.
 */
export function exampleBatch(count: number): Buffer {
  const P = HOP.p;
  const stride = (4 + Math.max(HOP.$size, DROP.$size) + 3) & ~3;
  const batch = Buffer.alloc(stride * count);
  for (let i = 0; i < count; i++) {
    const len = i * stride;
    const rec = len + 4;
    // Every fifth a drop (ping's raw socket leaves one per reply): the same fields first, its own after.
    const drop = i % 5 === 4;
    batch.writeUInt32LE(drop ? DROP.$size : HOP.$size, len);
    batch[rec + HEADER.kind[0]] = drop ? EventKind.DROP : EventKind.HOP;
    if (drop) batch.writeUInt32LE(0x81000000, rec + DROP.location[0]);
    batch[rec + HEADER.hook[0]] = i % 2 ? Hook.NETIF_RECEIVE_SKB : Hook.NET_DEV_QUEUE;
    // Numbers as large as real ones (kernel time, namespace inodes): V8 keeps small integers and
    // doubles apart, and code warmed on the one is thrown away at the first of the other.
    batch.writeUInt32LE(i * 1000, rec + HEADER.time_ns[0]);
    batch.writeUInt32LE(0x4000, rec + HEADER.time_ns[0] + 4);
    batch.writeUInt32LE(0x81000000 + ((i >> 1) % 64) * 0x100, rec + HEADER.skb[0]); // sent and received in one sk_buff
    batch.writeUInt32LE(0xffff8881, rec + HEADER.skb[0] + 4);
    batch.writeUInt32LE(0xf0000000 + 0x1000, rec + HEADER.netns[0]);
    batch.writeUInt32LE(1, rec + HEADER.ifindex[0]);
    batch.write('lo', rec + HEADER.ifname[0], 'latin1');
    batch[rec + P.family[0]] = 4;
    batch[rec + P.proto[0]] = 1;
    batch[rec + P.icmp_type[0]] = i % 4 < 2 ? 8 : 0;
    batch.writeUInt32BE((7 << 16) | ((i >> 2) & 0xffff), rec + P.icmp_info[0]);
    batch.writeUInt32BE(0x7f000001, rec + P.saddr[0]);
    batch.writeUInt32BE(0x7f000001, rec + P.daddr[0]);
    batch[rec + P.ttl[0]] = 64;
    batch.writeUInt16LE(84, rec + P.ip_len[0]);
  }
  return batch;
}

function decodeRecord(buf: Buffer, rec: number): KernelEvent {
  switch (buf[rec + HEADER.kind[0]]) {
    // One object per event, its kind first (JSON keeps the order), the kind's fields added after.
    case EventKind.HOP: {
      const ev = packetFields<HopEvent>(buf, rec, 'hop');
      ev.hook = hookName(buf, rec);
      const vlan = buf.readUInt16LE(rec + HEADER.vlan[0]);
      ev.vlan = vlan ? vlan - 1 : null;
      return ev;
    }
    case EventKind.NF_CHECKPOINT: {
      const ev = packetFields<CheckpointEvent>(buf, rec, 'checkpoint');
      ev.nf_hook = buf[rec + CHECKPOINT.nf_hook[0]];
      ev.nf_pf = buf[rec + CHECKPOINT.nf_pf[0]];
      ev.index = buf[rec + CHECKPOINT.index[0]];
      return ev;
    }
    case EventKind.DROP: {
      const ev = packetFields<DropEvent>(buf, rec, 'drop');
      ev.reason = '';
      ev.reason_code = buf.readUInt32LE(rec + DROP.reason[0]);
      ev.location = codeAddresses.of(buf, rec + DROP.location[0]);
      return ev;
    }
    case EventKind.NF_TABLE: {
      const ev = packetFields<TableVerdictEvent>(buf, rec, 'xt-table');
      ev.nf_hook = buf[rec + TABLE_VERDICT.nf_hook[0]];
      ev.nf_pf = buf[rec + TABLE_VERDICT.nf_pf[0]];
      ev.table = readCString(buf, rec + TABLE_VERDICT.table[0], TABLE_VERDICT.table[1]);
      ev.priority = buf.readInt32LE(rec + TABLE_VERDICT.priority[0]);
      ev.verdict = buf.readUInt32LE(rec + TABLE_VERDICT.verdict[0]);
      return ev;
    }
    case EventKind.NEIGH: {
      const ev = packetFields<NeighbourEvent>(buf, rec, 'neighbour');
      ev.hook = hookName(buf, rec);
      ev.next_hop = address(buf[rec + NEIGH.family[0]] === 6 ? 6 : 4, buf, rec + NEIGH.next_hop[0]);
      ev.neighbour_state = nudState(buf[rec + NEIGH.nud_state[0]]);
      return ev;
    }
    case EventKind.PROG_RETURN: {
      const ev = packetFields<ProgramReturnEvent>(buf, rec, 'program-return');
      ev.hook = buf[rec + HEADER.hook[0]] === Hook.XDP ? 'xdp' : 'tc';
      ev.copy = buf[rec + PROG_RETURN.copy[0]];
      ev.code = buf.readInt32LE(rec + PROG_RETURN.ret[0]);
      ev.direction = buf[rec + PROG_RETURN.ingress[0]] ? 'ingress' : 'egress';
      return ev;
    }
    default:
      return decodeRoute(buf, rec);
  }
}

/** A neighbour's state bits (include/uapi/linux/neighbour.h NUD_*) as `ip neigh` names them. */
const NUD_STATES: [number, string][] = [[0x01, 'INCOMPLETE'], [0x02, 'REACHABLE'], [0x04, 'STALE'], [0x08, 'DELAY'], [0x10, 'PROBE'], [0x20, 'FAILED'], [0x40, 'NOARP'], [0x80, 'PERMANENT']];
const nudState = (bits: number) => NUD_STATES.filter(([bit]) => bits & bit).map(([, name]) => name).join(',') || 'NONE';

const hookName = (buf: Buffer, rec: number) => HOOK_NAMES[buf[rec + HEADER.hook[0]]] ?? `hook${buf[rec + HEADER.hook[0]]}`;

/** A little-endian u64 as a number (exact below 2^53: kernel times, counters). */
export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off);
}

/** A little-endian u64 in hex, without a BigInt. */
function hex64(buf: Buffer, off: number): string {
  const hi = buf.readUInt32LE(off + 4);
  const lo = buf.readUInt32LE(off).toString(16);
  return hi === 0 ? lo : hi.toString(16) + '00000000'.slice(lo.length) + lo;
}

/**
 * Kernel addresses in hex, per event (sk_buffs, the places that free
 * packets): the kernel reuses a bounded set of them, so each is formatted
 * once (keyed by the low half, checked on the high).
 */
class HexNames {
  private readonly names = new Map<number, { hi: number; name: string }>();

  constructor(private readonly prefix = '') {}

  of(buf: Buffer, off: number): string {
    const lo = buf.readUInt32LE(off);
    const hi = buf.readUInt32LE(off + 4);
    const known = this.names.get(lo);
    if (known !== undefined && known.hi === hi) return known.name;
    if (this.names.size >= CACHE_MAX) this.names.clear();
    const name = this.prefix + hex64(buf, off);
    this.names.set(lo, { hi, name });
    return name;
  }
}

const skbNames = new HexNames();
const codeAddresses = new HexNames('0x');
const skbName = (buf: Buffer, off: number) => skbNames.of(buf, off);

/**
 * Interface names per event: each device's is read once and afterwards only
 * compared with the record's bytes (a device renamed, or another namespace's
 * device of that index, is read anew).
 */
const ifnames = new Map<number, string>();

function ifname(buf: Buffer, rec: number): string {
  const off = rec + HEADER.ifname[0];
  const size = HEADER.ifname[1];
  const ifindex = buf.readUInt32LE(rec + HEADER.ifindex[0]);
  const known = ifnames.get(ifindex);
  if (known !== undefined && sameCString(buf, off, size, known)) return known;
  const name = readCString(buf, off, size);
  if (ifnames.size >= CACHE_MAX) ifnames.clear();
  ifnames.set(ifindex, name);
  return name;
}

/** Whether the NUL-terminated bytes at `off` (at most `size`) spell `s` (read as latin1). */
function sameCString(buf: Buffer, off: number, size: number, s: string): boolean {
  if (s.length > size) return false;
  for (let i = 0; i < s.length; i++) if (buf[off + i] !== s.charCodeAt(i)) return false;
  return s.length === size || buf[off + s.length] === 0;
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
 * ICMP packets by type: echo request, echo reply, or an error (one whose
 * quote the programs read); other ICMP a passive filter selects (neighbour
 * discovery, timestamps) is a message of its own, a request. Other packets
 * start as requests, made replies by whoever knows the flow (src/probe/run.ts).
 */
function direction(proto: number, type: number, quotes: boolean): Direction {
  if (proto !== 1 && proto !== 58) return 'request';
  if (ECHO_REPLY.has(type)) return 'reply';
  return quotes && (proto === 1 ? ICMP_ERRORS : ICMPV6_ERRORS).has(type) ? 'error' : 'request';
}

/** The fields every packet record has (header, packet, quote), in a new event of `kind` (the caller adds the kind's own). */
function packetFields<E extends KernelEvent>(buf: Buffer, rec: number, kind: E['kind']): E {
  const P = HOP.p;
  const Q = HOP.q;
  const family = buf[rec + P.family[0]] === 6 ? 6 : 4;
  const type = buf[rec + P.icmp_type[0]];
  const code = buf[rec + P.icmp_code[0]];
  const proto = buf[rec + P.proto[0]];
  const quoted = buf[rec + Q.present[0]] === 1;
  const dir = direction(proto, type, quoted);
  const error = dir === 'error';
  const info = buf.readUInt32BE(rec + P.icmp_info[0]);
  const quotedProto = buf[rec + Q.proto[0]];
  // The echo: the packet's own, or the one an error quotes.
  const echo = error ? (isIcmp(quotedProto) ? buf.readUInt32BE(rec + Q.echo_info[0]) : 0) : isIcmp(proto) ? info : 0;
  const fragFlags = buf[rec + P.frag_flags[0]];
  const ev: PacketFields & { kind: string } = {
    kind,
    time_ns: readU64(buf, rec + HEADER.time_ns[0]),
    skb: skbName(buf, rec + HEADER.skb[0]),
    lost_so_far: buf.readUInt32LE(rec + HEADER.lost[0]),
    netns: buf.readUInt32LE(rec + HEADER.netns[0]),
    netns_name: null,
    ifindex: buf.readUInt32LE(rec + HEADER.ifindex[0]),
    ifname: ifname(buf, rec),
    dir,
    family,
    src: address(family, buf, rec + P.saddr[0]),
    dst: address(family, buf, rec + P.daddr[0]),
    icmp_id: echo >>> 16,
    icmp_seq: echo & 0xffff,
    icmp_type: type,
    icmp_code: code,
    // An error about an echo says which one; about anything else, the probe itself.
    quotes: error ? (ECHO_REPLY.has(buf[rec + Q.icmp_type[0]]) && isIcmp(quotedProto) ? 'reply' : 'request') : null,
    mtu: error && announcesMtu(family, type, code) ? (family === 4 ? info & 0xffff : info) : null,
    proto: error ? quotedProto : proto,
    sport: buf.readUInt16LE(rec + (error ? Q.sport[0] : P.sport[0])),
    dport: buf.readUInt16LE(rec + (error ? Q.dport[0] : P.dport[0])),
    tcp_flags: proto === 6 ? tcpFlags(buf[rec + P.tcp_flags[0]]) : '',
    tcp_seq: proto === 6 ? buf.readUInt32LE(rec + P.tcp_seq[0]) : 0,
    ttl: buf[rec + P.ttl[0]],
    len: buf.readUInt16LE(rec + P.ip_len[0]),
    quoted_src: error ? address(family, buf, rec + Q.saddr[0]) : null,
    quoted_dst: error ? address(family, buf, rec + Q.daddr[0]) : null,
    fragment: fragFlags & Frag.FRAGMENT
      ? { id: buf.readUInt32LE(rec + P.frag_id[0]), offset: buf.readUInt16LE(rec + P.frag_offset[0]), more: (fragFlags & Frag.MORE_FRAGMENTS) !== 0 }
      : null,
    tunnel: decodeTunnel(buf, rec),
    conntrack: decodeConntrack(buf, rec),
  };
  return ev as unknown as E;
}

const TUNNEL_TYPES: Record<number, TunnelInfo['type']> = {
  [Tunnel.VXLAN]: 'vxlan',
  [Tunnel.GENEVE]: 'geneve',
  [Tunnel.GRE]: 'gre',
  [Tunnel.GRETAP]: 'gretap',
  [Tunnel.IPIP]: 'ipip',
  [Tunnel.WIREGUARD]: 'wireguard',
};

/** The outer packet (struct tp_outer), where the probe was seen in a tunnel. */
function decodeTunnel(buf: Buffer, rec: number): TunnelInfo | null {
  const O = HOP.o; // every packet record has it at the same offset
  const type = TUNNEL_TYPES[buf[rec + O.tunnel[0]]];
  if (type === undefined) return null;
  const family = buf[rec + O.family[0]] === 6 ? 6 : 4;
  const id = buf.readUInt32LE(rec + O.tunnel_id[0]);
  return {
    type,
    id: type === 'ipip' || type === 'wireguard' || (id === 0 && (type === 'gre' || type === 'gretap')) ? null : id,
    family,
    src: address(family, buf, rec + O.saddr[0]),
    dst: address(family, buf, rec + O.daddr[0]),
    proto: buf[rec + O.proto[0]],
    sport: buf.readUInt16LE(rec + O.sport[0]),
    dport: buf.readUInt16LE(rec + O.dport[0]),
    ttl: buf[rec + O.ttl[0]],
    len: buf.readUInt16LE(rec + O.ip_len[0]),
  };
}

/** The packet's conntrack entry (struct tp_conntrack), where one was attached. */
function decodeConntrack(buf: Buffer, rec: number): ConntrackInfo | null {
  const C = HOP.ct; // every packet record has it at the same offset
  const presence = buf[rec + C.presence[0]];
  if (presence === CtPresence.NONE) return null;
  const ct: ConntrackInfo = { state: 'untracked', direction: null, zone: 0, mark: 0, proto: 0, original: null, reply: null, status: [], nat: null };
  if (presence === CtPresence.UNTRACKED) return ct;
  if (presence !== CtPresence.ENTRY) {
    ct.state = 'unreadable';
    return ct;
  }
  const family = buf[rec + C.family[0]] === 6 ? 6 : 4;
  const tuple = (src: readonly number[], dst: readonly number[], sport: readonly number[], dport: readonly number[]): ConntrackTuple => ({
    src: address(family, buf, rec + src[0]),
    dst: address(family, buf, rec + dst[0]),
    sport: buf.readUInt16LE(rec + sport[0]),
    dport: buf.readUInt16LE(rec + dport[0]),
  });
  const status = buf.readUInt32LE(rec + C.status[0]);
  Object.assign(ct, stateOf(buf[rec + C.ctinfo[0]]));
  ct.zone = buf.readUInt16LE(rec + C.zone[0]);
  ct.mark = buf.readUInt32LE(rec + C.mark[0]);
  ct.proto = buf[rec + C.proto[0]];
  ct.original = tuple(C.orig_saddr, C.orig_daddr, C.orig_sport, C.orig_dport);
  ct.reply = tuple(C.reply_saddr, C.reply_daddr, C.reply_sport, C.reply_dport);
  ct.status = statusNames(status);
  ct.nat = natOf(status, ct.proto, ct.original, ct.reply);
  return ct;
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

function decodeRoute(buf: Buffer, rec: number): RouteEvent {
  const R = ROUTE;
  const family = buf[rec + R.family[0]] === 6 ? 6 : 4;
  const err = buf.readInt32LE(rec + R.error[0]);
  // IPv6: no route at all is the namespace's null entry (the programs say -ENETUNREACH), else the route's type.
  const error = family === 4 ? (err === 0 ? null : (IPV4_ERRORS[err] ?? `error ${err}`)) : err === -101 ? 'no route' : (IPV6_TYPES[buf[rec + R.route_type[0]]] ?? null);
  const gwFamily = buf[rec + R.gw_family[0]];
  const gateway = gwFamily === 2 ? formatAddress(4, buf, rec + R.gateway[0]) : gwFamily === 10 ? formatAddress(6, buf, rec + R.gateway[0]) : null;
  const oif = readCString(buf, rec + HEADER.ifname[0], HEADER.ifname[1]);
  const tableId = buf.readUInt32LE(rec + R.table[0]);
  const ev: RouteEvent = {
    kind: 'route',
    time_ns: readU64(buf, rec + HEADER.time_ns[0]),
    skb: skbName(buf, rec + HEADER.skb[0]),
    lost_so_far: buf.readUInt32LE(rec + HEADER.lost[0]),
    netns: buf.readUInt32LE(rec + HEADER.netns[0]),
    netns_name: null,
    family,
    src: address(family, buf, rec + R.saddr[0]),
    dst: address(family, buf, rec + R.daddr[0]),
    table: String(tableId),
    table_id: tableId,
    oif: error === null && oif !== '' ? oif : null,
    gateway: error === null ? gateway : null,
    error,
    // Input routing names the receiving device as the flow's input interface; output routing
    // names loopback (src/kernel/route-purpose.ts tells reverse-path checks apart later).
    purpose: buf.readInt32LE(rec + R.iif[0]) > 1 ? 'input' : 'output',
    proto: buf[rec + R.proto[0]],
    sport: buf.readUInt16LE(rec + R.sport[0]),
    dport: buf.readUInt16LE(rec + R.dport[0]),
    flow_icmp_type: buf[rec + R.icmp_type[0]],
  };
  const stack = buf.readInt32LE(rec + R.stack_id[0]);
  if (stack >= 0) routeStackIds.set(ev, stack);
  return ev;
}
