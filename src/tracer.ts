/**
 * The library's core: load and attach the programs, then yield the events
 * the kernel emits, as an async iterable, until close().
 *
 *   const tracer = await createTracer({ filter });
 *   for await (const ev of tracer) { ... }   // ends after tracer.close()
 */
import { BPF_NAMES } from './bpf/layout';
import { encodeConfig, type KernelFilter } from './bpf/config';
import { BpfObject } from './bpf/object';
import { decodeBatch } from './decode';
import type { TraceEvent } from './events';
import { NetnsResolver } from './names/netns';
import { bpfObjectPath, loadNative, type Native, type RingHandle } from './native';

export interface TracerOptions {
  filter: KernelFilter;
  /** Ring buffer size in bytes, a power of two (default 4 MiB). */
  ringBytes?: number;
  native?: Native;
  resolver?: NetnsResolver;
}

export class Tracer implements AsyncIterable<TraceEvent> {
  private readonly obj: BpfObject;
  private readonly ring: RingHandle;
  private readonly resolver: NetnsResolver;
  private queue: TraceEvent[] = [];
  private head = 0;
  private lostAtClose = 0;
  private wake: (() => void) | undefined;
  private closed = false;
  /** Milliseconds from open to every program attached. */
  readonly startupMs: number;

  constructor(options: TracerOptions) {
    const started = performance.now();
    this.resolver = options.resolver ?? new NetnsResolver();
    this.obj = new BpfObject(options.native ?? loadNative(), bpfObjectPath(BPF_NAMES.object));
    try {
      this.obj.setGlobal(BPF_NAMES.config, encodeConfig(options.filter));
      this.obj.setMaxEntries(BPF_NAMES.events, options.ringBytes ?? 4 << 20);
      this.obj.load();
      for (const prog of BPF_NAMES.programs) this.obj.attach(prog);
      this.ring = this.obj.openRing(BPF_NAMES.events, (batch) => this.accept(batch));
    } catch (err) {
      this.obj.close();
      throw err;
    }
    this.startupMs = performance.now() - started;
  }

  private accept(batch: Buffer): void {
    const start = this.queue.length;
    decodeBatch(batch, (ev) => {
      ev.netns_name = this.resolver.name(ev.netns);
      this.queue.push(ev);
    });
    // The ring is shared by all CPUs: order each batch by kernel time.
    if (this.queue.length - start > 1) {
      const tail = this.queue.splice(start).sort((a, b) => a.time_ns - b.time_ns);
      this.queue.push(...tail);
    }
    this.wake?.();
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
      const rest = this.obj.consumeRing(this.ring);
      if (rest) this.accept(rest);
      this.lostAtClose = this.lost();
    } finally {
      this.closed = true;
      this.obj.close();
      this.wake?.();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TraceEvent> {
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

/** Loads and attaches the programs; events flow from the moment it resolves. */
export async function createTracer(options: TracerOptions): Promise<Tracer> {
  return new Tracer(options);
}
