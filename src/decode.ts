/**
 * Decodes the addon's batches (native/bpf_addon.c: [u32 length][record]
 * padded to 4 bytes, repeated) into events. One pass, no intermediate arrays.
 */
import { formatAddress } from './addr';
import { EVENT_FIELDS as F, EVENT_SIZE, EventKind, HOOK_NAMES } from './bpf/layout';
import type { HopEvent } from './events';

const ICMP_ECHO_REQUESTS = new Set([8, 128]);

/** Calls onEvent for every record in the batch; returns how many were decoded. */
export function decodeBatch(batch: Buffer, onEvent: (ev: HopEvent) => void): number {
  let count = 0;
  for (let off = 0; off + 4 <= batch.length; ) {
    const len = batch.readUInt32LE(off);
    const rec = off + 4;
    if (len >= EVENT_SIZE && rec + len <= batch.length && batch[rec + F.kind[0]] === EventKind.HOP) {
      onEvent(decodeHop(batch, rec));
      count++;
    }
    off = (rec + len + 3) & ~3;
  }
  return count;
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off);
}

function readCString(buf: Buffer, off: number, size: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('latin1', off, end < 0 || end > off + size ? off + size : end);
}

export function decodeHop(buf: Buffer, rec: number): HopEvent {
  const family = buf[rec + F.family[0]] === 6 ? 6 : 4;
  return {
    kind: 'hop',
    time_ns: readU64(buf, rec + F.time_ns[0]),
    skb: buf.readBigUInt64LE(rec + F.skb[0]).toString(16),
    netns: buf.readUInt32LE(rec + F.netns[0]),
    netns_name: null,
    ifindex: buf.readUInt32LE(rec + F.ifindex[0]),
    ifname: readCString(buf, rec + F.ifname[0], F.ifname[1]),
    dir: ICMP_ECHO_REQUESTS.has(buf[rec + F.icmp_type[0]]) ? 'request' : 'reply',
    family,
    src: formatAddress(family, buf, rec + F.saddr[0]),
    dst: formatAddress(family, buf, rec + F.daddr[0]),
    icmp_id: buf.readUInt16LE(rec + F.icmp_id[0]),
    icmp_seq: buf.readUInt16LE(rec + F.icmp_seq[0]),
    ttl: buf[rec + F.ttl[0]],
    len: buf.readUInt16LE(rec + F.ip_len[0]),
    hook: HOOK_NAMES[buf[rec + F.hook[0]]] ?? `hook${buf[rec + F.hook[0]]}`,
    cpu: buf.readUInt32LE(rec + F.cpu[0]),
  };
}
