/** Where commands write: injectable so tests can capture it. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

/**
 * A reader that goes away (`tracepkt ... | head`) must not stop us halfway:
 * we still have to detach and clean up. Writes after EPIPE are dropped.
 */
function writer(stream: NodeJS.WriteStream): (line: string) => void {
  let broken = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    broken = true;
  });
  return (line) => {
    if (!broken) stream.write(line + '\n');
  };
}

let stdout: ((line: string) => void) | undefined;
let stderr: ((line: string) => void) | undefined;

export const processOutput: Output = {
  out: (line) => (stdout ??= writer(process.stdout))(line),
  err: (line) => (stderr ??= writer(process.stderr))(line),
};
