/**
 * Names from the traced system are shown, never obeyed: every renderer of
 * text makes their control characters visible, keeps columns aligned, and
 * writes no escape sequence but its own colours. JSON keeps the exact text.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { shown } from '../../src/render/shown';
import { ansi } from '../../src/render/colour';
import { renderPath } from '../../src/render/path';
import { TableRenderer } from '../../src/render/table';
import { jsonLine } from '../../src/render/json';
import { renderHtml } from '../../src/render/html';
import { decodeFixture } from '../fixtures';
import type { PathStep } from '../../src/journey';

const ESC = '\x1b';
const HOSTILE_IF = `${ESC}[7m<i>x`;
const HOSTILE_NS = `${ESC}]0;owned${'\x07'}\u202eevil${ESC}[2J`;

/** Control characters (C0, DEL, C1) and the bidi controls that reorder text. */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** Our own colours are the only escape sequences allowed: ESC [ digits m. */
const withoutOurColours = (s: string) => s.replace(/\x1b\[\d+m/g, '');

test('shown: control characters, DEL, C1 and bidi controls made visible; everything else as it was', () => {
  assert.equal(shown('eth0'), 'eth0');
  assert.equal(shown(`${ESC}[7m`), '\\x1b[7m');
  assert.equal(shown('a\tb\nc\rd\x00e\x7ff'), 'a\\x09b\\x0ac\\x0dd\\x00e\\x7ff');
  assert.equal(shown('\u009b31m'), '\\x9b31m', 'C1 CSI');
  assert.equal(shown('abc\u202edef\u2066'), 'abc\\u{202e}def\\u{2066}');
  assert.equal(shown('naïve 容器 \u{1f600}'), 'naïve 容器 \u{1f600}', 'printable Unicode stays');
  assert.equal(shown(shown(HOSTILE_NS)), shown(HOSTILE_NS), 'showing twice changes nothing');
  // What prints as nothing or moves text, each named by hand (not by the implementation's pattern).
  const invisible: [string, string][] = [
    ['\u2028', '\\u{2028}'], ['\u2029', '\\u{2029}'], ['\u200b', '\\u{200b}'], ['\u200d', '\\u{200d}'],
    ['\u2060', '\\u{2060}'], ['\ufeff', '\\u{feff}'], ['\u00ad', '\\xad'], ['\u{e0041}', '\\u{e0041}'],
    ['\ud800', '\\u{d800}'], ['\u061c', '\\u{61c}'], ['\u200e', '\\u{200e}'], ['\u206a', '\\u{206a}'],
  ];
  for (const [c, seen] of invisible) assert.equal(shown(`a${c}b`), `a${seen}b`, JSON.stringify(c));
  assert.ok(!CONTROL.test(shown(HOSTILE_NS + HOSTILE_IF)));
});

test('colours: tracepkt paints what it shows; a name cannot bring its own sequence', () => {
  const painted = ansi(`rule ${HOSTILE_IF}`, 'red');
  assert.equal(painted, `${ESC}[31mrule \\x1b[7m<i>x${ESC}[0m`);
  assert.ok(!CONTROL.test(withoutOurColours(painted)));
});

test('table: hostile interface and namespace names are shown, and the columns stay aligned', () => {
  const events = decodeFixture('demo-ipv4.batch');
  events[0].ifname = HOSTILE_IF;
  events[0].netns_name = HOSTILE_NS;
  events[1].netns_name = 'lab-host';
  for (const paint of [undefined, ansi]) {
    const t = new TableRenderer(paint);
    const header = withoutOurColours(t.header());
    const [hostile, plainLine] = [t.line(events[0]), t.line(events[1])].map(withoutOurColours);
    assert.ok(!CONTROL.test(hostile), JSON.stringify(hostile));
    assert.ok(hostile.includes('\\x1b[7m<i>x'));
    // The DIR column starts where the header says, on both lines.
    assert.equal(hostile.indexOf('request'), header.indexOf('DIR'));
    assert.equal(plainLine.indexOf('request'), header.indexOf('DIR'));
  }
});

test('table: the longest hostile interface name (15 control bytes, 60 columns shown) is cut, and says so', () => {
  const events = decodeFixture('demo-ipv4.batch');
  events[0].ifname = '\x1b'.repeat(15);
  const t = new TableRenderer();
  const line = t.line(events[0]);
  assert.equal(line.indexOf('request'), t.header().indexOf('DIR'));
  assert.ok(line.includes(' \\x1b\\x1b\\x1b… '), line);
});

test('path picture: hostile names shown, the namespace bar over the arrow between them', () => {
  const step = (netns: number, netnsName: string, ifname: string): PathStep => ({ netns, netnsName, ifname, tunnel: null });
  const [top, bottom] = renderPath([step(1, HOSTILE_NS, HOSTILE_IF), step(2, 'ctr', 'eth0')]);
  assert.ok(!CONTROL.test(top + bottom));
  assert.ok(top.startsWith(shown(HOSTILE_NS)) && bottom.startsWith(shown(HOSTILE_IF)));
  assert.equal(top.indexOf('ctr'), bottom.indexOf('eth0'), 'the second namespace stands over its interface');
});

test('JSON keeps the exact bytes, escaped as JSON escapes them', () => {
  const line = jsonLine({ kind: 'hop', ifname: HOSTILE_IF, netns_name: HOSTILE_NS });
  assert.ok(!line.includes(ESC), 'no raw escape');
  assert.deepEqual(JSON.parse(line), { kind: 'hop', ifname: HOSTILE_IF, netns_name: HOSTILE_NS });
});

test('HTML: markup escaped, control characters shown, and a policy that allows no script and no network', () => {
  const events = decodeFixture('demo-ipv4.batch');
  events[0].ifname = HOSTILE_IF;
  events[0].netns_name = '<script>alert(1)</script>' + HOSTILE_NS;
  const page = renderHtml({ title: `probe ${HOSTILE_IF}`, events, verdict: `dropped by rule ${HOSTILE_NS}` });
  assert.ok(!CONTROL.test(page.replace(/\n/g, '')), 'no control character in the page but newlines');
  assert.ok(!page.includes('<script>'), 'markup escaped');
  assert.ok(page.includes('&lt;script&gt;'));
  assert.match(page, /<meta http-equiv="Content-Security-Policy" content="default-src 'none';[^"]*">/);
  assert.doesNotMatch(page, /script-src|connect-src/, 'nothing loosens it');
});
