/**
 * A pcap-filter expression (man pcap-filter), ready for the kernel: libpcap
 * compiles it to classic BPF for the link type the hook sees (native/pcap.c),
 * src/filter/cbpf.ts checks it and translates it to eBPF for the slot
 * bpf/pcap.h reserves, and src/bpf/filter-slot.ts places it there before the
 * object is opened. Everything here happens before anything is attached, so
 * a bad expression changes nothing.
 */
import { BpfError, TracepktError } from '../errors';
import type { Native } from '../native';
import { Limits } from '../bpf/layout';
import { type Access, type ClassicInsn, decodeClassic, encodeEbpf, FilterProgramError, reach, translate } from './cbpf';

/**
 * What a hook sees of a packet: the tracing programs see it from its IP
 * header (libpcap's raw IP link type), mangle's XDP and tc programs a frame
 * from its Ethernet header.
 */
export type LinkType = 'raw' | 'ethernet';

export interface PcapFilter {
  expression: string;
  linktype: LinkType;
  /** libpcap's program, as `tcpdump -d` lists it. */
  classic: ClassicInsn[];
  /** The eBPF for the slot: exactly Limits.FILTER_SLOTS instructions. */
  code: Buffer;
  /** How many bytes of the packet (from its IP header, or the frame's start) the filter may read. */
  reach: number;
}

/** eBPF instructions the slot in bpf/pcap.h holds. */
export const FILTER_SLOTS = Limits.FILTER_SLOTS;

/** The expression as messages quote it: a long one by its two ends. */
function quoted(expression: string): string {
  const text = expression.length > 80 ? `${expression.slice(0, 38)} ... ${expression.slice(-38)}` : expression;
  return `"${text}"`;
}

/** Compiles `expression` for a hook that sees `linktype`; one line and exit 2 when it cannot. */
export function compilePcapFilter(native: Native, expression: string, linktype: LinkType): PcapFilter {
  let classic: ClassicInsn[];
  try {
    classic = decodeClassic(native.compileFilter(expression, linktype));
  } catch (err) {
    // libpcap's own message, as tcpdump prints it (one line: it ends where libpcap's would wrap).
    throw new TracepktError(`bad filter ${quoted(expression)}: ${(err as Error).message.split('\n')[0]}`);
  }
  const access: Access = linktype === 'raw' ? 'buffer' : 'packet';
  try {
    return { expression, linktype, classic, code: encodeEbpf(translate(classic, access, FILTER_SLOTS)), reach: reach(classic) };
  } catch (err) {
    if (err instanceof FilterProgramError) throw new TracepktError(`filter ${quoted(expression)} cannot run in tracepkt's programs: ${err.message}`);
    throw err;
  }
}

/** errnos of a program the verifier refused: EACCES, EINVAL, E2BIG (too complex). */
const REFUSED = new Set([13, 22, 7]);

/**
 * A load that failed with `pcap` placed in the programs: when the same
 * programs load without it (`loadsWithout` resolves), the verifier refused
 * the filter, and the user hears so, with the verifier's last word; else the
 * failure is not the filter's and is returned as it was.
 */
export async function blameFilter(err: unknown, pcap: PcapFilter, loadsWithout: () => Promise<void>): Promise<unknown> {
  if (!(err instanceof BpfError) || !REFUSED.has(err.errno)) return err;
  try {
    await loadsWithout();
  } catch {
    return err;
  }
  const said = err.log
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(libbpf:|--|processed \d|verification time|stack depth|;)/.test(l));
  return new TracepktError(`the kernel's verifier refused filter ${quoted(pcap.expression)}: ${said.pop() ?? 'it gave no reason'}`);
}
