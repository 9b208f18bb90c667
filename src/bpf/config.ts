/** Encodes struct tp_config (bpf/tracepkt.h) for the programs' .rodata. */
import * as net from 'node:net';
import { FIELD, type FilterInsn } from '../filter/compile';
import { CONFIG_FIELDS, CONFIG_SIZE, FILTER_INSN_FIELDS as I, FILTER_INSN_SIZE } from './layout';

export interface KernelFilter {
  /** Recognise ping probes by their marker (default), or packets by a compiled filter. */
  match?: 'marker' | 'filter';
  /** For match "filter": the compiled program (src/filter/compile.ts). */
  program?: FilterInsn[];
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
}

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
 * How long a packet recognised by its sk_buff address (filtered tracing,
 * through NAT) stays recognised without being seen again. A packet crosses
 * the kernel in microseconds to milliseconds; a reused address must not
 * inherit its identity.
 */
export const TRACKED_PACKET_NS = 1_000_000_000;

/** An IP address as the kernel holds it: 4 or 16 bytes, network order. */
export function addressBytes(address: string): Buffer {
  const sa = new net.SocketAddress({ address, family: net.isIPv6(address) ? 'ipv6' : 'ipv4' });
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

export function encodeConfig(filter: KernelFilter): Buffer {
  if (filter.marker.length !== CONFIG_FIELDS.marker[1]) {
    throw new RangeError(`marker must be ${CONFIG_FIELDS.marker[1]} bytes`);
  }
  const buf = Buffer.alloc(CONFIG_SIZE);
  filter.marker.copy(buf, CONFIG_FIELDS.marker[0]);
  buf.writeUInt16LE(filter.markerOffset, CONFIG_FIELDS.marker_offset[0]);
  buf.writeUInt8(filter.family, CONFIG_FIELDS.family[0]);
  buf.writeUInt32LE(CURRENT_PACKET_NS, CONFIG_FIELDS.current_ns[0]);
  buf.writeUInt16LE(filter.snapLen ?? 0, CONFIG_FIELDS.snap_len[0]);
  if (filter.target) addressBytes(filter.target).copy(buf, CONFIG_FIELDS.target[0]);
  if (filter.match === 'filter') {
    const program = filter.program ?? [];
    buf[CONFIG_FIELDS.match[0]] = 1;
    buf[CONFIG_FIELDS.filter_len[0]] = program.length;
    buf.writeUInt32LE(TRACKED_PACKET_NS, CONFIG_FIELDS.track_ns[0]);
    encodeFilterProgram(buf, CONFIG_FIELDS.filter[0], program);
  }
  return buf;
}

/** Writes a compiled filter as struct tp_filter_insn[] at `offset` (shared by tracing and mangling configs). */
export function encodeFilterProgram(buf: Buffer, offset: number, program: readonly FilterInsn[]): void {
  program.forEach((insn, n) => {
    const at = offset + n * FILTER_INSN_SIZE;
    buf[at + I.op[0]] = insn.op;
    buf[at + I.field[0]] = insn.field;
    buf[at + I.dir[0]] = insn.dir;
    buf[at + I.value[0]] = insn.value;
    buf.writeUInt16LE(insn.port, at + I.port[0]);
    buf[at + I.family[0]] = insn.family;
    insn.addr.copy(buf, at + I.addr[0]);
    if (insn.field === FIELD.ADDR) prefixMask(insn.value).copy(buf, at + I.mask[0]);
  });
}

/** A prefix length as the 16-byte mask the kernel compares with (bpf/tracepkt.bpf.c: in_net). */
export function prefixMask(bits: number): Buffer {
  const mask = Buffer.alloc(16);
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) mask[i] = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
  return mask;
}
