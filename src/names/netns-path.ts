/** `--from NETNS`, `mangle --netns NETNS`: what the user typed → a path nsenter can enter, checked. */
import { loadNative } from '../native';
import { resolveNetns, SYSTEM_SPEC_ROOTS } from './netns-spec';

/** argv run inside the namespace at `path` (nsenter), or as is for our own (null). */
export function inNetns(path: string | null | undefined, argv: string[]): string[] {
  return path ? ['nsenter', `--net=${path}`, '--', ...argv] : argv;
}

/**
 * Can a thread enter it as a network namespace (what nsenter will do)? Asked
 * of the kernel by entering and leaving it on this thread: setns refuses
 * anything else. Not by running nsenter: a process cost ~15 ms of start-up.
 */
function enterable(file: string): boolean {
  const native = loadNative();
  try {
    native.enterNetns(file);
  } catch {
    return false;
  }
  native.leaveNetns();
  return true;
}

/** The path of the namespace `spec` names (names/netns-spec.ts says which forms), or one clear error. */
export function netnsPath(spec: string): string {
  return resolveNetns(spec, SYSTEM_SPEC_ROOTS, enterable).path;
}
