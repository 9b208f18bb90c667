import type { Writable } from 'node:stream';

/** Where commands write: injectable so tests can capture it. */
export interface Output {
  /** A line; its newline is added. */
  out(line: string): void;
  /** Text as it is, or as UTF-8: lines with their newlines, many at once (a batch of events is one write). */
  write(text: string | Uint8Array): void;
  err(line: string): void;
  /**
   * While the reader is behind by more than OUTPUT_BACKLOG bytes, a promise for
   * when it has caught up; otherwise undefined. A pipe (`tracepkt ... | jq`)
   * takes what it can and Node keeps the rest in memory: a writer of floods
   * waits here, so that memory stays flat and what cannot be written is lost
   * in the tracer, counted, instead of piling up.
   */
  backlogged?(): Promise<void> | undefined;
}

/** Bytes written but not yet taken by the reader, at most, before a writer waits. */
export const OUTPUT_BACKLOG = 4 * 1024 * 1024;

/**
 * A reader that goes away (`tracepkt ... | head`) must not stop us halfway:
 * we still have to detach and clean up. Writes after EPIPE are dropped.
 */
function writer(stream: NodeJS.WriteStream): (text: string | Uint8Array) => void {
  let broken = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    broken = true;
    stream.emit('drain'); // nobody waits for a reader that is gone
  });
  return (text) => {
    if (!broken) stream.write(text);
  };
}

/** Files and terminals are written synchronously (writableLength stays 0); pipes and sockets are not. */
export function backlogOf(stream: Writable): Promise<void> | undefined {
  if (stream.writableLength <= OUTPUT_BACKLOG || stream.destroyed) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

let stdout: ((text: string | Uint8Array) => void) | undefined;
let stderr: ((text: string | Uint8Array) => void) | undefined;

export const processOutput: Output = {
  out: (line) => (stdout ??= writer(process.stdout))(`${line}\n`),
  write: (text) => (stdout ??= writer(process.stdout))(text),
  err: (line) => (stderr ??= writer(process.stderr))(`${line}\n`),
  backlogged: () => backlogOf(process.stdout),
};
