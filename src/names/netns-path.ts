/** `--from NETNS`: an `ip netns` name or a path → a path nsenter can enter, checked. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TracepktError } from '../errors';

/** argv run inside the namespace at `path` (nsenter), or as is for our own (null). */
export function inNetns(path: string | null | undefined, argv: string[]): string[] {
  return path ? ['nsenter', `--net=${path}`, '--', ...argv] : argv;
}

export function netnsPath(spec: string, netnsDir = '/run/netns'): string {
  if (spec === '') throw new TracepktError('empty network namespace name');
  const isPath = spec.includes('/');
  const file = isPath ? spec : path.join(netnsDir, spec);
  if (!fs.existsSync(file)) {
    throw new TracepktError(
      isPath ? `no network namespace at ${spec}` : `unknown network namespace "${spec}" (see \`ip netns list\`)`,
    );
  }
  try {
    execFileSync('nsenter', [`--net=${file}`, '--', 'true'], { stdio: 'ignore' });
  } catch {
    throw new TracepktError(`${file} is not a network namespace`);
  }
  return file;
}
