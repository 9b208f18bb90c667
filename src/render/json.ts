/**
 * `--json`: JSON Lines, one event per line and nothing else on stdout.
 *
 * Written by hand, not by JSON.stringify: under a flood each event's line
 * is most of what user space does (JSON.stringify took ~3 µs per event on
 * the machines of this project, copying it to add a field twice that). The
 * output is the same: the same keys in the same order, the same escapes
 * (test/unit/json.test.ts compares the two). Passive tracing's lines are
 * written as bytes straight into the batch's buffer (writeJsonLine): the
 * same text, without making it a string first.
 */

import type { Utf8Lines } from '../utf8-lines';

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

/** Printable ASCII but `"` and `\`: written between quotes as it is. Most strings of an event (addresses, hooks, names). */
function plain(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

function string(s: string): string {
  return plain(s) ? `"${s}"` : JSON.stringify(s).replace(RAW_IN_JSON, escaped);
}

/** A value as JSON.stringify writes it inside an object; undefined where it leaves the key out. */
function value(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return string(v);
    case 'number':
      return Number.isFinite(v) ? `${v}` : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      if (v === null) return 'null';
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return value((v as { toJSON(): unknown }).toJSON());
      return Array.isArray(v) ? array(v) : object(v as Record<string, unknown>);
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt'); // as JSON.stringify
    default:
      return undefined; // functions, symbols, undefined
  }
}

function array(a: readonly unknown[]): string {
  let out = '[';
  for (let i = 0; i < a.length; i++) out += `${i ? ',' : ''}${value(a[i]) ?? 'null'}`;
  return `${out}]`;
}

const quotedKeys = new Map<string, string>();
const quotedKey = (k: string) => {
  let q = quotedKeys.get(k);
  if (q === undefined) quotedKeys.set(k, (q = `${string(k)}:`));
  return q;
};

function object(o: Record<string, unknown>): string {
  let out = '{';
  let first = true;
  for (const k in o) {
    if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
    const v = value(o[k]);
    if (v === undefined) continue;
    out += `${first ? '' : ','}${quotedKey(k)}${v}`;
    first = false;
  }
  return `${out}}`;
}

/**
 * The events of one kind have the same keys in the same order (the decoder
 * makes them so): each kind gets a writer made for its keys from the first
 * event of it, reading each key directly. It writes an event only when that
 * event has exactly those keys in that order, each with a value JSON writes,
 * else the general writer does.
 */
interface KindWriter {
  keys: readonly string[];
  write: (o: Record<string, unknown>) => string | null;
  /** The same line written as bytes into `lines` (no newline); false where write() gives null (then `lines` is as it was, or further). */
  put: (o: Record<string, unknown>, lines: Utf8Lines) => boolean;
}

/** Per kind, a writer per set of keys seen (a few: with and without a node, say), the first made first. */
const writers = new Map<string, KindWriter[]>();
/** Key sets per kind given a writer of their own; events with others take the general writer. */
const WRITERS_PER_KIND = 4;

function writerFor(keys: readonly string[]): KindWriter {
  // The keys are this program's own property names, quoted by JSON.stringify in the code made: nothing else goes in.
  // Numbers, null and plain strings, most of an event's values, are written inline; the rest by value().
  const parts = keys.map(
    (k, i) =>
      `const x${i} = o[${JSON.stringify(k)}];
       const v${i} = typeof x${i} === 'number' && Number.isFinite(x${i}) ? '' + x${i} : x${i} === null ? 'null' : typeof x${i} === 'string' && plain(x${i}) ? '"' + x${i} + '"' : value(x${i});
       if (v${i} === undefined) return null;`,
  );
  const line = keys.map((k, i) => `${JSON.stringify(`${i ? ',' : '{'}${string(k)}:`)} + v${i}`).join(' + ');
  // The same as bytes, in place: each key's bytes (with the `{` or `,` before and the `:` after) stored
  // one by one in the code made, numbers and null as well; room for them all from each variable-length
  // value on (a string, or what value() writes), which may move the line to a bigger buffer.
  const MAX_NUMBER = 25; // the longest number JavaScript writes: '-0.0000012345678901234567'
  const prefixes = keys.map((k, i) => Buffer.from(`${i ? ',' : '{'}${string(k)}:`, 'utf8'));
  const fixedFrom = (i: number) => prefixes.slice(i).reduce((n, p) => n + p.length + MAX_NUMBER, 0) + 2;
  // Four bytes a store where there are four (a DataView writes unaligned; V8 makes it one instruction):
  // a hop's keys are ~300 of its ~540 bytes.
  const store = (bytes: Uint8Array) => {
    const out: string[] = [];
    let n = 0;
    for (; n + 4 <= bytes.length; n += 4) out.push(`d.setUint32(at + ${n}, ${(bytes[n] | (bytes[n + 1] << 8) | (bytes[n + 2] << 16) | (bytes[n + 3] << 24)) >>> 0}, true);`);
    for (; n < bytes.length; n++) out.push(`b[at + ${n}] = ${bytes[n]};`);
    return `${out.join(' ')} at += ${bytes.length};`;
  };
  const reload = (i: number) => `L.room(${fixedFrom(i)}); b = L.buf; d = L.view; at = L.at;`;
  const puts = keys.map(
    (k, i) =>
      `const x${i} = o[${JSON.stringify(k)}];
       ${store(prefixes[i])}
       if (typeof x${i} === 'number' && Number.isFinite(x${i})) at = num(b, at, x${i});
       else if (x${i} === null) { ${store(NULL_BYTES)} }
       else if (typeof x${i} === 'string') { L.at = at; str(L, x${i}); ${reload(i + 1)} }
       else { const v = value(x${i}); if (v === undefined) return false; L.at = at; utf8(L, v); ${reload(i + 1)} }`,
  );
  const end = Buffer.from(keys.length ? '}' : '{}', 'latin1');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const made = new Function(
    'value',
    'plain',
    'str',
    'utf8',
    'num',
    `return [(o) => {\n${parts.join('\n')}\nreturn ${line || '"{"'} + "}";\n}, (o, L) => {\nL.room(${fixedFrom(0)}); let b = L.buf; let d = L.view; let at = L.at;\n${puts.join('\n')}\n${store(end)}\nL.at = at;\nreturn true;\n}];`,
  ) as (...deps: unknown[]) => [KindWriter['write'], KindWriter['put']];
  const [write, put] = made(value, plain, putString, putUtf8, putNumber);
  return { keys, write, put };
}

const NULL_BYTES = Buffer.from('null', 'latin1');

/**
 * A finite number's JSON text into `b` at `at` (room made for 25 bytes); returns where it ends.
 * Integers digit by digit, in 32-bit arithmetic: as a string first, one like a time in nanoseconds
 * took V8's general double-to-text conversion and an allocation, a tenth of a flood's JSON. A safe
 * integer past 32 bits (times, namespace inodes) is split into its last 8 digits and the rest, both
 * below 2^31. Others as JavaScript writes them.
 */
function putNumber(b: Buffer, at: number, x: number): number {
  if (x >= 0 && x < 10) {
    if (x % 1 === 0) {
      b[at] = 0x30 + x; // most of an event's numbers: family, codes, counts (-0 too: JSON writes 0)
      return at + 1;
    }
  } else if (x > 0 && x <= 0xffffffff && x % 1 === 0) {
    return putDigits(b, at, x);
  }
  if (!Number.isSafeInteger(x)) {
    const s = `${x}`;
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
    return at;
  }
  if (x < 0) {
    b[at++] = 0x2d;
    x = -x;
  }
  if (x <= 0xffffffff) return putDigits(b, at, x);
  // x < 2^53, so high < 2^27 and x / 1e8 is never rounded to the next integer: an integer x is at
  // least 1e-8 short of it, more than half the spacing of doubles below 2^27 (7.5e-9).
  const high = Math.floor(x / 1e8);
  let low = x - high * 1e8;
  at = putDigits(b, at, high); // high ≥ 42 since x > 2^32
  for (let i = at + 6; i >= at; i -= 2) {
    const q = (low / 100) | 0;
    const pair = (low - q * 100) * 2;
    b[i] = DIGIT_PAIRS[pair];
    b[i + 1] = DIGIT_PAIRS[pair + 1];
    low = q;
  }
  return at + 8;
}

/** "00" to "99": two digits per division. */
const DIGIT_PAIRS = Uint8Array.from({ length: 200 }, (_, i) => 0x30 + (i % 2 ? (i >> 1) % 10 : Math.floor((i >> 1) / 10)));

/**
 * 0 < x < 2^32, an integer: its digits, two per division, in 32-bit integer arithmetic (V8 divides
 * an int32 by a constant with a multiplication) once x fits in one.
 */
function putDigits(b: Buffer, at: number, x: number): number {
  let digits = 1;
  for (let p = 10; p <= x; p *= 10) digits++;
  const end = at + digits;
  let i = end;
  if (x > 0x7fffffff) {
    const q = Math.floor(x / 100);
    const pair = (x - q * 100) * 2;
    b[--i] = DIGIT_PAIRS[pair + 1];
    b[--i] = DIGIT_PAIRS[pair];
    x = q;
  }
  x |= 0;
  while (x >= 100) {
    const q = (x / 100) | 0;
    const pair = (x - q * 100) * 2;
    b[--i] = DIGIT_PAIRS[pair + 1];
    b[--i] = DIGIT_PAIRS[pair];
    x = q;
  }
  if (x >= 10) {
    b[--i] = DIGIT_PAIRS[x * 2 + 1];
    b[--i] = DIGIT_PAIRS[x * 2];
  } else b[--i] = 0x30 + x;
  return end;
}

function putUtf8(L: Utf8Lines, s: string): void {
  L.room(s.length * 3);
  L.at += L.buf.write(s, L.at);
}

/** A string value: quoted and copied as it is when plain (one pass that checks as it copies), else escaped as string() does. */
function putString(L: Utf8Lines, s: string): void {
  L.room(s.length + 2);
  const b = L.buf;
  const start = L.at;
  let at = start;
  b[at++] = 0x22;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
      L.at = start;
      putUtf8(L, string(s));
      return;
    }
    b[at++] = c;
  }
  b[at++] = 0x22;
  L.at = at;
}

/** Whether the object's own keys are these, in this order (an event's are: compared, not copied). */
function hasKeys(o: object, keys: readonly string[]): boolean {
  let n = 0;
  for (const k in o) {
    if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
    if (keys[n] !== k) return false;
    n++;
  }
  return n === keys.length;
}

/** The writer made for this object's kind and keys (an event's kind has one or two sets of keys). */
function kindWriter(o: Record<string, unknown>): KindWriter | undefined {
  const kind = o.kind;
  if (typeof kind !== 'string') return undefined;
  let made = writers.get(kind);
  if (!made) writers.set(kind, (made = []));
  for (let i = 0; i < made.length; i++) if (hasKeys(o, made[i].keys)) return made[i];
  if (made.length === WRITERS_PER_KIND) return undefined;
  const writer = writerFor(Object.keys(o));
  made.push(writer);
  return writer;
}

export function jsonLine(ev: object): string {
  const o = ev as Record<string, unknown>;
  const line = kindWriter(o)?.write(o);
  return line ?? object(o);
}

/** jsonLine(ev) and a newline, as UTF-8 bytes written into `lines`. */
export function writeJsonLine(ev: object, lines: Utf8Lines): void {
  const o = ev as Record<string, unknown>;
  const writer = kindWriter(o);
  const start = lines.at;
  if (writer?.put(o, lines)) {
    lines.endLine();
    return;
  }
  lines.at = start; // a value written in part: the general writer writes the whole line instead
  lines.add(object(o));
}

