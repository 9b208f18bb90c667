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
import { BPF_NAMES, HEADER, STATS } from './bpf/layout';
import type { KernelFilter } from './bpf/config';
import type { BpfObject } from './bpf/object';
import { loadTracingObject, tracingPrograms, withSkbReader, type TracingObjectOptions } from './bpf/tracing-object';
import { forEachRecord } from './batch';
import { decodeBatch, readU64, routeStackIds } from './decode';
import { routeStacks } from './kernel/route-purpose';
import { traceProgramReturns, type ProgramTarget, type ProgramTracing } from './kernel/program-returns';
import { describeError } from './errors';
import type { DropEvent, KernelEvent, RouteEvent } from './events';
import { loadTableNames, lookUpKernelNames, nameDropCached, nameRoute, systemKallsyms, tableNamesLoaded } from './kernel/names';
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

/** What a Tracer runs on, ready before it attaches (createTracer prepares it without blocking). */
interface Prepared {
  resolver: NetnsResolver;
  /** Loaded, not attached. */
  obj: BpfObject;
  /** What to attach: the trace's programs and any extra ones (table verdicts). */
  programs: string[];
  netfilter?: NetfilterWatcher;
  /** Checkpoint programs loaded, for the netfilter plans to attach. */
  checkpoints: number;
  notes: string[];
  /** performance.now() when createTracer began. */
  started: number;
}

export class Tracer implements AsyncIterable<KernelEvent> {
  private readonly obj: BpfObject;
  private readonly ring: WatchHandle;
  private readonly resolver: NetnsResolver;
  /** Netfilter tracing, when asked for. */
  readonly netfilter: NetfilterWatcher | undefined;
  /** What does not work on this kernel or in some namespace, in words. */
  readonly notes: string[] = [];
  /** Events decoded and not yet handed out (from `head`): one batch's, as a rule. */
  private queue: KernelEvent[] = [];
  private head = 0;
  /**
   * Batches read and not yet decoded, oldest first. Kept as the ring gave them (~110 bytes a record,
   * against ~600 for an event) and decoded when the consumer comes to them: events then live for a
   * turn of the event loop, not for as long as a slow reader (a pipe to jq) makes tracepkt wait, which
   * had them promoted to V8's old generation by the thousand and its heap grown to hold 32 K of them.
   */
  private undecoded: { batch: Buffer; records: number; lostBefore: number; names: Map<number, string | null> }[] = [];
  private undecodedRecords = 0;
  /** Events waiting for a name the caches lack; the iterator holds them (and what follows) back until named. */
  private unnamed = new Set<KernelEvent>();
  private naming: Promise<void> | undefined;
  private lostAtClose = 0;
  /** Records read while the queue was full (QUEUE_MAX): lost here, not in the kernel. */
  private lostBehind = 0;
  /** The kernel-time spans of those records, not yet taken. */
  private behindGaps: [number, number][] = [];
  /** fexit on the XDP and tc programs of the namespaces known, when asked for (traceProgramReturns). */
  private programTracing: ProgramTracing | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  /** Milliseconds from open to everything attached. */
  readonly startupMs: number;

  /**
   * Attaches what createTracer prepared: a few system calls per program and
   * checkpoint, nothing loaded, scanned or exchanged here. On failure
   * everything prepared is closed.
   */
  constructor(p: Prepared) {
    this.resolver = p.resolver;
    this.obj = p.obj;
    this.netfilter = p.netfilter;
    this.notes.push(...p.notes);
    try {
      for (const prog of p.programs) p.obj.attach(prog);
      this.ring = p.obj.openRing(BPF_NAMES.events, (batch) => this.accept(batch));
      if (p.checkpoints > 0) p.netfilter?.attachCheckpoints(p.obj);
    } catch (err) {
      p.obj.close();
      p.netfilter?.close();
      throw err;
    }
    for (const ns of p.netfilter?.namespaces ?? []) {
      for (const note of ns.notes) this.notes.push(`${ns.netns.name ?? ns.netns.inode}: ${note}`);
    }
    this.startupMs = performance.now() - p.started;
  }

  /** Called from the addon once per wake-up: must not throw, or delivery would stop. */
  private accept(batch: Buffer): void {
    try {
      // A Buffer the addon made has another hidden class than one made in JavaScript: viewed as the
      // latter (no copy), the decoder's optimised code (src/commands/passive.ts warms it) stays valid.
      this.acceptBatch(Buffer.from(batch.buffer, batch.byteOffset, batch.length));
    } catch (err) {
      this.notes.push(`a batch of events could not be read: ${describeError(err)}`);
    }
  }

  /**
   * Keeps a batch as it is, to be decoded when the consumer comes to it
   * (decodeNext), unless tracepkt is already too far behind.
   */
  private acceptBatch(batch: Buffer): void {
    // Behind by more than the bound: these records are lost, counted as the kernel counts its own,
    // and memory stays flat (kept, they would grow without end under a flood).
    if (this.queue.length - this.head + this.undecodedRecords >= QUEUE_MAX) {
      // Which journeys they were is unknown: the kernel time they span is kept (takeUserSpaceGaps).
      let from = Infinity;
      let to = -Infinity;
      forEachRecord(batch, (rec) => {
        this.lostBehind++;
        const t = recordTime(batch, rec);
        from = Math.min(from, t);
        to = Math.max(to, t);
      });
      if (from <= to) this.behindGaps.push([from, to]);
      return;
    }
    // Counted, and their namespaces named as they are now (a namespace deleted before they are decoded
    // keeps its name; one not known yet is looked up at once, beside the consumer, not in its way).
    let records = 0;
    const names = new Map<number, string | null>();
    let last = 0;
    let unknown = false;
    forEachRecord(batch, (rec) => {
      records++;
      const netns = batch.readUInt32LE(rec + HEADER.netns[0]);
      if (netns === last || netns === 0 || names.has(netns)) return;
      last = netns;
      const name = this.resolver.cached(netns);
      if (name !== undefined) names.set(netns, name);
      else {
        this.resolver.want(netns);
        unknown = true;
      }
    });
    if (unknown) void this.resolver.scanAsync().catch(() => undefined);
    // Records dropped here before these count as lost as the kernel's do: no hop is compared across the gap (src/tidy.ts).
    this.undecoded.push({ batch, records, lostBefore: this.lostBehind, names });
    this.undecodedRecords += records;
    this.wake?.();
  }

  /**
   * Decodes the oldest batch kept and names its events from the caches alone:
   * the ring-buffer path never touches a file. What the caches lack is looked
   * up beside it (nameMissing), and those events wait for it in the queue.
   */
  private decodeNext(): void {
    const { batch, records, lostBefore, names } = this.undecoded.shift()!;
    this.undecodedRecords -= records;
    const start = this.queue.length;
    try {
      this.decodeInto(batch, lostBefore, names);
    } catch (err) {
      this.notes.push(`a batch of events could not be read: ${describeError(err)}`);
    }
    if (this.unnamed.size > 0) this.nameMissing();
    // The ring is shared by all CPUs: order each batch by kernel time (mostly in order already: checked first).
    if (this.queue.length - start > 1 && !inTimeOrder(this.queue, start)) {
      const tail = this.queue.slice(start).sort((a, b) => a.time_ns - b.time_ns);
      for (let i = 0; i < tail.length; i++) this.queue[start + i] = tail[i]; // no push(...tail): a big batch overflows the arguments
    }
  }

  private decodeInto(batch: Buffer, lostBefore: number, names: Map<number, string | null>): void {
    decodeBatch(batch, (ev) => {
      if (lostBefore !== 0) ev.lost_so_far += lostBefore;
      // Namespace 0: the hook saw no device (a drop before one was set); nothing to wait for.
      const name = ev.netns === 0 ? null : names.has(ev.netns) ? names.get(ev.netns)! : this.resolver.cached(ev.netns);
      let named = name !== undefined;
      if (!named) this.resolver.want(ev.netns);
      ev.netns_name = name ?? null;
      if (ev.kind === 'drop') named = nameDropCached(ev) && named;
      else if (ev.kind === 'route') {
        if (tableNamesLoaded()) nameRoute(ev);
        else named = false;
        const stack = routeStackIds.get(ev);
        // Its callers are named in the same pass over kallsyms as the drops' places: one pass per trace, not two.
        if (stack !== undefined && !this.readStack(ev, stack)) named = false;
      }
      if (!named) this.unnamed.add(ev);
      this.queue.push(ev);
    });
  }

  /**
   * A route lookup's caller chain, read from tp_stacks while the object lives
   * (a map lookup, no file). True when its frames' names are known already.
   */
  private readStack(ev: RouteEvent, id: number): boolean {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(id);
    const value = this.obj.lookup(BPF_NAMES.stacks, key);
    if (!value) return true;
    const frames: bigint[] = [];
    for (let off = 0; off + 8 <= value.length; off += 8) {
      const ip = value.readBigUInt64LE(off);
      if (ip === 0n) break;
      frames.push(ip);
    }
    routeStacks.set(ev, frames);
    return frames.every((ip) => systemKallsyms().cached(ip) !== undefined);
  }

  /** Looks up what the waiting events need (namespaces, drop reasons and places, table names), asynchronously. */
  private nameMissing(): void {
    if (this.naming) return;
    const waiting = [...this.unnamed];
    this.naming = (async () => {
      if (waiting.some((e) => this.resolver.cached(e.netns) === undefined)) await this.resolver.scanAsync().catch(() => undefined);
      // A scan already under way when these came may not have looked for them: then one more.
      if (waiting.some((e) => this.resolver.cached(e.netns) === undefined)) await this.resolver.scanAsync().catch(() => undefined);
      const drops = waiting.filter((e): e is DropEvent => e.kind === 'drop');
      const callers = waiting.flatMap((e) => (e.kind === 'route' && routeStacks.get(e)) || []);
      await Promise.all([drops.length || callers.length ? lookUpKernelNames(drops, callers) : undefined, loadTableNames()]);
    })()
      .catch(() => undefined) // what could not be looked up stays a number: never a reason to stop
      .finally(() => {
        for (const ev of waiting) {
          ev.netns_name = ev.netns === 0 ? null : (this.resolver.cached(ev.netns) ?? null);
          try {
            if (ev.kind === 'drop') nameDropCached(ev);
            else if (ev.kind === 'route') nameRoute(ev);
          } catch {
            // left as decoded
          }
          this.unnamed.delete(ev);
        }
        this.naming = undefined;
        if (this.unnamed.size > 0) this.nameMissing();
        this.wake?.();
      });
  }

  /** Kernel time of the oldest event read but not yet handed out (waiting for a name, say); null when none waits. */
  pendingSince(): number | null {
    if (this.head < this.queue.length) return this.queue[this.head].time_ns;
    if (this.undecoded.length === 0) return null;
    const { batch } = this.undecoded[0];
    let oldest = Infinity;
    forEachRecord(batch, (rec) => (oldest = Math.min(oldest, recordTime(batch, rec))));
    return oldest;
  }

  /** Ties the route lookups of process `pid` (the probe's sender) to the probe. */
  addSender(pid: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(pid);
    this.obj.update(BPF_NAMES.senders, key, Buffer.from([1]));
  }

  /**
   * Traces what the XDP and tc programs attached in the namespaces known
   * return for the traced packets (src/kernel/program-returns.ts): call
   * before the packets are sent. Returns the programs traced; what could
   * not be is in the notes.
   */
  async traceProgramReturns(native: Native, sender?: string): Promise<readonly ProgramTarget[]> {
    const known = this.netfilter?.namespaces.map((ns) => ns.netns) ?? (await this.resolver.listAsync());
    // The sender's namespace first: when there are more programs than copies, those nearest the probe are traced.
    let first: number | null = null;
    try {
      first = sender ? fs.statSync(sender).ino : null;
    } catch {
      // gone: the order matters little then
    }
    const namespaces = [...known].sort((a, b) => Number(b.inode === first) - Number(a.inode === first));
    this.programTracing = await traceProgramReturns(native, this.obj, namespaces);
    this.notes.push(...this.programTracing.notes);
    if (this.closed) for (const obj of this.programTracing.objs) obj.close();
    return this.programTracing.targets;
  }

  /** The kernel-time spans of the records lost here since the last call: journeys that span them may lack sightings. */
  takeUserSpaceGaps(): [number, number][] {
    const gaps = this.behindGaps;
    this.behindGaps = [];
    return gaps;
  }

  /** Of lost(): the records read while the queue was full (user space too far behind), not the kernel's. */
  lostInUserSpace(): number {
    return this.lostBehind;
  }

  /**
   * Records lost: the kernel's, when the ring buffer was full; the addon's, when memory ran out for a
   * batch; and those read while the queue was full (lostInUserSpace).
   */
  lost(): number {
    if (this.closed) return this.lostAtClose;
    const values = this.obj.lookup(BPF_NAMES.stats, Buffer.alloc(4));
    // One struct tp_stats for all CPUs.
    return (values ? Number(values.readBigUInt64LE(STATS.lost[0])) : 0) + this.obj.ringLost(this.ring) + this.lostBehind;
  }

  /** Drains what the kernel has already emitted, detaches everything and ends the iteration. */
  close(): void {
    if (this.closed) return;
    try {
      for (const obj of this.programTracing?.objs ?? []) obj.close(); // no more records from them: what is in the ring is all
      const rest = this.obj.drainRing(this.ring);
      if (rest) this.accept(rest);
      // Decoded while the object lives: a route record's caller chain is read from its map (readStack).
      while (this.undecoded.length > 0) this.decodeNext();
      this.netfilter?.drain();
      this.lostAtClose = this.lost();
    } finally {
      this.closed = true;
      this.netfilter?.close();
      this.obj.close();
      this.wake?.();
    }
  }

  /**
   * The events in order, as many at a time as are ready: what one wake-up
   * brought, up to the first event still waiting for a name (it and what
   * follows come once it is named). No promise per event: under a flood the
   * consumer takes a batch per turn of the event loop.
   */
  async *batches(): AsyncGenerator<KernelEvent[]> {
    for (;;) {
      if (this.head >= this.queue.length && this.undecoded.length > 0) {
        // As many kept batches as make a slice: a backlog of small ones goes out as fast as it came in.
        this.queue = [];
        this.head = 0;
        while (this.undecoded.length > 0 && this.queue.length < SLICE_MAX) this.decodeNext();
      }
      while (this.head < this.queue.length) {
        let end = this.head;
        if (this.unnamed.size === 0) end = this.queue.length;
        else while (end < this.queue.length && !this.unnamed.has(this.queue[end])) end++;
        if (end === this.head) {
          this.nameMissing();
          await this.naming; // in order: what follows waits too
          continue;
        }
        // A backlog (events waited for a name) goes out in slices, with a turn of the event loop
        // between: meanwhile the ring is read, and does not overflow while one slice is handled.
        end = Math.min(end, this.head + SLICE_MAX);
        const ready = this.head === 0 && end === this.queue.length ? this.queue : this.queue.slice(this.head, end);
        if (ready === this.queue) this.queue = [];
        else this.head = end;
        yield ready;
        if (this.head > 0 && this.head < this.queue.length) {
          if (this.head >= SLICE_MAX * 4) {
            this.queue = this.queue.slice(this.head); // what was handed out is not kept while more comes
            this.head = 0;
          }
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      if (this.undecoded.length > 0) {
        // A backlog: a turn of the event loop before the next batch, so that the ring is read meanwhile.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      this.queue = [];
      this.head = 0;
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<KernelEvent> {
    for await (const batch of this.batches()) yield* batch;
  }
}

/**
 * Records read and waiting to be handed out, at most (~4 MB kept as read; a
 * tenth of a second of a ping flood, twice what the ring holds). A consumer
 * further behind is not catching up: records that come meanwhile are counted
 * lost rather than kept, and memory stays flat.
 */
const QUEUE_MAX = 32 * 1024;
/** Events handed out at once from a backlog, at most. */
const SLICE_MAX = 4096;

/** A record's kernel time (CLOCK_MONOTONIC ns), read from its header. */
const recordTime = (batch: Buffer, rec: number): number => readU64(batch, rec + HEADER.time_ns[0]);

function inTimeOrder(events: readonly KernelEvent[], from: number): boolean {
  for (let i = from + 1; i < events.length; i++) if (events[i].time_ns < events[i - 1].time_ns) return false;
  return true;
}

/**
 * nftables rules that mark the probe's packets for tracing: by marker for
 * pings, by source or destination port for a TCP/UDP probe. Passive filters
 * are not translated to nftables: their verdicts come from checkpoints.
 */
/**
 * Where the inner echo's ICMP header starts, counted from the outer packet's
 * transport header, in the tunnels nftables can be asked to look into: UDP
 * (VXLAN, and Geneve without options: UDP, 8 bytes of tunnel header, an
 * Ethernet header), GRE (4 bytes, 8 with a key; an Ethernet header for
 * gretap), IP in IP. Each for an inner IPv4 (20 bytes) and IPv6 (40) header.
 */
const TUNNELLED_ECHOES: { l4: number; before: number }[] = [
  ...[20, 40].map((ip) => ({ l4: 17, before: 8 + 8 + 14 + ip })),
  ...[4, 8, 4 + 14, 8 + 14].flatMap((gre) => [20, 40].map((ip) => ({ l4: 47, before: gre + ip }))),
  { l4: 4, before: 20 },
  { l4: 41, before: 40 },
];

function traceRules(options: TracerOptions): Buffer[][] {
  const { filter, flow } = options;
  if (filter.match === undefined || filter.match === 'marker') {
    return [
      ...[1, 58].map((l4) => traceMarkerExpressions(l4, filter.markerOffset, filter.marker)),
      // The probe in a tunnel: the marker behind the tunnel's headers, the inner IP header and its ICMP header.
      ...TUNNELLED_ECHOES.map(({ l4, before }) => traceMarkerExpressions(l4, before + filter.markerOffset, filter.marker)),
    ];
  }
  if (!flow) return [];
  const l4 = flow.proto === 'tcp' ? 6 : 17;
  return [tracePortExpressions(l4, flow.port, 'sport'), tracePortExpressions(l4, flow.port, 'dport')];
}

/**
 * Loads and attaches the programs; events flow from the moment it resolves.
 * Nothing on the way blocks the event loop: the kernel verifies the object
 * on a worker thread, namespaces are scanned and netlink answers awaited
 * asynchronously; only the attaching itself (system calls) is synchronous.
 */
export async function createTracer(given: TracerOptions): Promise<Tracer> {
  const started = performance.now();
  const native = given.native ?? loadNative();
  void loadTableNames(); // small, and route lookups need it: read while the programs load
  const { options, note } = await withSkbReader({ ...given, native }, native);
  const resolver = options.resolver ?? new NetnsResolver();
  const prepared: Prepared = options.netfilter
    ? { resolver, started, ...(await prepareNetfilter(native, resolver, options)) }
    : { resolver, started, obj: await (options.preloaded ?? loadTracingObject(options)), programs: tracingPrograms(options), checkpoints: 0, notes: [] };
  const tracer = new Tracer(prepared);
  if (note) tracer.notes.push(note);
  return tracer;
}

/** Netfilter set up in every namespace first: what judges packets where decides how many checkpoint programs to load. */
async function prepareNetfilter(native: Native, resolver: NetnsResolver, options: TracerOptions): Promise<Omit<Prepared, 'resolver' | 'started'>> {
  const netfilter = await NetfilterWatcher.start(
    native,
    { traceRules: traceRules(options), table: `${TABLE_PREFIX}${randomBytes(4).toString('hex')}` },
    options.namespaces ?? (await resolver.listAsync()),
  );
  try {
    const notes: string[] = [];
    const checkpoints = netfilter.checkpointsNeeded();
    if (checkpoints > 0) {
      try {
        return { obj: await loadTracingObject(options, checkpoints), programs: tracingPrograms(options), netfilter, checkpoints, notes };
      } catch (err) {
        netfilter.forgetCheckpoints();
        const { obj, extra } = await withoutCheckpoints(options, describeError(err), notes);
        return { obj, programs: [...tracingPrograms(options), ...extra], netfilter, checkpoints: 0, notes };
      }
    }
    return { obj: await loadTracingObject(options), programs: tracingPrograms(options), netfilter, checkpoints: 0, notes };
  } catch (err) {
    netfilter.close();
    throw err;
  }
}

/**
 * Kernels without BPF netfilter links (before 6.4): iptables-legacy tables
 * report their verdicts through fexit on the functions that evaluate them
 * (for the families whose module is loaded), nftables through tracing.
 */
async function withoutCheckpoints(options: TracerOptions, why: string, notes: string[]): Promise<{ obj: BpfObject; extra: string[] }> {
  const families = ([4, 6] as const).filter((f) => fs.existsSync(`/sys/module/${f === 4 ? 'ip_tables' : 'ip6_tables'}`));
  // The functions' arguments as 5.16 ordered them, then as before: the verifier refuses the other form.
  for (const programs of families.length > 0 ? [BPF_NAMES.tableVerdicts, BPF_NAMES.tableVerdictsTableLast] : []) {
    const extra = families.map((f) => programs[f]);
    try {
      const obj = await loadTracingObject(options, 0, extra);
      notes.push(`no BPF netfilter links on this kernel (${why}): iptables-legacy verdicts come from fexit on ${families.map((f) => (f === 4 ? 'ipt_do_table' : 'ip6t_do_table')).join(' and ')}, nftables ones from tracing`);
      return { obj, extra };
    } catch (err) {
      if (programs === BPF_NAMES.tableVerdictsTableLast) why += `; fexit: ${describeError(err)}`;
    }
  }
  notes.push(`no BPF netfilter links on this kernel (${why}): iptables-legacy tables are not seen, nftables ones through tracing only`);
  return { obj: await loadTracingObject(options), extra: [] };
}
