/**
 * Hostile input from the traced system: a namespace, interfaces and a rule
 * comment named by someone who wants the terminal. tracepkt shows them
 * (control characters made visible), never obeys them: through a pipe,
 * through a terminal (a pty, with colour), in JSON (exact bytes, escaped as
 * JSON does) and in the HTML page (rendered by Chromium).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BIN, runCli, withLab } from './helpers';

const ESC = '\x1b';
/** An interface name: 15 bytes at most, no '/', ':' or whitespace; escape sequences and markup pass. */
const IFNAME = `${ESC}[7m<i>x`;
/** A namespace name (its part after the lab's prefix): clears the screen, retitles the window, reverses the text. */
const NS_ROLE = `${ESC}]0;pwned\x07${ESC}[2J\u202e"q'`;
const COMMENT = `<script>alert(1)</script>${ESC}[2J`;

/** Control characters but newline (C0, DEL, C1) and the bidi controls that reorder text. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

test('hostile names and rule comments: shown through a pipe, a terminal, JSON and HTML, never obeyed', () =>
  withLab(async (lab) => {
    const a = lab.netns('a');
    const h = lab.netns(NS_ROLE);
    lab.veth(a, 'eth0', h, 'tmp0');
    lab.ip(h, 'link', 'set', 'tmp0', 'down');
    lab.ip(h, 'link', 'set', 'tmp0', 'name', IFNAME);
    lab.ip(h, 'link', 'set', IFNAME, 'up');
    // The sender's interface: a name that is not UTF-8 (\377), with a quote. ip takes it as bytes.
    execFileSync('sh', ['-c', 'n="$(printf \'n\\377"q\')"; ip -n "$1" link set eth0 down && ip -n "$1" link set eth0 name "$n" && ip -n "$1" addr add 10.66.0.1/24 dev "$n" && ip -n "$1" link set "$n" up', 'sh', a]);
    lab.addr(h, IFNAME, '10.66.0.2/24');
    lab.exec(h, 'nft', 'add', 'table', 'inet', 'hostile');
    lab.exec(h, 'nft', 'add', 'chain', 'inet', 'hostile', 'in', '{ type filter hook input priority 0; }');
    lab.exec(h, 'nft', 'add', 'rule', 'inet', 'hostile', 'in', 'meta', 'l4proto', 'icmp', 'counter', 'drop', 'comment', `"${COMMENT}"`);
    const args = ['--timeout', '1', '--from', a, '10.66.0.2'];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-hostile-'));
    try {
      // Through a pipe: every name shown, no control character but newlines, no colour.
      const piped = await runCli(args);
      assert.equal(piped.status, 1, piped.stderr);
      const text = piped.stdout + piped.stderr;
      assert.ok(!text.includes(ESC) && !CONTROL.test(text), JSON.stringify(text.split('\n').filter((l) => CONTROL.test(l))));
      assert.ok(text.includes('\\x1b[7m<i>x'), 'the interface, shown');
      assert.ok(text.includes('\\x1b]0;pwned\\x07\\x1b[2J\\u{202e}"q\''), 'the namespace, shown');
      assert.match(text, /Verdict: dropped in namespace tpk-\w+-\\x1b\]0;pwned.* by inet hostile in \(hook INPUT\): rule `meta l4proto icmp counter drop comment "<script>alert\(1\)<\/script>\\x1b\[2J"`/);
      // The table's columns stay aligned around the shown names: DIR starts where the header says.
      const lines = piped.stdout.split('\n');
      const header = lines.find((l) => l.startsWith('TIME'))!;
      for (const l of lines.filter((x) => /^\+\d/.test(x) && x.includes(' request '))) assert.equal(l.indexOf(' request ') + 1, header.indexOf('DIR'), l);

      // Through a terminal (a pty): tracepkt's own colours are the only escape sequences.
      const pty = spawnSync('script', ['-qefc', [BIN, ...args].map((s) => `'${s.replace(/'/g, "'\\''")}'`).join(' '), '/dev/null'], { encoding: 'utf8', env: { ...process.env, TERM: 'xterm-256color', NO_COLOR: '' } });
      const screen = pty.stdout.replace(/\r/g, '');
      assert.match(screen, /\x1b\[31m/, 'colour on a terminal');
      const ours = screen.replace(/\x1b\[\d+m/g, '');
      assert.ok(!ours.includes(ESC) && !CONTROL.test(ours), JSON.stringify(ours.split('\n').filter((l) => CONTROL.test(l))));
      assert.ok(ours.includes('\\x1b[7m<i>x'));

      // JSON: the exact names, escaped as JSON does.
      const json = await runCli(['--json', ...args]);
      assert.ok(!json.stdout.includes(ESC), 'JSON escapes control characters');
      const hop = json.events.find((e) => e.dir === 'request' && e.hook === 'netif_receive_skb')!;
      assert.deepEqual([hop.ifname, hop.netns_name], [IFNAME, h]);
      assert.equal(json.events[0].ifname, 'n\u00ff"q', 'bytes that are not UTF-8: each byte a character (latin1), nothing lost');
      const rule = json.lines.find((l) => l.kind === 'netfilter' && l.verdict === 'DROP');
      assert.ok(rule?.rule.includes(COMMENT), JSON.stringify(rule));

      // HTML: escaped, shown, and a policy against scripts and the network; what Chromium builds from it.
      const file = path.join(dir, 'journey.html');
      assert.equal((await runCli(['--html', file, ...args])).status, 1);
      const page = fs.readFileSync(file, 'utf8');
      assert.ok(!CONTROL.test(page.replace(/\n/g, '')) && !page.includes('<script>'));
      assert.match(page, /<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
      const dom = execFileSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'profile')}`, '--dump-dom', `file://${file}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 });
      assert.ok(!dom.includes(ESC) && !/<script>alert/.test(dom), 'no escape, no script element');
      assert.ok(dom.includes('\\x1b[7m&lt;i&gt;x'), 'the interface, shown in the page');

      // Errors quote what was typed: shown too.
      const bad = await runCli(['--from', `${ESC}[2Jnope`, '10.66.0.2']);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /^tracepkt: .*\\x1b\[2Jnope/);
      assert.ok(!bad.stderr.includes(ESC));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }));

