/**
 * Netlink messages and attributes (RFC 3549; include/uapi/linux/netlink.h),
 * encoded and decoded in TypeScript: the addon only moves datagrams.
 */

export const NLM_F = { REQUEST: 1, ACK: 4, EXCL: 0x200, CREATE: 0x400, APPEND: 0x800, DUMP: 0x300 } as const;
export const NLMSG = { ERROR: 2, DONE: 3 } as const;
/** Set on attributes that contain attributes. */
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

const align4 = (n: number) => (n + 3) & ~3;

/** One attribute: header, payload, padding. */
export function attr(type: number, payload: Buffer): Buffer {
  const buf = Buffer.alloc(align4(4 + payload.length));
  buf.writeUInt16LE(4 + payload.length, 0);
  buf.writeUInt16LE(type, 2);
  payload.copy(buf, 4);
  return buf;
}

export function nested(type: number, attrs: Buffer[]): Buffer {
  return attr(type | NLA_F_NESTED, Buffer.concat(attrs));
}

/** nf_tables takes its integers in network byte order. */
export function u32be(type: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return attr(type, b);
}

export function i32be(type: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(value);
  return attr(type, b);
}

export function str(type: number, value: string): Buffer {
  return attr(type, Buffer.from(`${value}\0`));
}

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header. */
  payload: Buffer;
}

export function message(m: Omit<NlMessage, 'pid'>): Buffer {
  const buf = Buffer.alloc(align4(16 + m.payload.length));
  buf.writeUInt32LE(16 + m.payload.length, 0);
  buf.writeUInt16LE(m.type, 4);
  buf.writeUInt16LE(m.flags, 6);
  buf.writeUInt32LE(m.seq, 8);
  buf.writeUInt32LE(0, 12);
  m.payload.copy(buf, 16);
  return buf;
}

/** The messages of one datagram. */
export function parseMessages(datagram: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  for (let off = 0; off + 16 <= datagram.length; ) {
    const len = datagram.readUInt32LE(off);
    if (len < 16 || off + len > datagram.length) break;
    out.push({
      type: datagram.readUInt16LE(off + 4),
      flags: datagram.readUInt16LE(off + 6),
      seq: datagram.readUInt32LE(off + 8),
      pid: datagram.readUInt32LE(off + 12),
      payload: datagram.subarray(off + 16, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (the last one wins), payloads without headers. */
export function parseAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  for (let off = offset; off + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    attrs.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return attrs;
}

/** NLMSG_ERROR's payload: 0 is an acknowledgement, else -errno. */
export function errorCode(m: NlMessage): number {
  // A message too short to hold its code is malformed: EBADMSG, never a throw inside the reply path.
  return m.payload.length >= 4 ? m.payload.readInt32LE(0) : -74;
}

/**
 * Numbers from attributes, network order; null where the attribute is
 * missing or too short for one (a malformed message is read as far as it
 * goes, never past its end).
 */
export const attrU32 = (b: Buffer | undefined): number | null => (b && b.length >= 4 ? b.readUInt32BE(0) : null);
export const attrI32 = (b: Buffer | undefined): number | null => (b && b.length >= 4 ? b.readInt32BE(0) : null);
export const attrU64 = (b: Buffer | undefined): number | null => (b && b.length >= 8 ? Number(b.readBigUInt64BE(0)) : null);

/** A NUL-terminated string attribute. */
export function attrString(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}
