/**
 * The library's core: load and attach the programs (and, if asked, set up
 * netfilter tracing in every namespace), then yield the kernel's events as
 * an async iterable until close().
 *
 *   const tracer = await createTracer({ filter });
 *   for await (const ev of tracer) { ... }   // ends after tracer.close()
 */
import * as fs from 'node:fs';
import { randomBytes } from './random';
import { BPF_NAMES } from './bpf/layout';
import type { KernelFilter } from './bpf/config';
import type { BpfObject } from './bpf/object';
import { loadTracingObject, openTracingObject, tracingPrograms, type TracingObjectOptions } from './bpf/tracing-object';
import { decodeBatch } from './decode';
import { describeError } from './errors';
import type { KernelEvent } from './events';
import { nameDrop, nameRoute } from './kernel/names';
import { NetnsResolver, type KnownNetns } from './names/netns';
import { loadNative, type Native, type WatchHandle } from './native';
import { traceMarkerExpressions, tracePortExpressions } from './netfilter/nftables';
import { NetfilterWatcher, TABLE_PREFIX } from './netfilter/watch';


export interface TracerOptions extends TracingObjectOptions {
  filter: KernelFilter;
  /** For filtered tracing of a TCP/UDP probe: its protocol and source port, to trace it in nftables too. */
  flow?: { proto: 'tcp' | 'udp'; port: number };
  /** Also trace netfilter: tables, chains, rules and verdicts, in every namespace. */
  netfilter?: boolean;
  /** Where to trace netfilter (default: every namespace on the system). */
  namespaces?: KnownNetns[];
  resolver?: NetnsResolver;
  /**
   * The object from loadTracingObject(these options), started early so that
   * the kernel verified it while the caller loaded its code (not with netfilter).
   */
  preloaded?: Promise<BpfObject>;
}

export class Tracer implements AsyncIterable<KernelEvent> {
  private readonly native: Native;
  private readonly obj: BpfObject;
  private readonly ring: WatchHandle;
  private readonly resolver: NetnsResolver;
  /** Netfilter tracing, when asked for. */
  readonly netfilter: NetfilterWatcher | undefined;
  /** What does not work on this kernel or in some namespace, in words. */
  readonly notes: string[] = [];
  private queue: KernelEvent[] = [];
  private head = 0;
  private lostAtClose = 0;
  private wake: (() => void) | undefined;
  private closed = false;
  /** Programs loaded beyond the usual ones (table verdicts where checkpoints are missing). */
  private extra: string[] = [];
  /** Milliseconds from open to everything attached. */
  readonly startupMs: number;

  /** `loaded`: the object already loaded for these options (then without netfilter). */
  constructor(options: TracerOptions, loaded?: BpfObject) {
    const started = performance.now();
    this.native = options.native ?? loadNative();
    this.resolver = options.resolver ?? new NetnsResolver();
    // Netfilter first: what judges packets where decides how many checkpoint programs to load.
    if (options.netfilter) {
      this.netfilter = new NetfilterWatcher(
        this.native,
        { traceRules: traceRules(options), table: `${TABLE_PREFIX}${randomBytes(4).toString('hex')}` },
        options.namespaces ?? this.resolver.list(),
      );
    }
    try {
      let checkpoints = this.netfilter?.checkpointsNeeded() ?? 0;
      let obj: BpfObject;
      try {
        obj = loaded ?? this.openObject(options, checkpoints);
      } catch (err) {
        if (checkpoints === 0) throw err;
        checkpoints = 0;
        this.netfilter!.forgetCheckpoints();
        obj = this.withoutCheckpoints(options, describeError(err));
      }
      this.obj = obj;
      try {
        for (const prog of [...tracingPrograms(options), ...this.extra]) obj.attach(prog);
        this.ring = obj.openRing(BPF_NAMES.events, (batch) => this.accept(batch));
        if (checkpoints > 0) this.netfilter?.attachCheckpoints(obj);
      } catch (err) {
        obj.close();
        throw err;
      }
    } catch (err) {
      this.netfilter?.close();
      throw err;
    }
    for (const ns of this.netfilter?.namespaces ?? []) {
      for (const note of ns.notes) this.notes.push(`${ns.netns.name ?? ns.netns.inode}: ${note}`);
    }
    this.startupMs = performance.now() - started;
  }

  /**
   * Kernels without BPF netfilter links (before 6.4): iptables-legacy tables
   * report their verdicts through fexit on the functions that evaluate them
   * (for the families whose module is loaded), nftables through tracing.
   */
  private withoutCheckpoints(options: TracerOptions, why: string): BpfObject {
    const families = ([4, 6] as const).filter((f) => fs.existsSync(`/sys/module/${f === 4 ? 'ip_tables' : 'ip6_tables'}`));
    const programs = families.map((f) => BPF_NAMES.tableVerdicts[f]);
    if (programs.length > 0) {
      try {
        const obj = this.openObject(options, 0, programs);
        this.extra = programs;
        this.notes.push(`no BPF netfilter links on this kernel (${why}): iptables-legacy verdicts come from fexit on ${families.map((f) => (f === 4 ? 'ipt_do_table' : 'ip6t_do_table')).join(' and ')}, nftables ones from tracing`);
        return obj;
      } catch (err) {
        why += `; fexit: ${describeError(err)}`;
      }
    }
    this.notes.push(`no BPF netfilter links on this kernel (${why}): iptables-legacy tables are not seen, nftables ones through tracing only`);
    return this.openObject(options, 0);
  }

  /** Opens and loads the object, with `checkpoints` netfilter checkpoint programs and `extra` ones. */
  private openObject(options: TracerOptions, checkpoints: number, extra: readonly string[] = []): BpfObject {
    const obj = openTracingObject(this.native, options, checkpoints, extra);
    try {
      obj.load();
      return obj;
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** Called from the addon once per wake-up: must not throw, or delivery would stop. */
  private accept(batch: Buffer): void {
    try {
      this.acceptBatch(batch);
    } catch (err) {
      this.notes.push(`a batch of events could not be read: ${describeError(err)}`);
    }
  }

  private acceptBatch(batch: Buffer): void {
    const start = this.queue.length;
    decodeBatch(batch, (ev) => {
      ev.netns_name = this.resolver.name(ev.netns);
      if (ev.kind === 'drop') nameDrop(ev);
      else if (ev.kind === 'route') nameRoute(ev);
      this.queue.push(ev);
    });
    // The ring is shared by all CPUs: order each batch by kernel time.
    if (this.queue.length - start > 1) {
      const tail = this.queue.slice(start).sort((a, b) => a.time_ns - b.time_ns);
      for (let i = 0; i < tail.length; i++) this.queue[start + i] = tail[i]; // no push(...tail): a big batch overflows the arguments
    }
    this.wake?.();
  }

  /** Ties the route lookups of process `pid` (the probe's sender) to the probe. */
  addSender(pid: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(pid);
    this.obj.update(BPF_NAMES.senders, key, Buffer.from([1]));
  }

  /** Records the kernel could not deliver because the ring buffer was full. */
  lost(): number {
    if (this.closed) return this.lostAtClose;
    const values = this.obj.lookup(BPF_NAMES.stats, Buffer.alloc(4));
    if (!values) return 0;
    let lost = 0;
    // One 8-byte-aligned struct tp_stats per possible CPU; `lost` is its first field.
    for (let off = 0; off + 8 <= values.length; off += 8) lost += Number(values.readBigUInt64LE(off));
    return lost;
  }

  /** Drains what the kernel has already emitted, detaches everything and ends the iteration. */
  close(): void {
    if (this.closed) return;
    try {
      const rest = this.obj.drainRing(this.ring);
      if (rest) this.accept(rest);
      this.netfilter?.drain();
      this.lostAtClose = this.lost();
    } finally {
      this.closed = true;
      this.netfilter?.close();
      this.obj.close();
      this.wake?.();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<KernelEvent> {
    for (;;) {
      while (this.head < this.queue.length) yield this.queue[this.head++];
      this.queue = [];
      this.head = 0;
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/**
 * nftables rules that mark the probe's packets for tracing: by marker for
 * pings, by source or destination port for a TCP/UDP probe. Passive filters
 * are not translated to nftables: their verdicts come from checkpoints.
 */
function traceRules(options: TracerOptions): Buffer[][] {
  const { filter, flow } = options;
  if (filter.match !== 'filter') {
    return [1, 58].map((l4) => traceMarkerExpressions(l4, filter.markerOffset, filter.marker));
  }
  if (!flow) return [];
  const l4 = flow.proto === 'tcp' ? 6 : 17;
  return [tracePortExpressions(l4, flow.port, 'sport'), tracePortExpressions(l4, flow.port, 'dport')];
}

/** Loads and attaches the programs; events flow from the moment it resolves. */
export async function createTracer(options: TracerOptions): Promise<Tracer> {
  if (options.netfilter) return new Tracer(options); // the plans decide what to load
  const native = options.native ?? loadNative();
  const obj = await (options.preloaded ?? loadTracingObject({ ...options, native }));
  try {
    return new Tracer({ ...options, native }, obj);
  } catch (err) {
    obj.close();
    throw err;
  }
}
