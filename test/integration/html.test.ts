/** --html: a self-contained page, rendered by a real browser (Debian's Chromium, headless). */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { routerLab, runCli, withLab } from './helpers';

function chromium(dir: string, ...args: string[]): string {
  // Flags for a machine without network or display: nothing fetched, nothing synced.
  return execFileSync(
    'chromium',
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'profile')}`, '--window-size=1280,900', ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 },
  );
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
      assert.match(dom, /class="verdict drop">FORWARD ip filter FORWARD: DROP</);
      assert.match(dom, /class="verdict drop dropped">dropped at nft_do_chain\+0x[0-9a-f]+: NETFILTER_DROP</);
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
