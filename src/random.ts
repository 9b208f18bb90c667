/**
 * Random bytes from the kernel. Not node:crypto: loading it costs ~6 ms of
 * start-up, and markers and table names need no more than /dev/urandom.
 */
import * as fs from 'node:fs';

export function randomBytes(n: number): Buffer {
  const buf = Buffer.alloc(n);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    fs.readSync(fd, buf, 0, n, null);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** A whole number from 0 to below `max` (max ≤ 2^32). */
export function randomInt(max: number): number {
  return Math.floor((randomBytes(4).readUInt32LE(0) / 2 ** 32) * max);
}
