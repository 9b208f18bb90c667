/** `--json`: JSON Lines, one event per line and nothing else on stdout. */
import type { TraceEvent } from '../events';

/** Bumped when a field changes meaning or disappears; adding fields or kinds does not. */
export const JSON_SCHEMA_VERSION = 1;

export function jsonLine(ev: TraceEvent | Record<string, unknown>): string {
  return JSON.stringify(ev);
}
