/** `--from NETNS`, `mangle --netns NETNS`: what the user typed → a path nsenter can enter, checked. */
import { execFileSync } from 'node:child_process';
import { resolveNetns, SYSTEM_SPEC_ROOTS } from './netns-spec';

/** argv run inside the namespace at `path` (nsenter), or as is for our own (null). */
export function inNetns(path: string | null | undefined, argv: string[]): string[] {
  return path ? ['nsenter', `--net=${path}`, '--', ...argv] : argv;
}

/** Can nsenter enter it as a network namespace? */
function enterable(file: string): boolean {
  try {
    execFileSync('nsenter', [`--net=${file}`, '--', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The path of the namespace `spec` names (names/netns-spec.ts says which forms), or one clear error. */
export function netnsPath(spec: string): string {
  return resolveNetns(spec, SYSTEM_SPEC_ROOTS, enterable).path;
}
