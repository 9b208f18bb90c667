/** `--json`: JSON Lines, one event per line and nothing else on stdout. */
import type { TraceEvent } from '../events';

/** Bumped when a field changes meaning or disappears; adding fields or kinds does not. */
export const JSON_SCHEMA_VERSION = 1;

/**
 * JSON.stringify escapes C0 controls only; C1 controls (U+009B is CSI to some
 * terminals), format characters (bidi overrides) and line separators pass
 * raw. Written as \\uXXXX they are the same string once parsed, and harmless
 * on a terminal. Outside strings JSON holds only ASCII, so this never
 * changes structure.
 */
const RAW_IN_JSON = /[\u007f-\u009f\p{Cf}\u2028\u2029]/gu;
/** Each UTF-16 unit as \\uXXXX (a character past U+FFFF as its surrogate pair, as JSON spells it). */
const escaped = (c: string): string =>
  Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');

export function jsonLine(ev: TraceEvent | Record<string, unknown>): string {
  return JSON.stringify(ev).replace(RAW_IN_JSON, escaped);
}
