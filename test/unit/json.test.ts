/**
 * JSON Lines are written by hand (src/render/json.ts): the same text as
 * JSON.stringify with tracepkt's escapes, for every kind of event, and for
 * objects whose keys are not their kind's.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fc from 'fast-check';
import { decodeBatch, exampleBatch } from '../../src/decode';
import type { KernelEvent } from '../../src/events';
import { jsonLine, writeJsonLine } from '../../src/render/json';
import { Utf8Lines } from '../../src/utf8-lines';
import { decodeFixture } from '../fixtures';

/** What the lines must be: JSON.stringify, then C1 controls, format characters and line separators as \uXXXX. */
const reference = (o: object) =>
  JSON.stringify(o).replace(/[\u007f-\u009f\p{Cf}\u2028\u2029]/gu, (c) => Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''));

/** What writeJsonLine puts into a batch's lines for `o`, after `before` (lines already there). */
function written(o: object, before: string[] = []): string {
  const lines = new Utf8Lines().begin(1);
  for (const line of before) lines.add(line);
  writeJsonLine(o, lines);
  return lines.end()!.toString('utf8');
}

/** Both writers against the reference: the string, and the bytes (UTF-8 and a newline) written in place. */
function sameAsReference(o: object, message?: string): void {
  assert.equal(jsonLine(o), reference(o), message);
  assert.equal(written(o), `${reference(o)}\n`, message);
}

test('every recorded event, of every kind, is written as JSON.stringify writes it', () => {
  const events: object[] = [...decodeFixture('demo-ipv4.batch'), ...decodeFixture('demo-ipv6.batch')];
  decodeBatch(exampleBatch(10), (e) => events.push(e));
  events.push(
    { kind: 'route', time_ns: 1, skb: '0', lost_so_far: 0, netns: 9, netns_name: 'ctr', family: 4, src: '10.0.0.1', dst: '10.0.0.2', table: 'main', table_id: 254, oif: 'eth0', gateway: null, error: null, purpose: 'output', proto: 1, sport: 0, dport: 0, flow_icmp_type: 8 },
    { kind: 'summary', schema: 1, journeys: [{ journey: 1, namespaces: [{ netns: 1, netns_name: 'host' }], complete: false }], lost_events: 0 },
  );
  const kinds = new Set(events.map((e) => (e as { kind: string }).kind));
  assert.deepEqual([...kinds].sort(), ['drop', 'hop', 'route', 'summary']);
  for (const e of events) {
    const ev = e as { netns?: number; netns_name?: string | null };
    if (ev.netns !== undefined) ev.netns_name = ev.netns % 2 ? 'ctr' : null;
    sameAsReference(e);
  }
});

test("an object with other keys than its kind's first one had: written in full all the same", () => {
  const first = { kind: 'shape-test', a: 1, b: 'x' };
  sameAsReference(first);
  const cases: object[] = [
    { kind: 'shape-test', a: 1, b: 'x', c: [1, null, 'y'] }, // one more
    { kind: 'shape-test', a: 1 }, // one fewer
    { kind: 'shape-test', a: 1, c: 'x' }, // as many, another name
    { kind: 'shape-test', a: undefined, b: 'x' }, // a value JSON leaves out
    { kind: 'shape-test', b: 'x', a: 2 }, // another order
    { kind: 'shape-test', a: NaN, b: -0 },
    { kind: 'shape-test', a: { nested: { deep: [true, false] } }, b: () => 1 },
  ];
  // A kind whose keys are not ASCII (no event's are, but any object may be written): their UTF-8 bytes.
  sameAsReference({ kind: 'keys-test', 'ü\u2028"': 1, '网': 'x' });
  sameAsReference({ kind: 'keys-test', 'ü\u2028"': 2, '网': 'y' });
  for (const o of cases) {
    assert.deepEqual(JSON.parse(jsonLine(o)), JSON.parse(reference(o)), JSON.stringify(o));
    assert.equal(written(o), `${jsonLine(o)}\n`, `${JSON.stringify(o)}: the same bytes as the string`);
  }
  assert.equal(jsonLine(cases[0]), reference(cases[0]));
  assert.equal(jsonLine(cases[4]), reference(cases[4]), 'keys in their own order');
});

test('fuzz: strings of any character, numbers of any size: the same text as JSON.stringify', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 24 }), fc.oneof(fc.integer(), fc.double(), fc.maxSafeNat()), fc.string({ maxLength: 8 }), (s, n, name) => {
      const o = { kind: 'fuzz', ifname: s, time_ns: n, netns_name: name, tunnel: { src: s } };
      sameAsReference(o);
    }),
    { numRuns: 2000 },
  );
});

test('numbers at the edges of each way of writing them: the same text as JSON.stringify', () => {
  // One digit, 32 bits, past 32 bits (a high part and 8 low digits: around 1e8 * k and near 2^53), past 2^53, fractions.
  const edges = [0, -0, 1, 9, 10, 99, 100, 999, 1000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 4026531833, 1e8 * 43 - 1, 1e8 * 43, 47113983360061, 1e15, 9007199199999999, 9007199200000000, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 1e21, -1, -9, -10, -(2 ** 31), -(2 ** 53 - 1), 0.5, 9.5, 1e-7, 5e-324, 1.7976931348623157e308, NaN, Infinity, -Infinity];
  for (const x of edges) sameAsReference({ kind: 'number-test', a: x, b: 7 }, String(x));
});

test('a line that just fits, or just does not, in what is left of the buffer: the same bytes (the longest numbers JavaScript writes)', () => {
  const longest = -1.2345678901234567e-6; // '-0.0000012345678901234567': 25 characters
  // Numbers last (no slack after them), and a kind as long as the room made at the line's start leaves for them.
  const o = { kind: 'edge-test'.padEnd(22, '-'), a: longest, b: longest };
  const line = `${reference(o)}\n`;
  for (let free = 0; free < line.length + 200; free++) {
    // Lines before (short ones: adding one never needs more room than is left) until `free` bytes are left.
    const lines = new Utf8Lines().begin(0);
    const before: string[] = [];
    while (lines.buf.length - lines.at > free + 200) lines.add(before[before.push('f'.repeat(50)) - 1]);
    while (lines.buf.length - lines.at > free) lines.add(before[before.push('') - 1]);
    assert.equal(lines.buf.length - lines.at, free);
    writeJsonLine(o, lines);
    assert.equal(lines.end()!.toString('utf8'), `${before.join('\n')}\n${line}`, `${free} bytes left`);
  }
});

test('written in place: a line longer than the buffer left, a value written in part then given up, the lines before kept', () => {
  const long = { kind: 'place-test', a: 'x'.repeat(70_000), b: 'ü\u2028'.repeat(5000), c: 12345678901234 };
  sameAsReference(long);
  const before = ['{"earlier":1}', 'ü'.repeat(1500)];
  assert.equal(written(long, before), `${before.join('\n')}\n${reference(long)}\n`);
  // The kind's writer starts the line, then meets a value JSON leaves out: the line is written whole by the general writer.
  const partial = { kind: 'place-test', a: 'y'.repeat(5000), b: 'z', c: undefined };
  assert.equal(written(partial, before), `${before.join('\n')}\n${reference(partial)}\n`);
});

test('the batch that warms the code decodes to hop and drop events of one echo flow', () => {
  const events: KernelEvent[] = [];
  decodeBatch(exampleBatch(10), (e) => events.push(e));
  assert.deepEqual(events.map((e) => e.kind), ['hop', 'hop', 'hop', 'hop', 'drop', 'hop', 'hop', 'hop', 'hop', 'drop']);
  const hop = events[0];
  assert.ok(hop.kind === 'hop' && hop.src === '127.0.0.1' && hop.ifname === 'lo' && hop.icmp_id === 7 && hop.dir === 'request');
  assert.ok(hop.time_ns > 2 ** 32 && hop.netns > 2 ** 31, 'numbers as large as real ones');
  assert.ok(events[2].kind === 'hop' && events[2].dir === 'reply');
});
