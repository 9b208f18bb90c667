/** Real pings through real namespaces: the exact journey, hop by hop. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { DEMO } from '../../src/commands/demo';
import { bridgeJourney, bridgeLab, finished, hops, netnsInode, routerJourney, routerLab, runCli, startCli, withLab } from './helpers';

for (const family of [4, 6] as const) {
  const v = family === 4 ? 'v4' : 'v6';

  test(`IPv${family}: Docker-like bridge + veth into a container namespace`, () =>
    withLab(async (lab) => {
      const topo = bridgeLab(lab);
      const run = await runCli(['--json', '--from', topo.host, topo[v]]);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(hops(run.events), bridgeJourney(topo));
      for (const e of run.events) {
        assert.equal(e.family, family);
        assert.equal(e.netns, netnsInode(e.netns_name!));
        const [here, there] = [DEMO.host[v], DEMO.container[v]];
        assert.deepEqual([e.src, e.dst], e.dir === 'request' ? [here, there] : [there, here]);
        assert.equal(e.icmp_seq, 1);
      }
      assert.equal(run.summary?.replied, true);
      assert.deepEqual((run.summary?.namespaces as { netns_name: string }[]).map((n) => n.netns_name), [topo.host, topo.ctr]);
    }));

  test(`IPv${family}: three namespaces with a forwarding router in the middle`, () =>
    withLab(async (lab) => {
      const topo = routerLab(lab);
      const run = await runCli(['--json', '--from', topo.a, topo[v]]);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(hops(run.events), routerJourney(topo));
      // The router decrements the TTL / hop limit between its two interfaces.
      assert.deepEqual(run.events.map((e) => e.ttl), [64, 64, 63, 63, 64, 64, 63, 63]);
    }));
}

test('loopback in the host namespace, no --from: four hops on lo named "host"', async () => {
  const run = await runCli(['--json', '127.0.0.1']);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(hops(run.events), [
    ['host', 'lo', 'request', 'net_dev_queue'],
    ['host', 'lo', 'request', 'netif_receive_skb'],
    ['host', 'lo', 'reply', 'net_dev_queue'],
    ['host', 'lo', 'reply', 'netif_receive_skb'],
  ]);
});

test('a host name as target: resolved, then traced', async () => {
  const run = await runCli(['--json', '-4', 'localhost']);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.summary?.target, '127.0.0.1');
  assert.deepEqual(hops(run.events).map(([ns, ifname]) => `${ns}/${ifname}`), ['host/lo', 'host/lo', 'host/lo', 'host/lo']);
});

test('a namespace and interfaces created while tracing are named', () =>
  withLab(async (lab) => {
    // The bridge exists, the container does not yet: the first probes find no one.
    const host = lab.netns('host');
    lab.ip(host, 'link', 'add', 'docker0', 'type', 'bridge');
    lab.ip(host, 'link', 'set', 'docker0', 'up');
    lab.addr(host, 'docker0', `${DEMO.host.v4}/16`);
    const child = startCli(['--json', '-c', '25', '--timeout', '1', '--from', host, DEMO.container.v4]);
    const done = finished(child);
    await new Promise((r) => setTimeout(r, 1000));
    const ctr = lab.netns('ctr');
    const veth = `vnew${lab.id}`;
    lab.veth(host, veth, ctr, 'eth0');
    lab.ip(host, 'link', 'set', veth, 'master', 'docker0');
    lab.addr(ctr, 'eth0', `${DEMO.container.v4}/16`);
    const run = await done;
    assert.equal(run.status, 0, run.stderr);
    const answered = [...new Set(run.events.filter((e) => e.dir === 'reply').map((e) => e.icmp_seq))];
    assert.ok(answered.length > 0, 'later probes are answered');
    for (const seq of answered) {
      assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === seq)), bridgeJourney({ host, ctr, veth }));
    }
  }));

test('--from a /proc/PID/ns/net path; several probes each get their full journey', () =>
  withLab(async (lab) => {
    const topo = bridgeLab(lab);
    const sleeper = spawn('ip', ['netns', 'exec', topo.host, 'sleep', '60'], { stdio: 'ignore' });
    try {
      let pid = '';
      for (let i = 0; i < 100 && !pid; i++) {
        await new Promise((r) => setTimeout(r, 20));
        pid = execFileSync('ip', ['netns', 'pids', topo.host], { encoding: 'utf8' }).trim().split('\n')[0];
      }
      const run = await runCli(['--json', '-c', '3', '--from', `/proc/${pid}/ns/net`, topo.v4]);
      assert.equal(run.status, 0, run.stderr);
      for (const seq of [1, 2, 3]) {
        assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === seq)), bridgeJourney(topo), `probe ${seq}`);
      }
      assert.equal(run.events.length, 18);
      assert.equal(run.summary?.requests_seen, 3);
      assert.equal(run.summary?.replies_seen, 3);
    } finally {
      sleeper.kill('SIGKILL');
    }
  }));

test('unrelated pings running at the same moment stay out of the trace', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    // Same path, same protocol, both directions, one with a payload pattern of its own.
    const noise = [
      ['ip', 'netns', 'exec', topo.a, 'ping', '-q', '-i', '0.01', '-c', '400', topo.v4],
      ['ip', 'netns', 'exec', topo.b, 'ping', '-q', '-i', '0.01', '-c', '400', '10.0.1.2'],
      ['ip', 'netns', 'exec', topo.a, 'ping', '-q', '-i', '0.01', '-c', '400', '-p', 'ffeeddccbbaa9988', topo.v4],
    ].map(([cmd, ...args]) => spawn(cmd, args, { stdio: 'ignore' }));
    try {
      await new Promise((res) => setTimeout(res, 300));
      const run = await runCli(['--json', '-c', '2', '--from', topo.a, topo.v4]);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(new Set(run.events.map((e) => e.icmp_id)).size, 1, 'one ICMP id: ours');
      for (const seq of [1, 2]) {
        assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === seq)), routerJourney(topo));
      }
      assert.equal(run.events.length, 16);
    } finally {
      for (const p of noise) p.kill('SIGKILL');
    }
  }));

test('no reply: exit status 1, the partial journey and where it stopped are printed', () =>
  withLab(async (lab) => {
    const topo = bridgeLab(lab);
    lab.sysctl(topo.ctr, 'net.ipv4.icmp_echo_ignore_all', 1);
    const requestHops = bridgeJourney(topo).slice(0, 3);

    const json = await runCli(['--json', '--timeout', '1', '--from', topo.host, topo.v4]);
    assert.equal(json.status, 1, json.stderr);
    assert.deepEqual(hops(json.events), requestHops);
    assert.equal(json.summary?.replied, false);

    const text = await runCli(['--timeout', '1', '--from', topo.host, topo.v4]);
    assert.equal(text.status, 1);
    const lines = text.stdout.split('\n');
    assert.match(lines[0], /^TIME\s+HOP\s+NETNS/);
    // Hop rows: TIME, HOP, NETNS name, (inode), INTERFACE, DIR, ... (netfilter rows have no interface)
    const rows = lines.filter((l) => / (net_dev_queue|netif_receive_skb)( \(.*\))?$/.test(l)).map((l) => l.split(/\s+/));
    assert.deepEqual(rows.map((r) => [r[2], r[4], r[5]]), requestHops.map(([ns, ifname, dir]) => [ns, ifname, dir]));
    assert.deepEqual(rows.map((r) => r[3]), json.events.map((e) => `(${e.netns})`));
    assert.deepEqual(rows.map((r) => r[1].startsWith('+') || r[1] === '-'), [true, true, true]);
    assert.match(text.stdout, /; no reply\.$/m);
    assert.match(text.stdout, new RegExp(`^Last seen: request on eth0 in ${topo.ctr} \\(netif_receive_skb\\)\\.$`, 'm'));
  }));
