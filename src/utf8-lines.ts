/**
 * Lines encoded to UTF-8 as they are made, into one buffer per batch: under
 * a flood, passive tracing writes a batch's lines with one system call. A
 * line comes whole (add: a string made elsewhere, the table's) or is written
 * in place piece by piece (src/render/json.ts writes its bytes directly: a
 * string per line, flattened and encoded again, was most of its cost).
 * Each batch gets a buffer of its own because a pipe is written after the
 * batch is handed over, from the buffer handed to it.
 */
const PER_LINE_MAX = 1024;

export class Utf8Lines {
  /** The batch's bytes so far: written at `at` (after room()). */
  buf: Buffer = Buffer.allocUnsafe(0);
  /** `buf` as a DataView: several bytes per store. */
  view: DataView = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  at = 0;
  private count = 0;
  /**
   * Bytes per line of the last batch, and some, to size the next batch's buffer in one go; at most
   * PER_LINE_MAX, since a pipe holds the whole buffer while it writes the part used.
   */
  private perLine = 256;

  begin(events: number): this {
    this.use(Buffer.allocUnsafe(Math.max(4096, events * this.perLine)));
    this.at = 0;
    this.count = 0;
    return this;
  }

  /** A whole line, its newline added. */
  add(line: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8; and the newline 1.
    this.room(line.length * 3 + 1);
    this.at += this.buf.write(line, this.at);
    this.buf[this.at++] = 0x0a;
    this.count++;
  }

  /** Room for `bytes` more at `at`: `buf` may be another buffer after it. */
  room(bytes: number): void {
    if (this.buf.length - this.at < bytes) this.grow(bytes);
  }

  /** Ends a line written in place: its newline. */
  endLine(): void {
    this.room(1);
    this.buf[this.at++] = 0x0a;
    this.count++;
  }

  end(): Buffer | undefined {
    if (this.count === 0) return undefined;
    this.perLine = Math.min(PER_LINE_MAX, Math.ceil((this.at / this.count) * 1.25));
    return this.buf.subarray(0, this.at);
  }

  private grow(need: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + need));
    this.buf.copy(bigger, 0, 0, this.at);
    this.use(bigger);
  }

  private use(buf: Buffer): void {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  }
}
