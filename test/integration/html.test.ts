/** --html: a self-contained page, rendered by a real browser (Debian's Chromium, headless). */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { overlayLab, routerLab, runCli, withLab } from './helpers';

function chromium(dir: string, ...args: string[]): string {
  // Flags for a machine without network or display: nothing fetched, nothing synced.
  return execFileSync(
    'chromium',
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'profile')}`, '--window-size=1280,900', ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 },
  );
}

/** The diagram's marks (verdicts, drops, tunnels) with their classes, the text of their wrapped lines joined. */
function marksOf(dom: string): { cls: string; text: string }[] {
  return [...dom.matchAll(/<text [^>]*class="(mark[^"]*)"[^>]*>((?:<tspan[^>]*>[^<]*<\/tspan>)+)<\/text>/g)].map((m) => ({
    cls: m[1],
    text: [...m[2].matchAll(/<tspan[^>]*>([^<]*)<\/tspan>/g)].map((t) => t[1].replace(/&gt;/g, '>').replace(/&lt;/g, '<').replace(/&amp;/g, '&')).join(' '),
  }));
}

/** How many distinct byte values the PNG's pixel data holds: a blank page has very few. */
function pixelVariety(png: Buffer): number {
  const idat: Buffer[] = [];
  for (let off = 8; off < png.length; ) {
    const len = png.readUInt32BE(off);
    if (png.toString('latin1', off + 4, off + 8) === 'IDAT') idat.push(png.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  return new Set(zlib.inflateSync(Buffer.concat(idat))).size;
}

test('the journey of a dropped probe as a diagram: namespaces, interfaces, numbered steps, the verdict marked', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.exec(topo.r, 'iptables', '-A', 'FORWARD', '-p', 'icmp', '-j', 'DROP');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-html-'));
    const file = path.join(dir, 'journey.html');
    try {
      const run = await runCli(['--html', file, '--timeout', '1', '--from', topo.a, topo.v4]);
      assert.equal(run.status, 1, run.stderr);
      const page = fs.readFileSync(file, 'utf8');
      assert.doesNotMatch(page, /(src|href)=["']?(https?:)?\/\//, 'self-contained: nothing to fetch');
      // What the browser built from it.
      const dom = chromium(dir, '--dump-dom', `file://${file}`);
      const count = (re: RegExp) => (dom.match(re) ?? []).length;
      assert.equal(count(/<g class="namespace"/g), 2);
      assert.deepEqual([...dom.matchAll(/<g class="namespace" data-netns="\d+"><rect[^>]*><\/rect><text class="ns-name"[^>]*>([^<]+)</g)].map((m) => m[1]), [topo.a, topo.r]);
      assert.deepEqual([...dom.matchAll(/<g class="interface" data-ifname="([^"]+)"/g)].map((m) => m[1]), ['eth0', 'ra']);
      assert.deepEqual([...dom.matchAll(/<g class="step (\w+)" data-step="(\d+)"/g)].map((m) => [m[1], m[2]]), [['request', '1']]);
      const marks = marksOf(dom);
      assert.ok(marks.some((m) => m.cls === 'mark verdict drop' && m.text === 'FORWARD ip filter FORWARD: DROP'), JSON.stringify(marks));
      assert.ok(marks.some((m) => m.cls === 'mark verdict drop dropped' && /^dropped at nft_do_chain\+0x[0-9a-f]+: NETFILTER_DROP$/.test(m.text)), JSON.stringify(marks));
      assert.match(dom, /<p class="verdict">Verdict: dropped in namespace [^<]+ by ip filter FORWARD: rule `meta l4proto icmp counter drop`<\/p>/);
      assert.equal(count(/<tr class="hop">/g), 2, 'the event table lists the two hops');
      // And what it looks like: a screenshot with something on it.
      const shot = path.join(dir, 'journey.png');
      chromium(dir, `--screenshot=${shot}`, `file://${file}`);
      assert.ok(pixelVariety(fs.readFileSync(shot)) > 32, 'the screenshot is not blank');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }));

/**
 * The page as the browser lays it out at 1280 px: how wide the page is, and
 * every text of the diagram that leaves its namespace box. The page is
 * copied with a measuring script at its end and without its policy (the page
 * itself runs none, and its Content Security Policy would forbid one).
 */
function layout(dir: string, file: string): { pageWidth: number; viewport: number; outside: string[]; tunnelSteps: number } {
  const measured = path.join(dir, 'measured.html');
  const probe = `<script>
const boxes = [...document.querySelectorAll('g.namespace > rect')].map((r) => r.getBoundingClientRect());
const outside = [];
for (const t of document.querySelectorAll('#journey text')) {
  const b = t.getBoundingClientRect();
  const home = boxes.find((x) => b.left >= x.left - 0.5 && b.left <= x.right);
  if (!t.closest('.step') && (!home || b.right > home.right + 0.5 || b.bottom > home.bottom + 0.5)) outside.push(t.textContent);
}
document.body.setAttribute('data-layout', JSON.stringify({ pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth, outside, tunnelSteps: document.querySelectorAll('g.step.tunnel').length }));
</script>`;
  const page = fs.readFileSync(file, 'utf8');
  // The page's policy forbids scripts: with it, the measuring script must not run (the policy works);
  // the copy measured leaves the policy out, the test's instrument and nothing of the page's.
  const policy = /<meta http-equiv="Content-Security-Policy"[^>]*>/;
  assert.match(page, policy);
  const blocked = path.join(dir, 'blocked.html');
  fs.writeFileSync(blocked, page.replace('</body>', `${probe}</body>`));
  assert.doesNotMatch(chromium(dir, '--dump-dom', `file://${blocked}`), /data-layout=/, 'the page runs no script');
  fs.writeFileSync(measured, page.replace(policy, '').replace('</body>', `${probe}</body>`));
  const dom = chromium(dir, '--dump-dom', `file://${measured}`);
  const m = /data-layout="([^"]+)"/.exec(dom);
  assert.ok(m, 'the measuring script ran');
  return JSON.parse(m[1].replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
}

test('an overlay journey that dies in the underlay: the page fits 1280 px, every label stays in its box, the underlay is drawn as such', () =>
  withLab(async (lab) => {
    const topo = overlayLab(lab, { router: true });
    lab.exec(topo.n2, 'iptables', '-A', 'INPUT', '-p', 'udp', '--dport', '4789', '-j', 'DROP');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-html-'));
    const file = path.join(dir, 'journey.html');
    try {
      const run = await runCli(['--html', file, '--timeout', '1', '--from', topo.c1, '10.99.0.2']);
      assert.equal(run.status, 1, run.stderr);
      const page = fs.readFileSync(file, 'utf8');
      assert.ok(marksOf(page).some((m) => m.cls === 'mark tunnel' && m.text === `request into vxlan 42: ${topo.endpoints.join(' -> ')}`), JSON.stringify(marksOf(page)));
      const l = layout(dir, file);
      assert.equal(l.viewport, 1280);
      assert.ok(l.pageWidth <= l.viewport, `no sideways scrolling: the page is ${l.pageWidth} px wide`);
      assert.deepEqual(l.outside, [], 'every label inside its namespace box');
      assert.equal(l.tunnelSteps, 3, 'u1 -> r1 -> r2 -> u2: the underlay steps, dashed');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }));
