/** Encodes struct tp_config (bpf/tracepkt.h) for the programs' .rodata. */
import { CONFIG_FIELDS, CONFIG_SIZE } from './layout';

export interface KernelFilter {
  /** The 8 bytes the probe carries in its ICMP payload. */
  marker: Buffer;
  /** Where the marker sits, counted from the start of the ICMP header. */
  markerOffset: number;
  /** 4 or 6 to trace one family only, 0 for both. */
  family: 0 | 4 | 6;
}

export function encodeConfig(filter: KernelFilter): Buffer {
  if (filter.marker.length !== CONFIG_FIELDS.marker[1]) {
    throw new RangeError(`marker must be ${CONFIG_FIELDS.marker[1]} bytes`);
  }
  const buf = Buffer.alloc(CONFIG_SIZE);
  filter.marker.copy(buf, CONFIG_FIELDS.marker[0]);
  buf.writeUInt16LE(filter.markerOffset, CONFIG_FIELDS.marker_offset[0]);
  buf.writeUInt8(filter.family, CONFIG_FIELDS.family[0]);
  return buf;
}
