/**
 * How the programs read packet bytes beyond an sk_buff's linear part on this
 * kernel (bpf/packet.h): a large ping, a jumbo frame or a GRO'd packet keeps
 * most of itself in pages, its marker included.
 *
 *   1. bpf_dynptr_from_skb, where tracing programs may call it (6.10+):
 *      measured by loading a tiny program (bpf/probes.bpf.c);
 *   2. else through the direct map, from the fragment's page (x86-64), with
 *      the kernel's page_offset_base and vmemmap_base variables, whose
 *      addresses kallsyms lists when the kernel keeps data symbols there
 *      (CONFIG_KALLSYMS_ALL, as Debian's kernels do);
 *   3. else not at all: such reads fail, and the start line says so.
 *
 * Measured once per boot and remembered in /run (a file, not a kernel
 * object: it holds no resource and goes with the next boot).
 */
import type { SkbReader } from '../bpf/config';
import { BpfObject } from '../bpf/object';
import { bpfObjectPath, type Native } from '../native';
import { RECORDS_DIR } from '../records';
import { readBootFact, writeBootFact } from './boot-facts';
import { Lines, readChunksAsync } from './kallsyms';

export interface ReaderChoice {
  reader: SkbReader;
  /** Why packet bytes past the linear part cannot be read here; null when they can. */
  note: string | null;
}

const SKB_READER_FACT = 'skb-reader';

/** The two symbols, from kallsyms' text (null when either is missing). */
export function directMapSymbols(kallsyms: string): { pageOffsetBase: bigint; vmemmapBase: bigint } | null {
  const find = (name: string) => {
    const m = new RegExp(`^([0-9a-f]{16}) [dDbB] ${name}$`, 'm').exec(kallsyms);
    return m && !/^0+$/.test(m[1]) ? BigInt(`0x${m[1]}`) : null;
  };
  const pageOffsetBase = find('page_offset_base');
  const vmemmapBase = find('vmemmap_base');
  return pageOffsetBase !== null && vmemmapBase !== null ? { pageOffsetBase, vmemmapBase } : null;
}

/** Streams kallsyms, keeping only the lines of the two data symbols. */
async function kallsymsDataLines(file: string): Promise<string> {
  const keep: string[] = [];
  const lines = new Lines();
  const onLine = (bytes: Uint8Array, pos: number, end: number) => {
    // Only lines as long as those two make a string: "<16 hex> D page_offset_base", "<16 hex> D vmemmap_base".
    if (end - pos !== 35 && end - pos !== 31) return;
    const line = Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString('latin1');
    if (/^.{16} [dDbB] (?:page_offset_base|vmemmap_base)$/.test(line)) keep.push(line);
  };
  for await (const chunk of readChunksAsync(file)) lines.feed(chunk, onLine);
  lines.end(onLine);
  return keep.join('\n');
}

/** The choice as kept for this boot (JSON: addresses as hex text). */
interface StoredChoice {
  kind: string;
  pageOffsetBase?: string;
  vmemmapBase?: string;
  note: string | null;
}

function readCache(dir: string, boot?: string): ReaderChoice | null {
  const data = readBootFact<StoredChoice>(SKB_READER_FACT, dir, boot);
  if (data?.kind === 'pages') return { reader: { kind: 'pages', pageOffsetBase: BigInt(data.pageOffsetBase!), vmemmapBase: BigInt(data.vmemmapBase!) }, note: data.note };
  if (data?.kind === 'dynptr' || data?.kind === 'linear') return { reader: { kind: data.kind }, note: data.note };
  return null;
}

function writeCache(dir: string, choice: ReaderChoice, boot?: string): void {
  const r = choice.reader;
  const data: StoredChoice = { kind: r.kind, note: choice.note, ...(r.kind === 'pages' ? { pageOffsetBase: `0x${r.pageOffsetBase.toString(16)}`, vmemmapBase: `0x${r.vmemmapBase.toString(16)}` } : {}) };
  writeBootFact(SKB_READER_FACT, data, dir, boot);
}

/**
 * Whether a tracing program may build a dynptr over an sk_buff here: true,
 * false (the kernel refused the program: EINVAL or EACCES, an answer that
 * holds for this boot), or null (another failure, ENOMEM say: not an answer).
 */
export async function dynptrAllowed(native: Native): Promise<boolean | null> {
  let obj: BpfObject | undefined;
  try {
    obj = new BpfObject(native, bpfObjectPath('probes'));
    obj.selectPrograms(['probe_dynptr']);
    await obj.loadAsync();
    return true;
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    return errno === 22 || errno === 13 || errno === 2 ? false : null;
  } finally {
    obj?.close();
  }
}

export async function chooseSkbReader(native: Native, o: { cacheDir?: string; boot?: string; kallsyms?: string; arch?: string } = {}): Promise<ReaderChoice> {
  const dir = o.cacheDir ?? RECORDS_DIR;
  const cached = readCache(dir, o.boot);
  if (cached) return cached;
  let choice: ReaderChoice;
  const dynptr = await dynptrAllowed(native);
  if (dynptr) {
    choice = { reader: { kind: 'dynptr' }, note: null };
  } else {
    const symbols = (o.arch ?? process.arch) === 'x64' ? directMapSymbols(await kallsymsDataLines(o.kallsyms ?? '/proc/kallsyms').catch(() => '')) : null;
    choice = symbols
      ? { reader: { kind: 'pages', ...symbols }, note: null }
      : {
          reader: { kind: 'linear' },
          note: 'packet bytes beyond the linear part of an sk_buff cannot be read on this kernel (no bpf_dynptr_from_skb for tracing programs, 6.10+, and no page_offset_base/vmemmap_base in kallsyms): probes larger than about 16 KB may not be recognised',
        };
  }
  if (dynptr !== null) writeCache(dir, choice, o.boot); // a failure that was no answer is measured again next time
  return choice;
}

let chosen: Promise<ReaderChoice> | undefined;

/** chooseSkbReader, once per process. */
export function skbReaderOnce(native: Native): Promise<ReaderChoice> {
  chosen ??= chooseSkbReader(native);
  return chosen;
}
