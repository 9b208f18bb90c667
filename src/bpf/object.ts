/**
 * One loaded BPF object: open, configure, load, attach, read, close. Wraps
 * every addon failure with what we were doing, and makes close idempotent so
 * every exit path can call it.
 */
import { wrapNative } from '../errors';
import type { Native, ObjectHandle, WatchHandle } from '../native';

export class BpfObject {
  private handle: ObjectHandle | undefined;
  private rings: WatchHandle[] = [];

  /**
   * The object file at `file`, or `image`, that file's bytes as user space
   * changed them (a filter placed: src/bpf/filter-slot.ts).
   */
  constructor(private readonly native: Native, readonly file: string, readonly image?: Buffer) {
    try {
      this.handle = image ? native.open(file, image) : native.open(file);
    } catch (err) {
      throw wrapNative(err, `cannot open BPF object ${file}`);
    }
  }

  private get h(): ObjectHandle {
    if (!this.handle) throw new Error(`BPF object ${this.file} is closed`);
    return this.handle;
  }

  programs(): string[] {
    return this.native.programs(this.h);
  }

  setGlobal(name: string, value: Buffer): void {
    this.call(`cannot set ${name}`, () => this.native.setGlobal(this.h, name, value));
  }

  setMaxEntries(map: string, n: number): void {
    this.call(`cannot size map ${map}`, () => this.native.setMaxEntries(this.h, map, n));
  }

  /** Loads only the programs named, so a run pays only for what it uses. */
  selectPrograms(names: readonly string[]): void {
    for (const prog of this.programs()) {
      this.call(`cannot select program ${prog}`, () => this.native.setAutoload(this.h, prog, names.includes(prog)));
    }
  }

  setProgramType(prog: string, type: number, expectedAttachType: number): void {
    this.call(`cannot set the type of ${prog}`, () => this.native.setProgramType(this.h, prog, type, expectedAttachType));
  }

  /** Before load: every map takes the loaded map of the same name in `from` (another instance of the same file). */
  reuseMaps(from: BpfObject): void {
    this.call(`cannot share the maps of ${from.file}`, () => this.native.reuseMaps(this.h, from.h));
  }

  /** Before load: fexit program `prog` will trace `func`, the main function of the loaded BPF program `targetId`. */
  setAttachTarget(prog: string, targetId: number, func: string): void {
    this.call(`cannot aim ${prog} at program ${targetId}`, () => this.native.setAttachTarget(this.h, prog, targetId, func));
  }

  /** The kernel's id of a loaded program. */
  programId(prog: string): number {
    return this.call(`cannot ask the id of ${prog}`, () => this.native.programId(this.h, prog));
  }

  load(): void {
    this.call(`cannot load ${this.file}`, () => this.native.load(this.h));
  }

  /** load() off the main thread; nothing else may use the object until it settles. */
  async loadAsync(): Promise<void> {
    try {
      await this.native.loadAsync(this.h);
    } catch (err) {
      throw wrapNative(err, `cannot load ${this.file}`);
    }
  }

  attach(prog: string): void {
    this.call(`cannot attach ${prog}`, () => this.native.attach(this.h, prog));
  }

  attachNetfilter(prog: string, pf: number, hooknum: number, priority: number, flags = 0): void {
    this.call(`cannot attach ${prog} to netfilter`, () =>
      this.native.attachNetfilter(this.h, prog, pf, hooknum, priority, flags),
    );
  }

  /** A link to network device `ifindex` in the calling thread's namespace (XDP, tcx). */
  attachLink(prog: string, ifindex: number, attachType: number, flags = 0): void {
    this.call(`cannot attach ${prog} to interface ${ifindex}`, () => this.native.attachLink(this.h, prog, ifindex, attachType, flags));
  }

  /** Pins the program at `path` (a bpffs), for tools that take a path (tc). */
  pin(prog: string, path: string): void {
    this.call(`cannot pin ${prog}`, () => this.native.pinProgram(this.h, prog, path));
  }

  lookup(map: string, key: Buffer): Buffer | null {
    return this.call(`cannot read map ${map}`, () => this.native.mapLookup(this.h, map, key));
  }

  update(map: string, key: Buffer, value: Buffer): void {
    this.call(`cannot update map ${map}`, () => this.native.mapUpdate(this.h, map, key, value));
  }

  openRing(map: string, onBatch: (batch: Buffer) => void): WatchHandle {
    const ring = this.call(`cannot read ring buffer ${map}`, () => this.native.openRing(this.h, map, onBatch));
    this.rings.push(ring);
    return ring;
  }

  drainRing(ring: WatchHandle): Buffer | null {
    return this.call('cannot read the ring buffer', () => this.native.drain(ring));
  }

  /** Records read from the ring that the addon could not hand over (out of memory). */
  ringLost(ring: WatchHandle): number {
    return this.native.watchLost(ring);
  }

  /** Detaches every link and frees the programs and maps. Safe to call twice. */
  close(): void {
    for (const ring of this.rings) this.native.closeWatch(ring);
    this.rings = [];
    if (this.handle) this.native.close(this.handle);
    this.handle = undefined;
  }

  private call<T>(context: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw wrapNative(err, context);
    }
  }
}
