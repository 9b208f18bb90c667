/**
 * Tracing across nodes with the real CLI: an agent in one namespace, the
 * coordinator in another, TLS between them over a veth pair. Both run on
 * this one kernel, so each sees every packet: the agent's view must be the
 * local one event for event (the same sk_buff at the same hook), a witness
 * no made-up stream could fake; and with one clock underneath, the clock
 * offset measured must be zero within the bound it states. (Two kernels,
 * stitched by the tunnel between them, are the kernel matrix's to test.)
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually, finished, ourKernelObjects, pairLab, runCli, startCli, testPki, withLab, type CliRun } from './helpers';
import type { Lab } from '../../src/lab/lab';

const PORT = 7447;

/** near (10.61.0.1) — far (10.61.0.2), and a token file each side may use. */
function twoNodes(lab: Lab) {
  const { a: near, b: far } = pairLab(lab, '10.61.0', ['near', 'far']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-cluster-'));
  const token = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `${text}\n`, { mode: 0o600 });
    return file;
  };
  return { near, far, farAddr: '10.61.0.2', token, removeTokens: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The agent in `ns`, listening; resolves once it said so. */
async function startAgent(ns: string, tokenFile: string, name = 'far'): Promise<{ child: ChildProcess; log: () => string; done: Promise<CliRun> }> {
  const child = startCli(['agent', '--listen', `10.61.0.2:${PORT}`, '--token-file', tokenFile, '--name', name], ['ip', 'netns', 'exec', ns]);
  let log = '';
  child.stderr!.on('data', (s: Buffer) => (log += s.toString()));
  const done = finished(child);
  assert.ok(await eventually(() => /listening on 10\.61\.0\.2:7447 as node far/.test(log) || child.exitCode !== null), log);
  assert.equal(child.exitCode, null, `the agent started: ${log}`);
  return { child, log: () => log, done };
}

/** The coordinator in `ns` with --node far; resolves once it printed its start line (attached). */
async function startCoordinator(ns: string, tokenFile: string, filter: string, extra: string[] = []) {
  const child = startCli(['--json', '--filter', filter, '--node', `far=10.61.0.2:${PORT}`, '--token-file', tokenFile, ...extra], ['ip', 'netns', 'exec', ns]);
  const done = finished(child);
  // Everything it writes is kept from the start (output() below), for the tests that watch it as it runs.
  output(child, 'stdout');
  output(child, 'stderr');
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return { child, done };
}

/** An agent in far and a coordinator in near tracing `filter`, both running. */
async function tracingAcross(lab: Lab, filter: string) {
  const t = twoNodes(lab);
  const tokenFile = t.token('token', 'integration-token-0123456789abcdef');
  const agent = await startAgent(t.far, tokenFile);
  const coordinator = await startCoordinator(t.near, tokenFile, filter);
  return { t, agent, coordinator };
}

const ping = (ns: string, to: string, count: number) => execFileSync('ip', ['netns', 'exec', ns, 'ping', '-c', String(count), '-i', '0.2', '-q', to], { stdio: 'ignore' });

/** What identifies one kernel event, whichever tracer saw it. */
const sighting = (e: Record<string, any>) => [e.kind, e.skb, e.hook, e.netns, e.ifname, e.dir, e.icmp_seq].join(' ');

test('across nodes: the agent\'s view is the local one event for event, each event names its node, one journey holds both', () =>
  withLab(async (lab) => {
    const t = twoNodes(lab);
    const tokenFile = t.token('token', 'integration-token-0123456789abcdef');
    const agent = await startAgent(t.far, tokenFile);
    try {
      const coordinator = await startCoordinator(t.near, tokenFile, `icmp and host ${t.farAddr}`, ['--count', '1']);
      ping(t.near, t.farAddr, 2);
      const run = await coordinator.done;
      assert.equal(run.status, 0, run.stderr);
      const start = run.lines[0];
      const local = os.hostname();
      assert.equal(start.node, local);
      assert.equal(start.nodes.length, 1);
      const [far] = start.nodes;
      assert.deepEqual([far.node, far.address, far.kernel], ['far', `${t.farAddr}:${PORT}`, os.release()]);
      // One kernel, one clock: the true offset is 0, and the estimate says how far from it it may be.
      assert.ok(Math.abs(far.clock_offset_ns) <= far.clock_uncertainty_ns, `offset ${far.clock_offset_ns} ± ${far.clock_uncertainty_ns}`);
      assert.deepEqual(start.missing, []);
      const packets = run.lines.filter((l) => l.kind === 'hop' || l.kind === 'drop');
      const byNode = (node: string) => packets.filter((p) => p.node === node);
      assert.equal(byNode(local).length + byNode('far').length, packets.length, 'every event names its node');
      // Each ping: out of near's eth0, into far's, the reply back: 4 hops, twice, seen by both.
      const expected = [1, 2].flatMap((seq) => [
        [t.near, 'eth0', 'request', 'net_dev_queue', seq],
        [t.far, 'eth0', 'request', 'netif_receive_skb', seq],
        [t.far, 'eth0', 'reply', 'net_dev_queue', seq],
        [t.near, 'eth0', 'reply', 'netif_receive_skb', seq],
      ]);
      for (const node of [local, 'far']) {
        assert.deepEqual(byNode(node).filter((p) => p.kind === 'hop').map((p) => [p.netns_name, p.ifname, p.dir, p.hook, p.icmp_seq]), expected, `as ${node} saw it`);
      }
      assert.deepEqual(byNode('far').map(sighting).sort(), byNode(local).map(sighting).sort(), 'the same kernel events');
      assert.ok(packets.every((p) => p.journey === 1), 'one journey');
      const [journey] = run.summary!.journeys;
      assert.deepEqual(
        journey.namespaces.map((n: { node: string; netns_name: string }) => `${n.node}/${n.netns_name}`).sort(),
        [`${local}/${t.near}`, `${local}/${t.far}`, `far/${t.near}`, `far/${t.far}`].sort(),
      );
      assert.equal(journey.complete, true);
      assert.equal(journey.incomplete, false);
      // What the agent sent: the hops, and the drops the coordinator leaves out as after delivery (ping's raw socket).
      const [summary] = run.summary!.nodes;
      assert.ok(summary.events >= byNode('far').length, `${summary.events} events sent`);
      assert.deepEqual({ ...summary, events: 0 }, { node: 'far', events: 0, lost_events: 0, lost_in_user_space: 0, lost_in_transit: 0, lost_behind_output: 0, view: 'whole' });
      assert.match(agent.log(), /tracing "icmp and host 10\.61\.0\.2" for 86400 s at most/);
      assert.ok(await eventually(() => /trace ended \(stopped\)/.test(agent.log())), agent.log());
    } finally {
      agent.child.kill('SIGINT');
      const end = await agent.done;
      assert.equal(end.status, 130, end.stderr);
      t.removeTokens();
    }
    assert.deepEqual(ourKernelObjects().progs, [], 'nothing left loaded');
  }));

test('a wrong token, a node not there: no view from them, said; the local view still whole', () =>
  withLab(async (lab) => {
    const t = twoNodes(lab);
    const agent = await startAgent(t.far, t.token('agent', 'the-agents-token-0123456789'));
    try {
      const wrong = t.token('wrong', 'another-token-0123456789abc');
      const coordinator = await startCoordinator(t.near, wrong, `icmp and host ${t.farAddr}`, ['--count', '1', '--node', 'gone=10.61.0.1:1']);
      ping(t.near, t.farAddr, 1);
      const run = await coordinator.done;
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(run.lines[0].nodes, []);
      assert.deepEqual(run.lines[0].missing, ['no view from node far: the token does not match', 'no view from node gone: connection refused (no agent listening there)']);
      assert.deepEqual(run.summary!.missing, run.lines[0].missing);
      assert.equal(run.lines.filter((l) => l.kind === 'hop').length, 4, 'the local view');
      assert.ok(run.lines.filter((l) => l.kind === 'hop').every((l) => l.node === os.hostname()));
      assert.equal(run.summary!.journeys[0].incomplete, true, 'it may lack the far node\'s part: not called whole');
      assert.ok(await eventually(() => /refused 10\.61\.0\.1:\d+: the token does not match/.test(agent.log())), agent.log());
    } finally {
      agent.child.kill('SIGTERM');
      assert.equal((await agent.done).status, 143);
      t.removeTokens();
    }
  }));

test('the coordinator killed: its connection closes and the trace with it; cut off: its lease runs out; the agent serves on', () =>
  withLab(async (lab) => {
    const t = twoNodes(lab);
    const tokenFile = t.token('token', 'integration-token-0123456789abcdef');
    const agent = await startAgent(t.far, tokenFile);
    try {
      assert.deepEqual(ourKernelObjects().progs, [], 'an idle agent loads nothing');
      const killed = await startCoordinator(t.near, tokenFile, 'icmp');
      assert.ok(await eventually(() => /tracing "icmp"/.test(agent.log())));
      killed.child.kill('SIGKILL');
      await killed.done;
      assert.ok(await eventually(() => /10\.61\.0\.1:\d+: the coordinator disconnected\n.*trace ended \(stopped\)/.test(agent.log())), agent.log());
      assert.ok(await eventually(() => ourKernelObjects().progs.length === 0), 'the trace\'s programs are gone');
      // Cut off without a word (its host gone, the network down): nothing closes the connection; the lease ends the trace.
      const cut = await startCoordinator(t.near, tokenFile, 'icmp');
      assert.ok(await eventually(() => (agent.log().match(/tracing "icmp"/g) ?? []).length === 2 && heldPrograms(agent.child.pid!).length > 0), 'the agent traces');
      lab.ip(t.near, 'link', 'set', 'eth0', 'down');
      assert.ok(await eventually(() => /lease expired \(nothing heard for 15000 ms\): trace stopped, connection closed/.test(agent.log())), agent.log());
      assert.ok(await eventually(() => heldPrograms(agent.child.pid!).length === 0), 'the cut-off trace\'s programs are gone');
      cut.child.kill('SIGKILL');
      await cut.done;
      lab.ip(t.near, 'link', 'set', 'eth0', 'up');
      assert.equal(agent.child.exitCode, null, 'the agent serves on');
      // And serves the next coordinator.
      const next = await startCoordinator(t.near, tokenFile, `icmp and host ${t.farAddr}`, ['--count', '1']);
      ping(t.near, t.farAddr, 1);
      const run = await next.done;
      assert.equal(run.lines.filter((l) => l.node === 'far' && l.kind === 'hop').length, 4, run.stderr);
    } finally {
      agent.child.kill('SIGINT');
      await agent.done;
      t.removeTokens();
    }
  }));

/** The BPF programs a process holds, by their ids: its file descriptors' (programs and links) fdinfo. */
function heldPrograms(pid: number): number[] {
  const ids = new Set<number>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const m = /^prog_id:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return [...ids];
}

test('the agent killed mid-trace: the view from it ended, said; journeys from then on are not called whole', () =>
  withLab(async (lab) => {
    const { t, agent, coordinator } = await tracingAcross(lab, 'icmp and host 10.61.0.2');
    try {
      ping(t.near, t.farAddr, 1);
      // The first ping's journey is whole and complete (every node's events past it are in) before the agent dies.
      assert.ok(await eventually(() => /"kind":"journey"/.test(output(coordinator.child, 'stdout'))));
      agent.child.kill('SIGKILL');
      await agent.done;
      ping(t.near, t.farAddr, 1);
      assert.ok(await eventually(() => output(coordinator.child, 'stderr').includes('Warning: the view from node far ended')));
    } finally {
      coordinator.child.kill('SIGINT');
      t.removeTokens();
    }
    const run = await coordinator.done;
    assert.equal(run.status, 130, run.stderr);
    const [node] = run.summary!.nodes;
    assert.equal(node.node, 'far');
    assert.notEqual(node.view, 'whole');
    assert.equal(run.summary!.missing.length, 1);
    assert.match(run.summary!.missing[0], /node far.*(connection|reset|closed)/);
    // Each ping its journey (another echo identifier): the first whole, the second after the view ended.
    const [first, second] = run.summary!.journeys;
    assert.equal(run.summary!.journeys.length, 2);
    assert.deepEqual([first.packets, first.complete, first.incomplete], [8, true, false], 'the first: both nodes\' view');
    assert.equal(second.incomplete, true, 'the second is not called whole without the far node\'s view');
    assert.equal(second.packets, 4, 'the local view of it');
    assert.deepEqual(ourKernelObjects().progs, [], 'the killed agent\'s programs went with it');
  }));

test('a frozen agent: its lag is said at once, and the journey it holds back is completed on the others\' time, marked incomplete', () =>
  withLab(async (lab) => {
    const { t, agent, coordinator } = await tracingAcross(lab, 'icmp and host 10.61.0.2');
    try {
      agent.child.kill('SIGSTOP'); // its events, and its word on how far they are in, stop coming
      ping(t.near, t.farAddr, 1);
      assert.ok(await eventually(() => output(coordinator.child, 'stderr').includes("Warning: node far's events are more than 5 s behind")));
      // The ping's journey completes on this node's time, without waiting for the frozen one.
      assert.ok(await eventually(() => /"kind":"journey"/.test(output(coordinator.child, 'stdout'))));
      agent.child.kill('SIGCONT');
    } finally {
      agent.child.kill('SIGCONT');
      coordinator.child.kill('SIGINT');
    }
    const run = await coordinator.done;
    agent.child.kill('SIGINT');
    await agent.done;
    t.removeTokens();
    const first = run.lines.find((l) => l.kind === 'journey');
    assert.equal(first?.incomplete, true, 'not called whole while a node lagged');
    assert.ok(run.summary!.missing.some((m: string) => /the view from node far fell more than 5 s behind 1 time\(s\)/.test(m)), run.summary!.missing.join('; '));
  }));

const outputs = new Map<string, string>();
/** What a child wrote to stdout or stderr since first asked (finished() reads it too: both listen). */
function output(child: ChildProcess, stream: 'stdout' | 'stderr'): string {
  const key = `${child.pid} ${stream}`;
  if (!outputs.has(key)) {
    outputs.set(key, '');
    child[stream]!.on('data', (s: Buffer | string) => outputs.set(key, outputs.get(key) + s.toString()));
  }
  return outputs.get(key)!;
}

test('mutual TLS with the real commands: certificates the CA signs trace a probe across; a rogue CA\'s are refused on both sides', () =>
  withLab(async (lab) => {
    const t = twoNodes(lab);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-pki-'));
    const certs = testPki(dir);
    const args = (f: { certFile: string; keyFile: string; caFile: string }) => ['--cert', f.certFile, '--key', f.keyFile, '--ca', f.caFile];
    const child = startCli(['agent', '--listen', `${t.farAddr}:${PORT}`, ...args(certs('agent')), '--name', 'far'], ['ip', 'netns', 'exec', t.far]);
    let log = '';
    child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    const agentDone = finished(child);
    try {
      assert.ok(await eventually(() => /listening on 10\.61\.0\.2:7447 as node far/.test(log) || child.exitCode !== null), log);
      const probe = await runCli(['--json', '--node', `far=${t.farAddr}:${PORT}`, ...args(certs('coordinator')), '--from', t.near, t.farAddr], ['ip', 'netns', 'exec', t.near]);
      assert.equal(probe.status, 0, probe.stderr);
      assert.deepEqual(probe.summary!.missing, []);
      assert.ok(probe.events.some((e) => e.node === 'far'), 'the far part came over mutual TLS');
      const rogue = await runCli(['--json', '--node', `far=${t.farAddr}:${PORT}`, ...args(certs('rogue', 'ca')), '--from', t.near, t.farAddr], ['ip', 'netns', 'exec', t.near]);
      assert.equal(rogue.status, 0, rogue.stderr);
      assert.match(rogue.summary!.missing.join('\n'), /^no view from node far: it said: your certificate is not accepted: not signed by the CA this agent trusts$/);
      assert.match(log, /refused 10\.61\.0\.1:\d+: its certificate: not signed by the CA this agent trusts/);
    } finally {
      child.kill('SIGINT');
      await agentDone;
      fs.rmSync(dir, { recursive: true, force: true });
      t.removeTokens();
    }
  }),
);

test('agent start-up errors: one line each, nothing listening', () =>
  withLab(async (lab) => {
    const t = twoNodes(lab);
    try {
      const open = t.token('open', 'integration-token-0123456789abcdef');
      fs.chmodSync(open, 0o644);
      const cases: [string[], RegExp][] = [
        [['agent', '--listen', '10.61.0.2:7447', '--token-file', open], /^tracepkt: token file .*\/open: others can read or write it \(mode 644\): chmod 600 it\n$/],
        [['agent', '--listen', 'nowhere', '--token-file', open], /^tracepkt: --listen nowhere: give ADDR:PORT/],
        [['agent', '--listen', '10.61.0.2:7447'], /^tracepkt: agent: --token-file FILE \(or --cert, --key and --ca\) is required/],
        [['agent', '--listen', '10.61.0.9:7447', '--token-file', t.token('ok', 'integration-token-0123456789abcdef')], /^tracepkt: agent: cannot listen on 10\.61\.0\.9:7447: no interface has that address\n$/],
        [['--filter', 'icmp', '--node', 'far=10.61.0.2:7447'], /^tracepkt: --node needs --token-file FILE/],
        [['--filter', 'icmp', '--node', 'far=10.61.0.2:7447', '--token-file', open], /^tracepkt: token file .*\/open: others can read or write it \(mode 644\): chmod 600 it\n$/],
        [['--filter', 'icmp', '--node', `${os.hostname()}=10.61.0.2:7447`, '--token-file', t.token('ok2', 'integration-token-0123456789abcdef')], /^tracepkt: --node .*(: that is this host's name|give NAME=ADDR:PORT)/], // a host name --node cannot take is refused as such
        // A probe across nodes: the same checks, before anything is attached or sent.
        [['--node', 'far=10.61.0.2:7447', '--token-file', open, '10.61.0.2'], /^tracepkt: token file .*\/open: others can read or write it \(mode 644\): chmod 600 it\n$/],
        [['--node', `${os.hostname()}=10.61.0.2:7447`, '--token-file', t.token('ok3', 'integration-token-0123456789abcdef'), '10.61.0.2'], /^tracepkt: --node .*(: that is this host's name|give NAME=ADDR:PORT)/],
      ];
      for (const [args, why] of cases) {
        const child = startCli(args, ['ip', 'netns', 'exec', t.far]);
        const run = await finished(child);
        assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, why);
      }
    } finally {
      t.removeTokens();
    }
  }));
