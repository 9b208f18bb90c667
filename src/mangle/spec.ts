/**
 * What `tracepkt mangle` does, checked and encoded for the kernel
 * (struct tp_mangle_config, bpf/mangle.h). The policy lives here: which
 * packets each action applies to by default, which combinations make sense.
 */
import { MANGLE_CONFIG as M, MangleAction, MangleSelect } from '../bpf/layout';
import { TracepktError } from '../errors';
import type { PcapFilter } from '../filter/pcap';

export interface MangleSpec {
  /** A TTL / hop limit to set, or a random one per packet. */
  ttl?: number | 'random';
  /** TCP flag bits to set (on segments without SYN, FIN or RST). */
  tcpFlags?: number;
  drop?: boolean;
  /** Share of the selected packets acted on, above 0 and at most 1. */
  ratio: number;
  /** The --filter, compiled for Ethernet frames (src/filter/pcap.ts), if any. */
  pcap?: PcapFilter;
  /** tc on transmit (true) or XDP on receive (false). */
  egress: boolean;
}

/** TCP flags by name, as in the header's byte 13. */
export const TCP_FLAG_BITS: Record<string, number> = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 };

/** "PSH", "psh,ack" → bits; one clear error otherwise. */
export function parseTcpFlags(text: string): number {
  let bits = 0;
  for (const name of text.split(',')) {
    const bit = TCP_FLAG_BITS[name.trim().toUpperCase()];
    if (bit === undefined) throw new TracepktError(`unknown TCP flag "${name}" (one of ${Object.keys(TCP_FLAG_BITS).join(', ')}, comma-separated)`);
    bits |= bit;
  }
  return bits;
}

export function parseRatio(text: string): number {
  const r = Number(text);
  if (!/^(0|1)?(\.\d+)?$/.test(text) || !(r > 0 && r <= 1)) throw new TracepktError(`--ratio must be a number above 0 and at most 1, not "${text}"`);
  return r;
}

export function parseTtl(text: string): number | 'random' {
  if (text === 'random') return 'random';
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 255) throw new TracepktError(`--ttl must be "random" or a whole number from 1 to 255, not "${text}"`);
  return Number(text);
}

/** Refuses what cannot be done, before anything is attached. */
export function checkSpec(spec: MangleSpec): void {
  const alters = spec.ttl !== undefined || spec.tcpFlags !== undefined;
  if (!alters && !spec.drop) throw new TracepktError('nothing to do: give --ttl, --set-tcp-flags or --drop');
  if (alters && spec.drop) throw new TracepktError('--drop cannot be combined with --ttl or --set-tcp-flags (a dropped packet is not altered)');
  if (spec.tcpFlags !== undefined && !spec.egress) {
    throw new TracepktError('--set-tcp-flags needs --egress: on receive, a local sender\'s TCP checksum may not be final yet, so it cannot be kept valid');
  }
}

/**
 * What the action applies to besides the filter: --ttl without --filter
 * means the received echo replies, as in the field bug it reproduces.
 */
export function selection(spec: MangleSpec): number {
  return spec.ttl !== undefined && !spec.pcap ? MangleSelect.ECHO_REPLIES : MangleSelect.ALL;
}

export function encodeMangleConfig(spec: MangleSpec): Buffer {
  const buf = Buffer.alloc(M.$size);
  const action = (spec.ttl !== undefined ? MangleAction.TTL : 0) | (spec.tcpFlags !== undefined ? MangleAction.TCP_FLAGS : 0) | (spec.drop ? MangleAction.DROP : 0);
  buf.writeUInt32LE(Math.round(spec.ratio * 1_000_000), M.ratio_ppm[0]);
  buf[M.action[0]] = action;
  buf[M.ttl[0]] = spec.ttl === 'random' || spec.ttl === undefined ? 0 : spec.ttl;
  buf[M.tcp_flags[0]] = spec.tcpFlags ?? 0;
  buf[M.select[0]] = selection(spec);
  // The filter's code goes into the object itself (src/bpf/filter-slot.ts): here only that it is there.
  if (spec.pcap) {
    if (spec.pcap.linktype !== 'ethernet') throw new RangeError('mangle sees frames from their Ethernet header: compile the filter for Ethernet');
    buf[M.filter[0]] = 1;
    buf.writeUInt16LE(spec.pcap.reach, M.filter_reach[0]);
  }
  return buf;
}
