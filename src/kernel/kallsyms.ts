/** Kernel code addresses → "function+0xoffset", from /proc/kallsyms (addresses show to root only). */
import * as fs from 'node:fs';

/**
 * A trace meets few distinct code addresses (the places that free packets,
 * the callers of a route lookup), each many times. So kallsyms is not
 * loaded: each set of new addresses costs one streaming pass over it, and
 * their names are remembered. The pass reads bytes and compares addresses
 * as numbers, never making a string per line: the kernel takes ~35 ms to
 * write its 120,000 lines out, and parsing them as text took 100-150 ms more.
 */
export class Kallsyms {
  private readonly known = new Map<bigint, string>();
  /** Names of the core kernel's code (no module, BPF program or trampoline: those come and go): fixed until reboot. */
  private readonly lasting = new Map<bigint, string>();
  /** Called after a pass that named core kernel code, with every such name known: they may be kept for this boot. */
  onLasting?: (names: ReadonlyMap<bigint, string>) => void;

  /** `chunks`: kallsyms' bytes, read afresh on each call, in pieces (`asyncChunks`: the same without blocking). */
  constructor(
    private readonly chunks: () => Iterable<Uint8Array>,
    private readonly asyncChunks: () => AsyncIterable<Uint8Array> = async function* () {
      yield* chunks();
    },
  ) {}

  /** Names found earlier in this boot (core kernel code only: see onLasting). */
  seed(names: Iterable<[bigint, string]>): void {
    for (const [address, name] of names) {
      this.known.set(address, name);
      this.lasting.set(address, name);
    }
  }

  private learn(found: Map<bigint, { name: string; core: boolean }>): void {
    let lasting = false;
    for (const [address, { name, core }] of found) {
      this.known.set(address, name);
      if (core) {
        this.lasting.set(address, name);
        lasting = true;
      }
    }
    if (lasting) this.onLasting?.(this.lasting);
  }

  static fromText(text: string): Kallsyms {
    return new Kallsyms(() => [Buffer.from(text, 'latin1')]);
  }

  static fromSystem(file = '/proc/kallsyms'): Kallsyms {
    return new Kallsyms(() => readChunks(file), () => readChunksAsync(file));
  }

  /** The name already found for an address; undefined if it has not been looked up. */
  cached(address: bigint): string | undefined {
    return this.known.get(address);
  }

  /** Looks up every address not yet known in one pass over kallsyms, without blocking the event loop for long. */
  async symbolizeAll(addresses: Iterable<bigint>): Promise<void> {
    const wanted = [...new Set(addresses)].filter((a) => !this.known.has(a));
    if (wanted.length === 0) return;
    const nearest = new Nearest(wanted);
    const lines = new Lines();
    try {
      for await (const chunk of this.asyncChunks()) {
        lines.feed(chunk, nearest.line);
        nearest.settle();
      }
      lines.end(nearest.line);
      nearest.settle();
    } catch {
      // unreadable: addresses stay numbers
    }
    this.learn(nearest.names());
  }

  /** "ip_forward+0x2b1", or the address itself when no symbol covers it. */
  symbolize(address: bigint): string {
    let name = this.known.get(address);
    if (name === undefined) {
      const nearest = new Nearest([address]);
      const lines = new Lines();
      try {
        for (const chunk of this.chunks()) {
          lines.feed(chunk, nearest.line);
          nearest.settle();
        }
        lines.end(nearest.line);
        nearest.settle();
      } catch {
        // unreadable: addresses stay numbers
      }
      const found = nearest.names();
      this.learn(found);
      name = found.get(address)!.name;
    }
    return name;
  }
}

const NEWLINE = 0x0a;

/** Cuts bytes that come in chunks into lines (handed over as the bytes, start and end), across chunk boundaries. */
export class Lines {
  private carry: Uint8Array = new Uint8Array(0);

  feed(chunk: Uint8Array, onLine: (bytes: Uint8Array, pos: number, end: number) => void): void {
    let pos = 0;
    let end = nextNewline(chunk, 0);
    if (this.carry.length > 0) {
      if (end < 0) {
        this.carry = concat(this.carry, chunk);
        return;
      }
      const line = concat(this.carry, chunk.subarray(0, end));
      onLine(line, 0, line.length);
      pos = end + 1;
      end = nextNewline(chunk, pos);
    }
    for (; end >= 0; pos = end + 1, end = nextNewline(chunk, pos)) onLine(chunk, pos, end);
    // Kept as a copy: the reader reuses its buffer.
    this.carry = chunk.slice(pos);
  }

  end(onLine: (bytes: Uint8Array, pos: number, end: number) => void): void {
    if (this.carry.length > 0) onLine(this.carry, 0, this.carry.length);
    this.carry = new Uint8Array(0);
  }
}

/** A plain loop: Buffer#indexOf's native call costs more than the ~30 bytes of a kallsyms line. */
function nextNewline(bytes: Uint8Array, from: number): number {
  for (let i = from; i < bytes.length; i++) if (bytes[i] === NEWLINE) return i;
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A hex digit's value; -1 for any other byte. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX[0x61 + i] = HEX[0x41 + i] = 10 + i;

/** Eight hex digits from `pos` as a number; -1 if any is not one. */
function hex32(bytes: Uint8Array, pos: number): number {
  let v = 0;
  for (let i = pos; i < pos + 8; i++) {
    const d = HEX[bytes[i]];
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/**
 * For each address, the text symbol at or nearest below it, from kallsyms'
 * lines in any order. Core kernel lines come in address order, so nearly
 * every line below an address is a new best: its name is only noted where
 * it lies (bytes, start, end) and made a string once per chunk (settle),
 * before the reader reuses its buffer.
 */
class Nearest {
  // A 64-bit address as two 32-bit halves: numbers, no bigint or string per line.
  private readonly targets: { address: bigint; hi: number; lo: number; bestHi: number; bestLo: number; name: string; core: boolean; at: Uint8Array | null; start: number; end: number }[];

  constructor(addresses: readonly bigint[]) {
    this.targets = addresses.map((address) => ({
      address,
      hi: Number((address >> 32n) & 0xffffffffn),
      lo: Number(address & 0xffffffffn),
      bestHi: -1,
      bestLo: -1,
      name: '',
      core: false,
      at: null,
      start: 0,
      end: 0,
    }));
  }

  /** One line: "ffffffff81b95970 T io_openat", in a module "ffffffffc0a01000 t fn\t[mod]"; text symbols only. */
  readonly line = (bytes: Uint8Array, pos: number, end: number): void => {
    if (end - pos <= 19 || bytes[pos + 16] !== 0x20 || bytes[pos + 18] !== 0x20) return;
    const type = bytes[pos + 17];
    if (type !== 0x74 && type !== 0x54) return;
    const hi = hex32(bytes, pos);
    const lo = hex32(bytes, pos + 8);
    if (hi < 0 || lo < 0 || (hi === 0 && lo === 0)) return;
    for (const t of this.targets) {
      if (hi > t.hi || (hi === t.hi && lo > t.lo)) continue; // above the address
      if (hi < t.bestHi || (hi === t.bestHi && lo <= t.bestLo)) continue; // no nearer than the best so far
      t.bestHi = hi;
      t.bestLo = lo;
      t.at = bytes;
      t.start = pos + 19;
      t.end = end;
    }
  };

  /** Makes the names noted in the bytes just read strings. */
  settle(): void {
    for (const t of this.targets) {
      if (!t.at) continue;
      let stop = t.start;
      while (stop < t.end && t.at[stop] !== 0x09) stop++; // a module's symbol: "\t[module]" follows
      t.name = Buffer.from(t.at.buffer, t.at.byteOffset + t.start, stop - t.start).toString('latin1');
      t.core = stop === t.end; // modules, BPF programs and trampolines name their owner after a tab
      t.at = null;
    }
  }

  /** Each address's name ("fn+0x1a", or the address where no symbol covers it), and whether it is in the core kernel's code. */
  names(): Map<bigint, { name: string; core: boolean }> {
    return new Map(this.targets.map((t) => [t.address, { name: format(t), core: t.bestHi >= 0 && t.core && nearby(t) }]));
  }
}

/**
 * No function of the core kernel is a megabyte long: an address that far past
 * its nearest symbol is outside the kernel's code (a BPF program kallsyms does
 * not list, a gap above the last module) and its name is not kept for the boot.
 */
const CORE_FUNCTION_MAX = 1n << 20n;
const nearby = (t: { address: bigint; bestHi: number; bestLo: number }): boolean => offsetOf(t) < CORE_FUNCTION_MAX;

/** How far the address lies past its nearest symbol. */
function offsetOf(t: { address: bigint; bestHi: number; bestLo: number }): bigint {
  return t.address - ((BigInt(t.bestHi) << 32n) | BigInt(t.bestLo));
}

function format(t: { address: bigint; bestHi: number; bestLo: number; name: string }): string {
  if (t.bestHi < 0) return `0x${t.address.toString(16)}`;
  const offset = offsetOf(t);
  return offset === 0n ? t.name : `${t.name}+0x${offset.toString(16)}`;
}

/**
 * The file in pieces, without blocking the event loop for more than a few
 * milliseconds at a time. Not with promises: /proc/kallsyms gives at most a
 * page per read whatever was asked, and 300 trips through libuv's thread pool
 * cost more than the reads. So: plain reads, gathered into one piece, handed
 * over every ~4 ms with a turn of the event loop between.
 */
export async function* readChunksAsync(file: string): AsyncGenerator<Uint8Array> {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let eof = false; !eof; ) {
      const until = performance.now() + 4;
      let filled = 0;
      // Room for one more page: the kernel never hands out more at once.
      while (filled + 8192 <= buf.length && performance.now() < until) {
        const n = fs.readSync(fd, buf, filled, buf.length - filled, null);
        if (n === 0) {
          eof = true;
          break;
        }
        filled += n;
      }
      if (filled > 0) yield buf.subarray(0, filled);
      if (!eof) await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    fs.closeSync(fd);
  }
}

function* readChunks(file: string): Generator<Uint8Array> {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) yield buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}
