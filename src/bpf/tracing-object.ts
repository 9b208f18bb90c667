/**
 * The tracing programs, prepared for one trace: which programs, the config
 * in .rodata, the ring's size. Kept apart from the tracer (and its many
 * imports) so that a command can start the kernel's verifier on a worker
 * thread first and load the rest of its code meanwhile: start-up is the
 * longer of the two, not their sum.
 */
import * as fs from 'node:fs';
import { encodeConfig, type KernelFilter } from './config';
import { placeFilter } from './filter-slot';
import { FILTER_SLOTS } from '../filter/pcap';
import { BPF_NAMES, BPF_NETFILTER, BPF_PROG_TYPE_NETFILTER, NF_CHECKPOINTS } from './layout';
import { BpfObject } from './object';
import { loadNative, type Native } from '../native';
import { skbReaderOnce } from '../kernel/skb-reader';
import { bpfSupportOnce, CURRENT_KERNEL, objectFor, type BpfSupport } from '../kernel/bpf-support';

export interface TracingObjectOptions {
  filter: KernelFilter;
  /** Trace route lookups (default true; passive tracing cannot tie them to a packet). */
  routes?: boolean;
  /** Ring buffer size in bytes, a power of two (default 4 MiB). */
  ringBytes?: number;
  /** What the kernel's BPF takes (kernel/bpf-support.ts); a kernel of today's where not measured. */
  kernel?: BpfSupport;
  native?: Native;
  /** Called while the kernel verifies the programs (on a worker thread): time the event loop may spend on other work. */
  whileLoading?: () => void;
}

/** The programs a trace with these options loads and attaches (netfilter checkpoints aside). */
export function tracingPrograms(options: TracingObjectOptions): string[] {
  const kernel = options.kernel ?? CURRENT_KERNEL;
  return [
    ...BPF_NAMES.programs,
    kernel.dropReasons ? BPF_NAMES.drops.reason : BPF_NAMES.drops.placeOnly,
    ...(options.routes === false ? [] : BPF_NAMES.routes),
    // Freed packets: their remembered identity goes (filtered and flow tracing), and route lookups
    // on that CPU stop being tied to them (probes).
    ...(options.filter.match === 'filter' || options.filter.match === 'flow' || options.routes !== false ? [BPF_NAMES.forgetFreed] : []),
  ];
}

/**
 * Opens the object configured for these options, with the first
 * `checkpoints` copies of the netfilter checkpoint program (the kernel
 * takes ~7 ms to load each: only what the plans use), and `extra` programs
 * (table verdicts where checkpoints are missing). Not loaded yet.
 */
export function openTracingObject(native: Native, options: TracingObjectOptions, checkpoints = 0, extra: readonly string[] = []): BpfObject {
  const file = objectFor(BPF_NAMES.object, options.kernel ?? CURRENT_KERNEL);
  const pcap = options.filter.match === 'filter' ? options.filter.pcap : undefined;
  const obj = new BpfObject(native, file, pcap ? placeFilter(fs.readFileSync(file), pcap.code, FILTER_SLOTS, file) : undefined);
  try {
    obj.setGlobal(BPF_NAMES.config, encodeConfig(options.filter));
    obj.setMaxEntries(BPF_NAMES.events, options.ringBytes ?? 4 << 20);
    const copies = Array.from({ length: Math.min(checkpoints, NF_CHECKPOINTS) }, (_, i) => BPF_NAMES.checkpoint(i));
    obj.selectPrograms([...tracingPrograms(options), ...extra, ...copies]);
    for (const prog of copies) obj.setProgramType(prog, BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER);
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

/**
 * The options fitted to this kernel: what its BPF takes
 * (src/kernel/bpf-support.ts) and the filter's packet reader
 * (src/kernel/skb-reader.ts), with why not, if it offers none.
 */
export async function withSkbReader<T extends TracingObjectOptions>(options: T, native: Native): Promise<{ options: T; note: string | null }> {
  const [kernel, chosen] = await Promise.all([
    options.kernel ?? bpfSupportOnce(native),
    options.filter.reader ? { reader: options.filter.reader, note: null } : skbReaderOnce(native),
  ]);
  return { options: { ...options, kernel, filter: { ...options.filter, reader: chosen.reader } }, note: chosen.note };
}

/** Opens and loads on a worker thread, as openTracingObject says; closed again if the load fails. */
export async function loadTracingObject(given: TracingObjectOptions, checkpoints = 0, extra: readonly string[] = []): Promise<BpfObject> {
  const native = given.native ?? loadNative();
  const { options } = await withSkbReader(given, native);
  const obj = openTracingObject(native, options, checkpoints, extra);
  try {
    const loading = obj.loadAsync();
    options.whileLoading?.();
    await loading;
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}
