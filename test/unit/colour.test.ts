import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ansi, colourWanted, plain } from '../../src/render/colour';
import { TableRenderer } from '../../src/render/table';
import { markHops } from '../../src/tidy';
import { decodeFixture } from '../fixtures';

test('colour only on a terminal, and not with NO_COLOR or a dumb terminal', () => {
  assert.equal(colourWanted({ isTTY: true }, {}), true);
  assert.equal(colourWanted({ isTTY: false }, {}), false);
  assert.equal(colourWanted({}, {}), false);
  assert.equal(colourWanted({ isTTY: true }, { NO_COLOR: '1' }), false);
  assert.equal(colourWanted({ isTTY: true }, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(colourWanted({ isTTY: true }, { TERM: 'dumb' }), false);
});

test('painted rows line up exactly like plain ones', () => {
  const events = decodeFixture('demo-ipv4.batch');
  markHops(events);
  const painted = new TableRenderer(ansi);
  const unpainted = new TableRenderer(plain);
  const strip = (s: string) => s.replace(/\x1b\[\d+m/g, '');
  assert.equal(strip(painted.header()), unpainted.header());
  for (const e of events) {
    const line = painted.line(e);
    assert.equal(strip(line), unpainted.line(e));
    assert.match(line, /\x1b\[(32|36)mrequest|\x1b\[(32|36)mreply/, 'the direction is coloured');
  }
});
