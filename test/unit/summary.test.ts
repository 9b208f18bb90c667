import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { lossCauses } from '../../src/commands/passive';
import { summaryLines } from '../../src/commands/trace';
import { summarize } from '../../src/journey';
import type { ProbeResult } from '../../src/probe/run';
import { decodeFixture } from '../fixtures';

const result = (lost: number): ProbeResult => ({
  status: 0,
  ping: { answered: new Set([1]), transmitted: 1, localErrors: [], localMtu: null },
  flow: null,
  localMtu: null,
  tunnelMtu: null,
  events: decodeFixture('demo-ipv4.batch'),
  down: new Map(),
  gaps: [],
  programs: [],
  lost,
  notes: [],
  startupMs: 20,
  aborted: false,
});

test('a probe journey during which the kernel lost events says it is incomplete', () => {
  const r = result(3);
  const lines = summaryLines(1, r, summarize(r.events));
  assert.ok(lines.includes('Journey incomplete: 3 event(s) lost because the ring buffer was full; hops may be missing.'), lines.join('\n'));
});

test('without losses nothing is said about completeness', () => {
  const r = result(0);
  assert.ok(!summaryLines(1, r, summarize(r.events)).some((l) => /incomplete|lost/.test(l)));
});

test("passive tracing's loss warning says whose the losses were: the kernel's ring buffer, tracepkt's queue, or both", () => {
  assert.equal(lossCauses(7, 0), ' because the ring buffer was full');
  assert.equal(lossCauses(7, 7), ' because tracepkt fell behind (its queue was full)');
  assert.equal(lossCauses(7, 3), ': 4 because the ring buffer was full, 3 because tracepkt fell behind (its queue was full)');
});
