/** Kernel code addresses → "function+0xoffset", from /proc/kallsyms (addresses show to root only). */
import * as fs from 'node:fs';

export class Kallsyms {
  private addrs: bigint[] = [];
  private names: string[] = [];

  constructor(text: string) {
    const syms: [bigint, string][] = [];
    for (const line of text.split('\n')) {
      const [addr, type, name] = line.split(/\s+/, 3);
      // Text symbols only: code is what frees packets.
      if (!name || !/^[tT]$/.test(type)) continue;
      const a = BigInt(`0x${addr}`);
      if (a !== 0n) syms.push([a, name]);
    }
    syms.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    this.addrs = syms.map((s) => s[0]);
    this.names = syms.map((s) => s[1]);
  }

  static fromSystem(file = '/proc/kallsyms'): Kallsyms {
    try {
      return new Kallsyms(fs.readFileSync(file, 'utf8'));
    } catch {
      return new Kallsyms('');
    }
  }

  /** "ip_forward+0x2b1", or the address itself when no symbol covers it. */
  symbolize(address: bigint): string {
    let lo = 0;
    let hi = this.addrs.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.addrs[mid] <= address) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return `0x${address.toString(16)}`;
    const offset = address - this.addrs[found];
    return offset === 0n ? this.names[found] : `${this.names[found]}+0x${offset.toString(16)}`;
  }
}
