/**
 * `tracepkt mangle`: real packets altered on real interfaces in throwaway
 * namespaces, observed by ping, tcpdump and tracepkt itself; nothing left
 * attached afterwards, however the command ends.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually, finished, pairLab, routerLab, runCli, startCli, withLab } from './helpers';


/** Starts `tracepkt mangle ... --json` and waits for its start line (attached). */
async function startMangle(args: string[]): Promise<{ child: ChildProcess; done: ReturnType<typeof finished> }> {
  const child = startCli(['mangle', ...args, '--json']);
  const done = finished(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('close', () => reject(new Error('mangle ended before it was attached')));
  });
  return { child, done };
}

async function stopMangle(m: { child: ChildProcess; done: ReturnType<typeof finished> }) {
  m.child.kill('SIGINT');
  const run = await m.done;
  assert.equal(run.status, 130, run.stderr);
  return run.summary!;
}

function ping(ns: string, target: string, ...args: string[]): string {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, 'ping', ...args, target], { encoding: 'utf8' });
  } catch (err) {
    return (err as { stdout: string }).stdout; // exit 1 when replies went missing: the output still counts them
  }
}

const mangleProgramsLoaded = () => /mangle_(xdp|tc)/.test(execFileSync('bpftool', ['prog', 'show'], { encoding: 'utf8' }));

/** Links of our mangling programs (bpftool 7.1 names tcx links only by number: found by program). */
function mangleLinks(): number {
  const json = (what: string) => JSON.parse(execFileSync('bpftool', ['-j', what, 'show'], { encoding: 'utf8' }) || '[]') as { id: number; name?: string; prog_id?: number }[];
  const ours = json('prog').filter((p) => /^mangle_/.test(p.name ?? '')).map((p) => p.id);
  return json('link').filter((l) => ours.includes(l.prog_id ?? -1)).length;
}

test('--ttl random: echo replies arrive with varying TTLs; the counters match them; a trace shows where the TTL changed', () =>
  withLab(async (lab) => {
    const { a, b } = pairLab(lab);
    const m = await startMangle(['eth0', '--netns', a, '--ttl', 'random']);
    const out = ping(a, '10.88.0.2', '-c', '20', '-i', '0.05');
    const summary = await stopMangle(m);
    const ttls = [...out.matchAll(/ttl=(\d+)/g)].map((x) => Number(x[1]));
    assert.equal(ttls.length, 20, out);
    assert.ok(new Set(ttls).size >= 5, `TTLs vary: ${ttls.join(' ')}`);
    assert.ok(ttls.every((t) => t >= 1 && t <= 255));
    // Only echo replies are selected without --filter: every one of them, and nothing else.
    assert.equal(summary.selected, 20);
    assert.equal(summary.altered, 20);
    assert.ok(summary.seen >= 20);

    // A fixed TTL, traced: the reply's receive hop in a says what changed, the hop before does not.
    const fixed = await startMangle(['eth0', '--netns', a, '--ttl', '9']);
    const trace = await runCli(['--from', a, '10.88.0.2', '--json']);
    await stopMangle(fixed);
    assert.equal(trace.status, 0, trace.stderr);
    const changed = trace.events.filter((e) => e.altered).map((e) => [e.netns_name, e.ifname, e.dir, e.hook, e.altered]);
    assert.deepEqual(changed, [[a, 'eth0', 'reply', 'netif_receive_skb', 'ttl 64 -> 9']]);
    void b;
  }));

test('tcpdump\'s language on XDP: only large echo replies are dropped, small ones and large requests pass; the counters and tcpdump agree', () =>
  withLab(async (lab) => {
    const { a, b } = pairLab(lab);
    const m = await startMangle(['eth0', '--netns', a, '--drop', '--filter', 'icmp[icmptype] == icmp-echoreply and greater 1000']);
    const small = ping(a, '10.88.0.2', '-c', '3', '-i', '0.05', '-W', '1', '-q');
    const large = ping(a, '10.88.0.2', '-c', '3', '-i', '0.05', '-W', '1', '-q', '-s', '1200');
    // b's pings to a: a's receive path sees their (large) requests, which are not replies.
    const fromB = ping(b, '10.88.0.1', '-c', '3', '-i', '0.05', '-W', '1', '-q', '-s', '1200');
    const summary = await stopMangle(m);
    assert.match(small, /3 packets transmitted, 3 received/);
    assert.match(large, /3 packets transmitted, 0 received/);
    assert.match(fromB, /3 packets transmitted, 3 received/);
    assert.equal(summary.selected, 3, 'the large replies only');
    assert.equal(summary.dropped, 3);
  }));

test('tcpdump\'s language on XDP, VLAN: frames tagged 10 dropped, untagged ones and those of VLAN 20 pass', (t) =>
  withLab(async (lab) => {
    const { a, b } = pairLab(lab);
    const vlan = (ns: string, id: number, addr: string) => {
      lab.ip(ns, 'link', 'add', 'link', 'eth0', 'name', `v${id}`, 'type', 'vlan', 'id', String(id));
      lab.addr(ns, `v${id}`, addr);
      lab.ip(ns, 'link', 'set', `v${id}`, 'up');
    };
    try {
      vlan(a, 10, '10.89.10.1/24');
    } catch {
      t.skip('this kernel has no VLAN devices (8021q): the kernel matrix runs this on 6.1');
      return;
    }
    vlan(b, 10, '10.89.10.2/24');
    vlan(a, 20, '10.89.20.1/24');
    vlan(b, 20, '10.89.20.2/24');
    // The tag in the frame, where XDP reads it: no transmit VLAN offload on a's side.
    lab.exec(a, 'ethtool', '-K', 'eth0', 'txvlan', 'off');
    const m = await startMangle(['eth0', '--netns', b, '--drop', '--filter', 'vlan 10 and icmp']);
    const tagged = ping(a, '10.89.10.2', '-c', '3', '-i', '0.05', '-W', '1', '-q');
    const other = ping(a, '10.89.20.2', '-c', '3', '-i', '0.05', '-W', '1', '-q');
    const untagged = ping(a, '10.88.0.2', '-c', '3', '-i', '0.05', '-W', '1', '-q');
    const summary = await stopMangle(m);
    assert.match(tagged, /3 packets transmitted, 0 received/);
    assert.match(other, /3 packets transmitted, 3 received/);
    assert.match(untagged, /3 packets transmitted, 3 received/);
    assert.equal(summary.dropped, 3, 'the three requests on VLAN 10');
  }));

test('tcpdump\'s language on tc: the PSH flag set only on segments the expression selects, byte offsets and masks included', () =>
  withLab(async (lab) => {
    const { a, b } = pairLab(lab);
    const server = spawn('ip', ['netns', 'exec', b, process.execPath, '-e', "require('net').createServer((s) => s.on('data', () => {})).listen(5001, () => console.log('ready'))"], { stdio: ['ignore', 'pipe', 'ignore'] });
    const dump = spawn('ip', ['netns', 'exec', b, 'tcpdump', '-i', 'eth0', '-n', '-l', '-q', '-S', 'tcp dst port 5001 and tcp[tcpflags] & tcp-push != 0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
      await new Promise<void>((resolve) => dump.stderr!.setEncoding('utf8').on('data', (s: string) => s.includes('listening on') && resolve()));
      let pushed = '';
      dump.stdout!.setEncoding('utf8').on('data', (s: string) => (pushed += s));
      // Only bare ACKs to 5001 (no payload: the IP total length is the headers'), not the data segments.
      const m = await startMangle(['eth0', '--netns', a, '--egress', '--set-tcp-flags', 'PSH', '--filter', 'tcp dst port 5001 and tcp[tcpflags] == tcp-ack and ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) == 0']);
      // Ten writes, each its own segment (no delay), each acknowledged by b; a acknowledges nothing but the handshake and the FIN.
      execFileSync('ip', ['netns', 'exec', a, process.execPath, '-e', "const s = require('net').connect(5001, '10.88.0.2', () => { s.setNoDelay(true); let n = 0; const t = setInterval(() => { s.write('x'.repeat(100)); if (++n === 10) { clearInterval(t); s.end(); } }, 20); })"], { timeout: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const summary = await stopMangle(m);
      const exited = new Promise((resolve) => dump.once('exit', resolve));
      dump.kill('SIGINT'); // every line it had is out once it has exited
      await exited;
      const seen = pushed.split('\n').filter(Boolean);
      assert.ok(summary.altered >= 1, `some bare ACKs were altered: ${JSON.stringify(summary)}`);
      // tcpdump at b: every PSH segment to 5001 is a data segment (which carries PSH anyway from the sender) or one we altered.
      const bare = seen.filter((l) => /tcp 0$/.test(l));
      assert.equal(bare.length, summary.altered, `PSH on bare ACKs, as counted:\n${seen.join('\n')}`);
      assert.ok(seen.filter((l) => /tcp 100$/.test(l)).length >= 10, 'the data segments, PSH from the sender (a retransmission counts again)');
    } finally {
      dump.kill('SIGINT');
      server.kill();
    }
  }));

test('--drop --ratio 0.2: about a fifth of the replies never arrive, and the counters say exactly how many', () =>
  withLab(async (lab) => {
    const { a } = pairLab(lab);
    const m = await startMangle(['eth0', '--netns', a, '--drop', '--ratio', '0.2', '--filter', 'icmp']);
    const out = ping(a, '10.88.0.2', '-c', '100', '-i', '0.02', '-W', '1', '-q');
    const summary = await stopMangle(m);
    const [, sent, received] = /(\d+) packets transmitted, (\d+) received/.exec(out)!.map(Number);
    assert.equal(sent, 100);
    assert.equal(summary.dropped, sent - received, out);
    assert.equal(summary.selected, 100, 'every echo reply matched icmp');
    // Binomial(100, 0.2): 0.05-0.40 holds with overwhelming probability.
    assert.ok(summary.dropped >= 5 && summary.dropped <= 40, `dropped ${summary.dropped} of 100`);
  }));

test('--egress --set-tcp-flags PSH --ratio 0.1 on a router: the share tcpdump sees matches the counters, checksums stay valid, a trace shows the flag appear', () =>
  withLab(async (lab) => {
    const { a, r, b, v4 } = routerLab(lab);
    // One segment per sk_buff, and complete checksums from the sender: the router must keep them valid.
    lab.exec(a, 'ethtool', '-K', 'eth0', 'tx', 'off');
    lab.ip(a, 'link', 'set', 'dev', 'eth0', 'gso_max_segs', '1');
    lab.exec(b, 'ethtool', '-K', 'eth0', 'gro', 'off'); // tcpdump in b sees the segments as sent, not merged
    const pcap = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-mangle-')), 'b.pcap');
    const csumErrors = () => Number(/Tcp: .*\nTcp: (.*)/.exec(lab.exec(b, 'cat', '/proc/net/snmp'))![1].split(' ').at(-2));
    const errorsBefore = csumErrors();
    const server = spawn('ip', ['netns', 'exec', b, process.execPath, '-e', `let n = 0; require('net').createServer((s) => { s.on('data', (d) => (n += d.length)); s.on('end', () => { console.log(n); process.exit(0); }); }).listen(5001, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let got = '';
    server.stdout.on('data', (c) => (got += c));
    // Headers only, and room enough that the kernel drops none of what it captures.
    const dump = spawn('ip', ['netns', 'exec', b, 'tcpdump', '-i', 'eth0', '-nn', '--immediate-mode', '-U', '-s', '128', '-B', '16384', '-w', pcap, 'tcp and dst port 5001'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let dumpSaid = '';
    dump.stderr.on('data', (c) => (dumpSaid += c));
    try {
      assert.ok(await eventually(() => got.includes('ready') && dumpSaid.includes('listening')), 'server and tcpdump ready');
      const m = await startMangle(['rb', '--netns', r, '--egress', '--set-tcp-flags', 'PSH', '--ratio', '0.1', '--filter', 'tcp and dst port 5001']);
      const tracer = startCli(['--json', '--filter', 'tcp and dst port 5001']);
      const traced = finished(tracer);
      await new Promise((resolve) => tracer.stdout!.once('data', resolve));
      const bytes = 2 << 20;
      execFileSync('ip', ['netns', 'exec', a, process.execPath, '-e', `const s = require('net').connect(5001, '${v4}', () => s.end(Buffer.alloc(${bytes})));`]);
      assert.ok(await eventually(() => got.trim().endsWith(String(bytes))), `the server got every byte (${got.trim()})`);
      const summary = await stopMangle(m);
      tracer.kill('SIGINT');
      const trace = await traced;
      // tcpdump stops reading at SIGINT: let it write out what it has first (the file stops growing
      // for three seconds: an emulated kernel under load may starve it for more than one).
      for (let size = -1, still = 0, waited = 0; still < 3 && waited < 40_000; waited += 1000) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const now = fs.statSync(pcap).size;
        still = now === size ? still + 1 : 0;
        size = now;
      }
      dump.kill('SIGINT');
      await new Promise((resolve) => dump.once('close', resolve));
      const [, captured, received] = /(\d+) packets captured\n(\d+) packets received by filter/.exec(dumpSaid)!.map(Number);
      assert.equal(captured, received, `tcpdump wrote every packet it received: ${dumpSaid}`);

      const count = (expr: string) => execFileSync('tcpdump', ['-r', pcap, '-nn', expr], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean).length;
      const data = count('tcp[13] & 7 == 0'); // neither SYN, FIN nor RST
      const psh = count('tcp[13] & 7 == 0 and tcp[13] & 8 != 0');
      // Selected: the data segments without PSH of their own; altered: those it set PSH on.
      assert.equal(psh, summary.altered + (data - summary.selected), `tcpdump: ${psh} PSH of ${data}; counters: ${JSON.stringify(summary)}; ${dumpSaid}`);
      const share = summary.altered / summary.selected;
      assert.ok(summary.selected > 1000 && share > 0.05 && share < 0.15, `share ${share.toFixed(3)} of ${summary.selected} (asked 0.1, tolerance ±0.05)`);
      assert.equal(csumErrors(), errorsBefore, 'b saw no TCP checksum error');
      // The tracer sees PSH appear between the router's receive and its transmit on rb.
      const altered = trace.events.filter((e) => e.altered);
      assert.ok(altered.length > 0, 'some hop shows the altered flags');
      // Where the kernel lost events (a full ring under this flood), nothing is inferred across the gap.
      for (const e of altered) assert.deepEqual([e.netns_name, e.ifname, e.hook, e.altered], [r, 'rb', 'net_dev_queue', 'tcp flags . -> P.'], JSON.stringify(e));
    } finally {
      server.kill('SIGKILL');
      dump.kill('SIGKILL');
      fs.rmSync(path.dirname(pcap), { recursive: true, force: true });
    }
  }));

test('after SIGKILL nothing stays attached: no XDP program, no tcx link (before 6.6: cleanup removes the tc filter), no program loaded', () =>
  withLab(async (lab) => {
    const { a } = pairLab(lab);
    const runs: { child: ChildProcess; done: ReturnType<typeof finished> }[] = [];
    let tcx = true;
    try {
      runs.push(await startMangle(['eth0', '--netns', a, '--ttl', 'random']));
      runs.push(await startMangle(['eth0', '--netns', a, '--egress', '--drop', '--ratio', '0.5']));
      tcx = !/mangle_tc/.test(lab.exec(a, 'tc', 'filter', 'show', 'dev', 'eth0', 'egress')); // else a classic tc filter
      assert.match(lab.ip(a, 'link', 'show', 'eth0'), /prog\/xdp/, 'attached while running');
      assert.equal(mangleLinks(), tcx ? 2 : 1, 'an XDP link, and a tcx link where the kernel has them');
      if (!tcx) assert.match(lab.exec(a, 'tc', 'filter', 'show', 'dev', 'eth0', 'egress'), /mangle_tc/);
    } finally {
      for (const run of runs) run.child.kill('SIGKILL');
      await Promise.all(runs.map((run) => run.done));
    }
    assert.ok(await eventually(() => !/xdp/.test(lab.ip(a, 'link', 'show', 'eth0'))), 'no XDP program on eth0');
    if (!tcx) {
      // A tc filter outlives a SIGKILL: that is what cleanup is for.
      const cleanup = await runCli(['cleanup']);
      assert.match(cleanup.stdout, /removed tc filter pref \d+ on eth0's egress/);
      assert.doesNotMatch(lab.exec(a, 'tc', 'filter', 'show', 'dev', 'eth0', 'egress'), /mangle_tc/);
    }
    assert.ok(await eventually(() => mangleLinks() === 0 && !mangleProgramsLoaded()), 'no link, no program left');
  }));

test('bad mangle input: one line, exit 2, nothing attached', () =>
  withLab(async (lab) => {
    const { a } = pairLab(lab);
    const cases: [string[], RegExp][] = [
      [['nosuch0', '--ttl', 'random'], /^tracepkt: no interface "nosuch0"\n$/],
      [['eth0', '--netns', 'tpk-nosuch', '--ttl', 'random'], /^tracepkt: unknown network namespace "tpk-nosuch"/],
      [['eth0', '--netns', a], /^tracepkt: nothing to do: give --ttl, --set-tcp-flags or --drop\n$/],
      [['eth0', '--netns', a, '--set-tcp-flags', 'PSH'], /^tracepkt: --set-tcp-flags needs --egress/],
      [['eth0', '--netns', a, '--set-tcp-flags', 'PUSH', '--egress'], /^tracepkt: unknown TCP flag "PUSH"/],
      [['eth0', '--netns', a, '--drop', '--ratio', '2'], /^tracepkt: --ratio must be a number above 0 and at most 1, not "2"\n$/],
      [['eth0', '--netns', a, '--drop', '--ttl', '5'], /^tracepkt: --drop cannot be combined with --ttl/],
      [['eth0', '--netns', a, '--drop', '--filter', 'port 99999'], /^tracepkt: bad filter "port 99999": illegal port number 99999 > 65535\n$/],
      [['eth0', '--netns', a, '--drop', '--filter', 'ip[300] = 1'], /^tracepkt: filter "ip\[300\] = 1" cannot run in tracepkt's programs: the filter reads up to byte 315 of the packet; tracepkt's programs see its first 256\n$/],
      [['eth0', '--netns', a, '--ttl', '0'], /^tracepkt: --ttl must be "random" or a whole number from 1 to 255, not "0"\n$/],
    ];
    for (const [args, message] of cases) {
      const run = await runCli(['mangle', ...args]);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
    }
    assert.doesNotMatch(lab.ip(a, 'link', 'show', 'eth0'), /xdp/);
    assert.ok(!mangleProgramsLoaded());
  }));
