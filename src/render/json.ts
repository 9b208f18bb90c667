/**
 * `--json`: JSON Lines, one event per line and nothing else on stdout.
 *
 * Written by hand, not by JSON.stringify: under a flood each event's line
 * is most of what user space does (JSON.stringify took ~3 µs per event on
 * the machines of this project, copying it to add a field twice that). The
 * output is the same: the same keys in the same order, the same escapes
 * (test/unit/json.test.ts compares the two).
 */

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
}

const writers = new Map<string, KindWriter>();

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
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const made = new Function('value', 'plain', `return (o) => {\n${parts.join('\n')}\nreturn ${line || '"{"'} + "}";\n};`) as (
    value: (v: unknown) => string | undefined,
    plain: (s: string) => boolean,
  ) => KindWriter['write'];
  return { keys, write: made(value, plain) };
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

export function jsonLine(ev: object): string {
  const o = ev as Record<string, unknown>;
  const kind = o.kind;
  if (typeof kind === 'string') {
    let writer = writers.get(kind);
    if (!writer) writers.set(kind, (writer = writerFor(Object.keys(o))));
    if (hasKeys(o, writer.keys)) {
      const line = writer.write(o);
      if (line !== null) return line;
    }
  }
  return object(o);
}

