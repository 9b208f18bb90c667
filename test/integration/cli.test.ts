/** The commands as a user runs them: bad input, demo, doctor, cleanup. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { leftoverLabNamespaces } from '../../src/lab/lab';
import { BIN, runCli } from './helpers';
import { Lab } from '../../src/lab/lab';

function assertOneLineError(run: { status: number | null; stdout: string; stderr: string }, message: RegExp) {
  assert.equal(run.status, 2, run.stderr);
  assert.equal(run.stdout, '', 'nothing on stdout');
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${run.stderr}`);
  assert.match(lines[0], /^tracepkt: /);
  assert.match(lines[0], message);
}

const bad: [string, string[], RegExp][] = [
  ['unknown namespace', ['--from', 'no-such-ns-tracepkt', '10.9.9.9'], /unknown network namespace "no-such-ns-tracepkt": give an `ip netns` name, docker:NAME/],
  ['a path that is not a namespace', ['--from', '/etc/hostname', '10.9.9.9'], /\/etc\/hostname is not a network namespace/],
  // Another kind of namespace: setns, asked for a network namespace, refuses it (the check enters and leaves).
  ['a namespace of another kind', ['--from', '/proc/self/ns/uts', '10.9.9.9'], /\/proc\/self\/ns\/uts is not a network namespace/],
  ['a missing namespace path', ['--from', '/proc/999999999/ns/net', '10.9.9.9'], /no network namespace at \/proc\/999999999\/ns\/net/],
  ['unresolvable host', ['no-such-host.invalid'], /cannot resolve host no-such-host\.invalid/],
  ['malformed address', ['10.0.0.300'], /malformed address: 10\.0\.0\.300/],
  ['count 0', ['-c', '0', '127.0.0.1'], /--count must be a whole number from 1 to 65535, not "0"/],
  ['negative count', ['-c', '-2', '127.0.0.1'], /--count must be a whole number from 1 to 65535, not "-2"/],
  ['family mismatch', ['-6', '127.0.0.1'], /127\.0\.0\.1 is an IPv4 address, but -6 asks for IPv6/],
];

for (const [what, args, message] of bad) {
  test(`bad input: ${what} → one clear line, exit 2`, async () => {
    assertOneLineError(await runCli(args), message);
  });
}

test('a FIFO given as a namespace: one clear line, exit 2, not a wait for a writer that never comes', { timeout: 60_000 }, async () => {
  const fifo = `/tmp/tracepkt-fifo-${process.pid}`;
  execFileSync('mkfifo', [fifo]);
  try {
    assertOneLineError(await runCli(['--from', fifo, '10.9.9.9']), /tracepkt-fifo-\d+ is not a network namespace/);
  } finally {
    fs.rmSync(fifo, { force: true });
  }
});

test('not root: without capabilities, one clear line and exit 2, nothing loaded', async () => {
  // uid 0 without any capability: what a user without privileges has, minus file permissions.
  const run = await runCli(['127.0.0.1'], ['setpriv', '--inh-caps=-all', '--bounding-set=-all', '--']);
  assertOneLineError(run, /must run as root: it loads eBPF programs/);
});

test('demo: traces a ping into a Docker-like lab and removes the lab', async () => {
  const namespacesBefore = leftoverLabNamespaces();
  const run = await runCli(['demo']);
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.split('\n').filter((l) => /^\+\d/.test(l));
  const rows = lines.filter((l) => / (net_dev_queue|netif_receive_skb)( \(.*\))?$/.test(l)).map((l) => l.split(/\s+/));
  // TIME, HOP, NETNS name, (inode), INTERFACE, DIR, ...
  assert.deepEqual(rows.map((r) => [r[4], r[5]]), [
    ['docker0', 'request'],
    [rows[1][4], 'request'],
    ['eth0', 'request'],
    ['eth0', 'reply'],
    [rows[1][4], 'reply'],
    ['docker0', 'reply'],
  ]);
  assert.match(rows[1][4], /^veth[0-9a-f]{4}$/);
  assert.match(rows[0][2], /^tpk-[0-9a-f]{4}-host$/);
  assert.match(rows[2][2], /^tpk-[0-9a-f]{4}-ctr$/);
  // Per-hop latency: none before a packet's first hop, then the time since its previous one.
  assert.deepEqual(rows.map((r) => r[1] === '-'), [true, false, false, true, false, false]);
  assert.match(run.stdout, /reply received\./);
  assert.match(run.stdout, /^Verdict: delivered and answered\.$/m);
  // The lab's Docker-style rules judge the request on its way out and the reply on its way in.
  const verdicts = lines.filter((l) => / (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) (ip|ip6|inet) /.test(l)).map((l) => l.replace(/^.*seq 1\s+/, ''));
  assert.deepEqual(verdicts, [
    'POSTROUTING ip nat POSTROUTING: ACCEPT (chain policy accept)',
    'INPUT ip filter INPUT: ACCEPT (rule `iifname "docker0" counter accept`)',
  ]);
  assert.match(run.stdout, /^Request path:\n {4}tpk-\S+-host\s+\|\s+tpk-\S+-ctr\n {4}docker0 ---> veth\S+ -+> eth0$/m);
  assert.deepEqual(leftoverLabNamespaces(), namespacesBefore, 'the lab is gone');
});

/**
 * Rendering alone, no kernel path of its own: the host runs these, the kernel matrix (which sets
 * TRACEPKT_KERNEL_MATRIX) leaves them out to stay within CI's hour.
 */
const RENDERING_ONLY = { skip: process.env.TRACEPKT_KERNEL_MATRIX ? 'rendering only: the host runs it' : false };

test('colour on a terminal only: none when piped, none with NO_COLOR', RENDERING_ONLY, async () => {
  const viaTerminal = (env: NodeJS.ProcessEnv) =>
    execFileSync('script', ['-qec', `${BIN} 127.0.0.1`, '/dev/null'], { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.match(viaTerminal({ TERM: 'xterm' }), /\x1b\[32mVerdict: delivered and answered\.\x1b\[0m/);
  assert.doesNotMatch(viaTerminal({ TERM: 'xterm', NO_COLOR: '1' }), /\x1b\[/);
  const piped = await runCli(['127.0.0.1']);
  assert.equal(piped.status, 0, piped.stderr);
  assert.doesNotMatch(piped.stdout, /\x1b\[/);
});

test('--quiet prints only the summary; with --json, only the summary line', RENDERING_ONLY, async () => {
  const text = await runCli(['--quiet', '127.0.0.1']);
  assert.equal(text.status, 0, text.stderr);
  assert.doesNotMatch(text.stdout, /^TIME|net_dev_queue/m);
  assert.match(text.stdout, /^Verdict: delivered and answered\.$/m);
  const json = await runCli(['--quiet', '--json', '127.0.0.1']);
  assert.deepEqual(json.lines.map((l) => l.kind), ['start', 'summary']);
});

test('doctor: measures each feature and agrees with the kernel', async () => {
  const run = await runCli(['doctor']);
  assert.equal(run.status, 0, run.stderr);
  const verdict = (feature: string) => new RegExp(`^(ok|no|FAIL)\\s+${feature.replace(/[()+/]/g, '\\$&')}\\s`, 'm').exec(run.stdout)?.[1];
  assert.equal(verdict('privileges'), 'ok');
  assert.equal(verdict('kernel BTF'), 'ok');
  assert.equal(verdict('tp_btf tracepoints + ring buffer'), 'ok');
  // Cross-checked against what the system shows by other means.
  assert.equal(verdict('tracefs'), fs.existsSync('/sys/kernel/tracing/events') ? 'ok' : 'no');
  assert.equal(verdict('kprobes'), fs.existsSync('/sys/bus/event_source/devices/kprobe') ? 'ok' : 'no');
  assert.ok(['ok', 'no'].includes(verdict('fentry/fexit (BPF trampolines)') ?? ''));
  // The same trampolines: fexit on a BPF program is offered exactly where fentry on a kernel function is.
  assert.equal(verdict('fexit on BPF programs'), verdict('fentry/fexit (BPF trampolines)'));
  assert.ok(['ok', 'no'].includes(verdict('netfilter BPF links') ?? ''));
  assert.match(run.stdout, /^tracepkt can trace on this kernel\.$/m);
  // Each check is two lines of its own: what was measured, then what it means.
  assert.ok(!run.stdout.includes('\\x0a'), run.stdout);
  for (const line of run.stdout.split('\n').filter((l) => /^(ok|no|FAIL) /.test(l))) {
    assert.match(run.stdout.split('\n')[run.stdout.split('\n').indexOf(line) + 1], /^\s+-> \S/, line);
  }
});

test('cleanup removes a tracepkt table a run on an old kernel left behind, and nothing else', async () => {
  const ns = `tracepkt-keep-nft-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const nft = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, 'nft', ...args], { encoding: 'utf8' });
    nft('add', 'table', 'inet', 'tracepkt_0badc0de'); // not owned: what a kernel before 5.12 leaves
    nft('add', 'table', 'inet', 'tracepkt_mine'); // not our name pattern
    nft('add', 'table', 'ip', 'filter');
    const run = await runCli(['cleanup']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^removed nftables table inet tracepkt_0badc0de in namespace ${ns}$`, 'm'));
    assert.deepEqual(nft('list', 'tables').trim().split('\n'), ['table inet tracepkt_mine', 'table ip filter']);
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
});

test('cleanup removes namespaces a killed demo left behind, and nothing else: not a lab still in use', async () => {
  const leftover = 'tpk-dead-host'.replace('dead', Math.floor(Math.random() * 0xffff).toString(16).padStart(4, '0'));
  const unrelated = `tracepkt-keep-${process.pid}`;
  execFileSync('ip', ['netns', 'add', leftover]);
  execFileSync('ip', ['netns', 'add', unrelated]);
  const inUse = new Lab(); // its owner (this process) is running
  const live = inUse.netns('host');
  try {
    const run = await runCli(['cleanup']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`removed network namespace ${leftover}`));
    assert.ok(!fs.existsSync(`/run/netns/${leftover}`));
    assert.ok(fs.existsSync(`/run/netns/${unrelated}`), 'other namespaces are left alone');
    assert.ok(fs.existsSync(`/run/netns/${live}`), 'a lab whose owner runs is left alone');
  } finally {
    inUse.destroy();
    for (const ns of [leftover, unrelated]) {
      if (fs.existsSync(`/run/netns/${ns}`)) execFileSync('ip', ['netns', 'del', ns]);
    }
  }
});
