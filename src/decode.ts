/**
 * Decodes ring-buffer batches (src/batch.ts) into events. One pass, no
 * intermediate arrays.
 */
import { formatAddress } from './addr';
import { forEachRecord } from './batch';
import { EVENT_FIELDS as F, EVENT_SIZE, EventKind, HOOK_NAMES } from './bpf/layout';
import type { CheckpointEvent, HopEvent, KernelEvent, PacketFields } from './events';

const ICMP_ECHO_REQUESTS = new Set([8, 128]);

/** Calls onEvent for every record in the batch; returns how many were decoded. */
export function decodeBatch(batch: Buffer, onEvent: (ev: KernelEvent) => void): number {
  let count = 0;
  forEachRecord(batch, (rec, len) => {
    if (len >= EVENT_SIZE) {
      const kind = batch[rec + F.kind[0]];
      if (kind === EventKind.HOP) {
        onEvent({ kind: 'hop', ...packetFields(batch, rec), hook: HOOK_NAMES[batch[rec + F.hook[0]]] ?? `hook${batch[rec + F.hook[0]]}` } as HopEvent);
        count++;
      } else if (kind === EventKind.NF_CHECKPOINT) {
        onEvent({
          kind: 'checkpoint',
          ...packetFields(batch, rec),
          nf_hook: batch[rec + F.nf_hook[0]],
          nf_pf: batch[rec + F.nf_pf[0]],
          index: batch[rec + F.nf_index[0]],
        } as CheckpointEvent);
        count++;
      }
    }
  });
  return count;
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off);
}

function readCString(buf: Buffer, off: number, size: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('latin1', off, end < 0 || end > off + size ? off + size : end);
}

function packetFields(buf: Buffer, rec: number): PacketFields {
  const family = buf[rec + F.family[0]] === 6 ? 6 : 4;
  return {
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
  };
}
