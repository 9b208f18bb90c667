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
import { jsonLine } from '../../src/render/json';
import { decodeFixture } from '../fixtures';

/** What the lines must be: JSON.stringify, then C1 controls, format characters and line separators as \uXXXX. */
const reference = (o: object) =>
  JSON.stringify(o).replace(/[\u007f-\u009f\p{Cf}\u2028\u2029]/gu, (c) => Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''));

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
    assert.equal(jsonLine(e), reference(e));
  }
});

test("an object with other keys than its kind's first one had: written in full all the same", () => {
  const first = { kind: 'shape-test', a: 1, b: 'x' };
  assert.equal(jsonLine(first), reference(first));
  const cases: object[] = [
    { kind: 'shape-test', a: 1, b: 'x', c: [1, null, 'y'] }, // one more
    { kind: 'shape-test', a: 1 }, // one fewer
    { kind: 'shape-test', a: 1, c: 'x' }, // as many, another name
    { kind: 'shape-test', a: undefined, b: 'x' }, // a value JSON leaves out
    { kind: 'shape-test', b: 'x', a: 2 }, // another order
    { kind: 'shape-test', a: NaN, b: -0 },
    { kind: 'shape-test', a: { nested: { deep: [true, false] } }, b: () => 1 },
  ];
  for (const o of cases) assert.deepEqual(JSON.parse(jsonLine(o)), JSON.parse(reference(o)), JSON.stringify(o));
  assert.equal(jsonLine(cases[0]), reference(cases[0]));
  assert.equal(jsonLine(cases[4]), reference(cases[4]), 'keys in their own order');
});

test('fuzz: strings of any character, numbers of any size: the same text as JSON.stringify', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 24 }), fc.oneof(fc.integer(), fc.double(), fc.maxSafeNat()), fc.string({ maxLength: 8 }), (s, n, name) => {
      const o = { kind: 'fuzz', ifname: s, time_ns: n, netns_name: name, tunnel: { src: s } };
      assert.equal(jsonLine(o), reference(o));
    }),
    { numRuns: 2000 },
  );
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
