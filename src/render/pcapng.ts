/**
 * pcapng (IETF draft-ietf-opsawg-pcapng) for Wireshark, tshark and tcpdump:
 * one interface block per (namespace, interface) the probe crossed,
 * nanosecond timestamps, and a comment on every packet saying where and how
 * the kernel saw it.
 *
 * The hooks see packets from the IP header on, so each packet is its IP
 * bytes behind a Linux "cooked" header (LINKTYPE_LINUX_SLL, as `tcpdump -i
 * any` writes): the direction (sent or received) and the protocol (IPv4 or
 * IPv6), no link-layer address. Not raw IP (LINKTYPE_RAW): libpcap (tcpdump)
 * refuses a file with a second raw-IP interface, comparing the first's type
 * as it maps it (DLT_RAW 12) with the next one's as written (101).
 */
import type { DropEvent, HopEvent, TraceEvent } from '../events';
import { tunnelDetail } from '../tunnel';

const LINKTYPE_LINUX_SLL = 113;
const SLL_HEADER = 16;

/** The cooked header: sent (PACKET_OUTGOING) or received (PACKET_HOST), no hardware address, the IP version's EtherType. */
function cookedHeader(sent: boolean, ip: Buffer): Buffer {
  const h = Buffer.alloc(SLL_HEADER);
  h.writeUInt16BE(sent ? 4 : 0, 0);
  h.writeUInt16BE(0xfffe, 2); // ARPHRD_NONE: the device's kind is not recorded
  h.writeUInt16BE(ip.length > 0 && ip[0] >> 4 === 6 ? 0x86dd : 0x0800, 14);
  return h;
}
const pad4 = (n: number) => (n + 3) & ~3;

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

const END_OF_OPTIONS = Buffer.alloc(4);

function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(total, 4);
  body.copy(b, 8);
  b.writeUInt32LE(total, total - 4);
  return b;
}

function sectionHeader(): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(0x1a2b3c4d, 0); // byte-order magic
  fixed.writeUInt16LE(1, 4);
  fixed.writeUInt16LE(0, 6);
  fixed.writeBigInt64LE(-1n, 8); // section length unknown
  return block(0x0a0d0d0a, Buffer.concat([fixed, option(4 /* shb_userappl */, Buffer.from('tracepkt')), END_OF_OPTIONS]));
}

function interfaceBlock(name: string, description: string, snapLen: number): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(LINKTYPE_LINUX_SLL, 0);
  fixed.writeUInt32LE(snapLen + SLL_HEADER, 4);
  return block(1, Buffer.concat([
    fixed,
    option(2 /* if_name */, Buffer.from(name)),
    option(3 /* if_description */, Buffer.from(description)),
    option(9 /* if_tsresol */, Buffer.from([9])), // 10^-9 s
    END_OF_OPTIONS,
  ]));
}

function packetBlock(iface: number, timeNs: bigint, data: Buffer, origLen: number, comment: string): Buffer {
  const fixed = Buffer.alloc(20);
  fixed.writeUInt32LE(iface, 0);
  fixed.writeUInt32LE(Number(timeNs >> 32n), 4);
  fixed.writeUInt32LE(Number(timeNs & 0xffffffffn), 8);
  fixed.writeUInt32LE(data.length, 12);
  fixed.writeUInt32LE(origLen, 16);
  const padded = Buffer.alloc(pad4(data.length));
  data.copy(padded);
  return block(6, Buffer.concat([fixed, padded, option(1 /* opt_comment */, Buffer.from(comment)), END_OF_OPTIONS]));
}

/** Where and how the kernel saw the packet, for the packet's comment. */
export function describeSighting(e: HopEvent | DropEvent): string {
  const where = `netns ${e.netns_name ?? e.netns} (${e.netns}) dev ${e.ifname || '-'}`;
  // In a tunnel the bytes are the outer packet's, as captured: the comment says what it carries.
  const carried = e.tunnel ? ` in ${tunnelDetail(e.tunnel)}` : '';
  if (e.kind === 'drop') return `${where} dropped at ${e.location}: ${e.reason}${carried}`;
  return `${where} ${e.hook} ${e.dir}${carried}${e.rewritten ? ` NAT ${e.rewritten}` : ''}${e.altered ? ` altered ${e.altered}` : ''}`;
}

/**
 * The file: sightings that carry packet bytes, in order.
 * `monotonicToEpochNs` turns kernel CLOCK_MONOTONIC times into wall-clock ones.
 */
export function pcapng(events: readonly TraceEvent[], bytesOf: (e: TraceEvent) => Buffer | undefined, monotonicToEpochNs: bigint, snapLen: number): Buffer {
  const blocks = [sectionHeader()];
  const interfaces = new Map<string, number>();
  for (const e of events) {
    if (e.kind !== 'hop' && e.kind !== 'drop') continue;
    const data = bytesOf(e);
    if (!data) continue;
    const key = `${e.netns}/${e.ifname || '-'}`;
    let iface = interfaces.get(key);
    if (iface === undefined) {
      iface = interfaces.size;
      interfaces.set(key, iface);
      const ns = e.netns_name ?? String(e.netns);
      blocks.push(interfaceBlock(`${ns}/${e.ifname || '-'}`, `interface ${e.ifname || '(none)'} in network namespace ${ns} (${e.netns})`, snapLen));
    }
    const sent = e.kind === 'hop' && e.hook === 'net_dev_queue';
    blocks.push(packetBlock(iface, BigInt(e.time_ns) + monotonicToEpochNs, Buffer.concat([cookedHeader(sent, data), data]), e.len + SLL_HEADER, describeSighting(e)));
  }
  return Buffer.concat(blocks);
}

/** Offset from CLOCK_MONOTONIC (bpf_ktime_get_ns, libuv's hrtime) to the Unix epoch, in ns. */
export function monotonicOffsetNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
}
