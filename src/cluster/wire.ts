/**
 * How agents and coordinators frame their messages on the TLS stream: a
 * 4-byte big-endian length, then that many bytes of one JSON object. Each
 * side bounds what it reads (a coordinator's requests are small; an agent's
 * batches of events are not): a frame longer than the bound, bytes that are
 * not JSON, or JSON that is not an object end the connection with one line,
 * before anything is buffered beyond the bound.
 */

export class WireError extends Error {
  override name = 'WireError';
}

export function frame(message: object): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** Pieces of an unfinished frame held apart at most. */
const MAX_CHUNKS = 64;

/** Bytes in, whole messages out (parsed JSON objects, not yet checked: src/cluster/messages.ts checks them). */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrame: number) {}

  /** The messages completed by this chunk, in order; throws WireError on a frame no peer of ours sends. */
  push(chunk: Buffer): Record<string, unknown>[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // A frame dripped in tiny pieces: held as one buffer, not as thousands (each costs ~100 bytes).
    if (this.chunks.length > MAX_CHUNKS) this.chunks = [Buffer.concat(this.chunks)];
    const out: Record<string, unknown>[] = [];
    for (;;) {
      if (this.buffered < 4) return out;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrame) throw new WireError(`a message of ${length} bytes, more than the ${this.maxFrame} allowed`);
      if (this.buffered < 4 + length) return out;
      const body = this.take(4 + length).subarray(4);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new WireError('a message that is not JSON');
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new WireError('a message that is not a JSON object');
      out.push(parsed as Record<string, unknown>);
    }
  }

  /** Bytes held for a message not yet complete. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const taken = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }
}
