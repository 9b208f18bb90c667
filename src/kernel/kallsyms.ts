/** Kernel code addresses → "function+0xoffset", from /proc/kallsyms (addresses show to root only). */
import * as fs from 'node:fs';

/**
 * A trace meets few distinct code addresses (the places that free packets),
 * each many times. So kallsyms is not loaded: each new address costs one
 * streaming pass over it (the kernel takes ~60 ms to write it out), in 64 KiB
 * chunks, and its name is remembered. Loading the whole table cost ~40 MB of
 * memory and ~100 ms at the first drop.
 */
export class Kallsyms {
  private readonly known = new Map<bigint, string>();

  /** `chunks`: kallsyms' text, read afresh on each call, in pieces (`asyncChunks`: the same without blocking). */
  constructor(
    private readonly chunks: () => Iterable<string>,
    private readonly asyncChunks: () => AsyncIterable<string> = async function* () {
      yield* chunks();
    },
  ) {}

  static fromText(text: string): Kallsyms {
    return new Kallsyms(() => [text]);
  }

  static fromSystem(file = '/proc/kallsyms'): Kallsyms {
    return new Kallsyms(() => readChunks(file), () => readChunksAsync(file));
  }

  /** The name already found for an address; undefined if it has not been looked up. */
  cached(address: bigint): string | undefined {
    return this.known.get(address);
  }

  /** Looks up every address not yet known in one pass over kallsyms, without blocking the event loop. */
  async symbolizeAll(addresses: Iterable<bigint>): Promise<void> {
    const wanted = [...new Set(addresses)].filter((a) => !this.known.has(a));
    if (wanted.length === 0) return;
    const nearest = new Nearest(wanted);
    const lines = new Lines();
    try {
      for await (const chunk of this.asyncChunks()) lines.feed(chunk, nearest.line);
      lines.end(nearest.line);
    } catch {
      // unreadable: addresses stay numbers
    }
    for (const [address, name] of nearest.names()) this.known.set(address, name);
  }

  /** "ip_forward+0x2b1", or the address itself when no symbol covers it. */
  symbolize(address: bigint): string {
    let name = this.known.get(address);
    if (name === undefined) {
      const nearest = new Nearest([address]);
      const lines = new Lines();
      try {
        for (const chunk of this.chunks()) lines.feed(chunk, nearest.line);
        lines.end(nearest.line);
      } catch {
        // unreadable: addresses stay numbers
      }
      name = nearest.names().get(address)!;
      this.known.set(address, name);
    }
    return name;
  }
}

/** Cuts text that comes in chunks into lines (handed over as text, start and end), across chunk boundaries. */
export class Lines {
  private carry = '';

  feed(chunk: string, onLine: (text: string, pos: number, end: number) => void): void {
    const text = this.carry + chunk;
    let pos = 0;
    for (let end = text.indexOf('\n'); end >= 0; pos = end + 1, end = text.indexOf('\n', pos)) onLine(text, pos, end);
    this.carry = text.slice(pos);
  }

  end(onLine: (text: string, pos: number, end: number) => void): void {
    if (this.carry) onLine(this.carry, 0, this.carry.length);
    this.carry = '';
  }
}

/** For each address, the text symbol at or nearest below it, from kallsyms' lines in any order. */
class Nearest {
  // Addresses are 16 lower-case hex digits: as strings they compare as numbers.
  private readonly targets: { address: bigint; key: string; best: string; name: string }[];

  constructor(addresses: readonly bigint[]) {
    this.targets = addresses.map((address) => ({ address, key: address.toString(16).padStart(16, '0'), best: '', name: '' }));
  }

  /** One line: "ffffffff81b95970 T io_openat", in a module "ffffffffc0a01000 t fn\t[mod]"; text symbols only. */
  readonly line = (text: string, pos: number, end: number): void => {
    const type = text.charCodeAt(pos + 17);
    if (end - pos <= 19 || text.charCodeAt(pos + 16) !== 0x20 || (type !== 0x74 && type !== 0x54)) return;
    const addr = text.slice(pos, pos + 16);
    if (addr === '0000000000000000') return;
    for (const t of this.targets) {
      if (addr > t.key || addr <= t.best) continue;
      const tab = text.indexOf('\t', pos + 19);
      t.best = addr;
      t.name = text.slice(pos + 19, tab >= 0 && tab < end ? tab : end);
    }
  };

  names(): Map<bigint, string> {
    return new Map(this.targets.map((t) => [t.address, format(t.address, t.best, t.name)]));
  }
}

function format(address: bigint, best: string, name: string): string {
  if (!best) return `0x${address.toString(16)}`;
  const offset = address - BigInt(`0x${best}`);
  return offset === 0n ? name : `${name}+0x${offset.toString(16)}`;
}

/** The file in 256 KiB pieces, read with promises. */
export async function* readChunksAsync(file: string): AsyncGenerator<string> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(256 * 1024);
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      yield buf.toString('latin1', 0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

function* readChunks(file: string): Generator<string> {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) yield buf.toString('latin1', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}
