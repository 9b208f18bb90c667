/** Where commands write: injectable so tests can capture it. */
export interface Output {
  /** A line; its newline is added. */
  out(line: string): void;
  /** Text as it is: lines with their newlines, many at once (a batch of events is one write). */
  write(text: string): void;
  err(line: string): void;
}

/**
 * A reader that goes away (`tracepkt ... | head`) must not stop us halfway:
 * we still have to detach and clean up. Writes after EPIPE are dropped.
 */
function writer(stream: NodeJS.WriteStream): (text: string) => void {
  let broken = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    broken = true;
  });
  return (text) => {
    if (!broken) stream.write(text);
  };
}

let stdout: ((text: string) => void) | undefined;
let stderr: ((text: string) => void) | undefined;

export const processOutput: Output = {
  out: (line) => (stdout ??= writer(process.stdout))(`${line}\n`),
  write: (text) => (stdout ??= writer(process.stdout))(text),
  err: (line) => (stderr ??= writer(process.stderr))(`${line}\n`),
};
