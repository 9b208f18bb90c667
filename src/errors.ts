/**
 * Errors the user sees. A TracepktError is reported as one line on stderr
 * and exits with its code; anything else is a bug and is reported as such.
 */
export class TracepktError extends Error {
  constructor(message: string, readonly exitCode = 2, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TracepktError';
  }
}

/** A libbpf or bpf() call that failed, with the operation named. */
export class BpfError extends TracepktError {
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly log: string,
    context: string,
  ) {
    super(`${context}: ${op} failed: ${errnoName(errno)}${hint(errno)}`);
    this.name = 'BpfError';
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM (operation not permitted)',
  2: 'ENOENT (no such file or directory)',
  7: 'E2BIG (argument list too long)',
  12: 'ENOMEM (out of memory)',
  13: 'EACCES (permission denied)',
  16: 'EBUSY (device or resource busy)',
  22: 'EINVAL (invalid argument)',
  95: 'EOPNOTSUPP (operation not supported)',
  524: 'ENOTSUPP (not supported by this kernel)',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** Privileges are checked before any BPF call, so a refusal here is the kernel's. */
function hint(errno: number): string {
  return errno === 1 || errno === 13 ? ' (see `tracepkt doctor`)' : '';
}

/** Wraps an error thrown by the addon (it carries op and errno) with what we were doing. */
export function wrapNative(err: unknown, context: string): Error {
  const e = err as { op?: string; errno?: number; log?: string };
  if (e && typeof e.op === 'string' && typeof e.errno === 'number') {
    return new BpfError(e.op, e.errno, e.log ?? '', context);
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** An error's message, whatever was thrown. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
