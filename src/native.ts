/**
 * The typed face of the Node-API addon (native/, registered in native/addon.c). The rest of
 * the code receives a `Native` and never loads the addon itself, so tests of
 * the layers above can hand in a fake.
 */
import * as path from 'node:path';
import { TracepktError } from './errors';

export type ObjectHandle = { readonly __brand: 'bpf_object' };
/** A ring buffer or netlink socket watched on the event loop: one Buffer per wake-up. */
export type WatchHandle = { readonly __brand: 'watch' };

export interface Native {
  /** The object file at `path`, or the ELF bytes `image` (that file as patched by user space; `path` names it). */
  open(path: string, image?: Buffer): ObjectHandle;
  close(obj: ObjectHandle): void;
  setGlobal(obj: ObjectHandle, name: string, value: Buffer): void;
  setMaxEntries(obj: ObjectHandle, map: string, n: number): void;
  setAutoload(obj: ObjectHandle, prog: string, on: boolean): void;
  setProgramType(obj: ObjectHandle, prog: string, type: number, expectedAttachType: number): void;
  programs(obj: ObjectHandle): string[];
  /** Before load: each map takes the loaded map of the same name in `from`. */
  reuseMaps(obj: ObjectHandle, from: ObjectHandle): void;
  /** Before load: an fexit program traces function `func` of the loaded program with id `targetId`. */
  setAttachTarget(obj: ObjectHandle, prog: string, targetId: number, func: string): void;
  /** The kernel's id of a loaded program. */
  programId(obj: ObjectHandle, prog: string): number;
  load(obj: ObjectHandle): void;
  /** The same load on a worker thread: the verifier runs while JavaScript goes on. */
  loadAsync(obj: ObjectHandle): Promise<void>;
  attach(obj: ObjectHandle, prog: string): void;
  attachNetfilter(obj: ObjectHandle, prog: string, pf: number, hooknum: number, priority: number, flags: number): void;
  /** A link to a network device (XDP, tcx), by attach type number; owned by its fd. */
  attachLink(obj: ObjectHandle, prog: string, ifindex: number, attachType: number, flags: number): void;
  /** Pins the program at `path` in a bpffs. */
  pinProgram(obj: ObjectHandle, prog: string, path: string): void;
  /** The interface's index in the calling thread's network namespace. */
  ifIndex(name: string): number;
  mapLookup(obj: ObjectHandle, map: string, key: Buffer): Buffer | null;
  mapUpdate(obj: ObjectHandle, map: string, key: Buffer, value: Buffer): void;
  openRing(obj: ObjectHandle, map: string, onBatch: (batch: Buffer) => void): WatchHandle;
  /** Reads what is pending now, without waiting for a wake-up. */
  drain(watch: WatchHandle): Buffer | null;
  closeWatch(watch: WatchHandle): void;
  /** Records the source gave up that no batch could hold (out of memory in the addon). */
  watchLost(watch: WatchHandle): number;
  /** Moves the calling (main) thread into a network namespace, and back. */
  enterNetns(path: string): void;
  leaveNetns(): void;
  /** A netlink socket in the calling thread's namespace; each datagram is one batch record. */
  netlinkOpen(protocol: number, groups: number[], onBatch: (batch: Buffer) => void): WatchHandle;
  netlinkSend(socket: WatchHandle, message: Buffer): void;
  /** The BPF programs attached to an interface of the calling thread's namespace (ifindex 0: to every interface there): XDP, tc (clsact) and tcx. */
  interfacePrograms(ifindex: number): NativeAttachedProgram[];
  /** What a loaded program is; null when no program has the id (any more). */
  programInfo(id: number): NativeProgramInfo | null;
  /** libpcap's compiler: a pcap-filter expression as classic BPF (8-byte struct bpf_insn each) for the link type; throws libpcap's message. */
  compileFilter(expr: string, linktype: 'raw' | 'ethernet'): Buffer;
}

export interface NativeAttachedProgram {
  hook: 'xdp' | 'tc' | 'tcx';
  direction: 'ingress' | 'egress';
  /** XDP: driver, generic or offload; tc: direct-action or classifier; tcx: tcx. */
  mode: string;
  id: number;
  /** tc: the filter's priority; tcx: its place in the chain; 0 for XDP. */
  priority: number;
  /** tc: the filter's handle; 0 otherwise. */
  handle: number;
  /** The interface it is attached to. */
  ifindex: number;
}

export interface NativeProgramInfo {
  id: number;
  /** enum bpf_prog_type. */
  type: number;
  name: string;
  /** The program's tag, hex: bpftool's. */
  tag: string;
  /** Its BTF object's id, 0 without BTF (then nothing can trace it with fexit). */
  btfId: number;
  /** Functions its BTF describes. */
  funcInfo: number;
  /** Its main function's name in its BTF (what fexit attaches to); empty without BTF. */
  funcName: string;
}

/** The repository (or installed package) root: dist/src/native.js is two levels down. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

let cached: Native | undefined;

export function loadNative(): Native {
  if (cached) return cached;
  // A build in this tree first (development), else the prebuilt one a release carries (prebuildify's layout).
  const tried = [path.join(PACKAGE_ROOT, 'build', 'Release', 'bpf_addon.node'), path.join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'tracepkt.napi.node')];
  for (const candidate of tried) {
    try {
      cached = require(candidate) as Native;
      return cached;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'MODULE_NOT_FOUND') {
        throw new TracepktError(`cannot load the native addon ${candidate}: ${(err as Error).message}`);
      }
    }
  }
  throw new TracepktError(`native addon not built (looked for ${tried.join(', ')}): run \`make\` in ${PACKAGE_ROOT}`);
}

/** Where the BPF objects built by `make bpf` live. */
export function bpfObjectPath(name: string): string {
  return path.join(PACKAGE_ROOT, 'dist', 'bpf', `${name}.bpf.o`);
}
