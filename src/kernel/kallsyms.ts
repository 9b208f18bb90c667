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

  /** `chunks`: kallsyms' text, read afresh on each call, in pieces. */
  constructor(private readonly chunks: () => Iterable<string>) {}

  static fromText(text: string): Kallsyms {
    return new Kallsyms(() => [text]);
  }

  static fromSystem(file = '/proc/kallsyms'): Kallsyms {
    return new Kallsyms(() => readChunks(file));
  }

  /** "ip_forward+0x2b1", or the address itself when no symbol covers it. */
  symbolize(address: bigint): string {
    let name = this.known.get(address);
    if (name === undefined) {
      name = this.lookUp(address);
      this.known.set(address, name);
    }
    return name;
  }

  private lookUp(address: bigint): string {
    // Addresses are 16 lower-case hex digits: as strings they compare as numbers.
    const target = address.toString(16).padStart(16, '0');
    let best = '';
    let bestName = '';
    const line = (text: string, pos: number, end: number) => {
      // "ffffffff81b95970 T io_openat", in a module "ffffffffc0a01000 t fn\t[mod]"; text symbols only
      const type = text.charCodeAt(pos + 17);
      if (end - pos <= 19 || text.charCodeAt(pos + 16) !== 0x20 || (type !== 0x74 && type !== 0x54)) return;
      const addr = text.slice(pos, pos + 16);
      if (addr > target || addr <= best || addr === '0000000000000000') return;
      const tab = text.indexOf('\t', pos + 19);
      best = addr;
      bestName = text.slice(pos + 19, tab >= 0 && tab < end ? tab : end);
    };
    try {
      let carry = '';
      for (const chunk of this.chunks()) {
        const text = carry + chunk;
        let pos = 0;
        for (let end = text.indexOf('\n'); end >= 0; pos = end + 1, end = text.indexOf('\n', pos)) line(text, pos, end);
        carry = text.slice(pos);
      }
      if (carry) line(carry, 0, carry.length);
    } catch {
      // unreadable: addresses stay numbers
    }
    if (!best) return `0x${address.toString(16)}`;
    const offset = address - BigInt(`0x${best}`);
    return offset === 0n ? bestName : `${bestName}+0x${offset.toString(16)}`;
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
