/** Real pings through real namespaces: the exact journey, hop by hop. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { bridgeLab, hops, netnsInode, routerLab, runCli, withLab } from './helpers';

for (const family of [4, 6] as const) {
  test(`IPv${family}: Docker-like bridge + veth into a container namespace`, () =>
    withLab(async (lab) => {
      const { host, ctr, veth, v4, v6 } = bridgeLab(lab);
      const target = family === 4 ? v4 : v6;
      const run = await runCli(['--json', '--from', host, target]);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(hops(run.events), [
        [host, 'docker0', 'request', 'net_dev_queue'],
        [host, veth, 'request', 'net_dev_queue'],
        [ctr, 'eth0', 'request', 'netif_receive_skb'],
        [ctr, 'eth0', 'reply', 'net_dev_queue'],
        [host, veth, 'reply', 'netif_receive_skb'],
        [host, 'docker0', 'reply', 'netif_receive_skb'],
      ]);
      const here = family === 4 ? '172.17.0.1' : 'fd00:17::1';
      for (const e of run.events) {
        assert.equal(e.family, family);
        assert.equal(e.netns, netnsInode(e.netns_name!));
        assert.deepEqual([e.src, e.dst], e.dir === 'request' ? [here, target] : [target, here]);
        assert.equal(e.icmp_seq, 1);
      }
      assert.equal(run.summary?.replied, true);
      assert.deepEqual((run.summary?.namespaces as { netns_name: string }[]).map((n) => n.netns_name), [host, ctr]);
    }));

  test(`IPv${family}: three namespaces with a forwarding router in the middle`, () =>
    withLab(async (lab) => {
      const { a, r, b, v4, v6 } = routerLab(lab);
      const run = await runCli(['--json', '--from', a, family === 4 ? v4 : v6]);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(hops(run.events), [
        [a, 'eth0', 'request', 'net_dev_queue'],
        [r, 'ra', 'request', 'netif_receive_skb'],
        [r, 'rb', 'request', 'net_dev_queue'],
        [b, 'eth0', 'request', 'netif_receive_skb'],
        [b, 'eth0', 'reply', 'net_dev_queue'],
        [r, 'rb', 'reply', 'netif_receive_skb'],
        [r, 'ra', 'reply', 'net_dev_queue'],
        [a, 'eth0', 'reply', 'netif_receive_skb'],
      ]);
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

test('--from a /proc/PID/ns/net path; several probes each get their full journey', () =>
  withLab(async (lab) => {
    const { host, ctr, veth, v4 } = bridgeLab(lab);
    const { spawn } = await import('node:child_process');
    const sleeper = spawn('ip', ['netns', 'exec', host, 'sleep', '60'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const pid = (await import('node:child_process')).execFileSync('ip', ['netns', 'pids', host], { encoding: 'utf8' }).trim().split('\n')[0];
      const run = await runCli(['--json', '-c', '3', '--from', `/proc/${pid}/ns/net`, v4]);
      assert.equal(run.status, 0, run.stderr);
      const one = [
        [host, 'docker0', 'request', 'net_dev_queue'],
        [host, veth, 'request', 'net_dev_queue'],
        [ctr, 'eth0', 'request', 'netif_receive_skb'],
        [ctr, 'eth0', 'reply', 'net_dev_queue'],
        [host, veth, 'reply', 'netif_receive_skb'],
        [host, 'docker0', 'reply', 'netif_receive_skb'],
      ];
      for (const seq of [1, 2, 3]) {
        assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === seq)), one, `probe ${seq}`);
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
    const { a, r, b, v4 } = routerLab(lab);
    const { spawn } = await import('node:child_process');
    // Same path, same protocol, both directions, one with its own payload pattern.
    const noise = [
      spawn('ip', ['netns', 'exec', a, 'ping', '-q', '-i', '0.01', '-c', '400', v4], { stdio: 'ignore' }),
      spawn('ip', ['netns', 'exec', b, 'ping', '-q', '-i', '0.01', '-c', '400', '10.0.1.2'], { stdio: 'ignore' }),
      spawn('ip', ['netns', 'exec', a, 'ping', '-q', '-i', '0.01', '-c', '400', '-p', 'ffeeddccbbaa9988', v4], { stdio: 'ignore' }),
    ];
    try {
      await new Promise((res) => setTimeout(res, 300));
      const run = await runCli(['--json', '-c', '2', '--from', a, v4]);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(new Set(run.events.map((e) => e.icmp_id)).size, 1, 'one ICMP id: ours');
      for (const seq of [1, 2]) {
        assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === seq)), [
          [a, 'eth0', 'request', 'net_dev_queue'],
          [r, 'ra', 'request', 'netif_receive_skb'],
          [r, 'rb', 'request', 'net_dev_queue'],
          [b, 'eth0', 'request', 'netif_receive_skb'],
          [b, 'eth0', 'reply', 'net_dev_queue'],
          [r, 'rb', 'reply', 'netif_receive_skb'],
          [r, 'ra', 'reply', 'net_dev_queue'],
          [a, 'eth0', 'reply', 'netif_receive_skb'],
        ]);
      }
      assert.equal(run.events.length, 16);
    } finally {
      for (const p of noise) p.kill('SIGKILL');
    }
  }));

test('no reply: exit status 1, the partial journey and where it stopped are printed', () =>
  withLab(async (lab) => {
    const { host, ctr, veth, v4 } = bridgeLab(lab);
    lab.sysctl(ctr, 'net.ipv4.icmp_echo_ignore_all', 1);
    const json = await runCli(['--json', '--timeout', '1', '--from', host, v4]);
    assert.equal(json.status, 1, json.stderr);
    assert.deepEqual(hops(json.events), [
      [host, 'docker0', 'request', 'net_dev_queue'],
      [host, veth, 'request', 'net_dev_queue'],
      [ctr, 'eth0', 'request', 'netif_receive_skb'],
    ]);
    assert.equal(json.summary?.replied, false);

    const text = await runCli(['--timeout', '1', '--from', host, v4]);
    assert.equal(text.status, 1);
    const lines = text.stdout.split('\n');
    assert.match(lines[0], /^TIME\s+NETNS/);
    assert.deepEqual(
      lines.slice(1, 4).map((l) => l.split(/\s+/).slice(1, 5)),
      [
        [host, expect(json.events[0].netns), 'docker0', 'request'],
        [host, expect(json.events[1].netns), veth, 'request'],
        [ctr, expect(json.events[2].netns), 'eth0', 'request'],
      ].map(([n, i, ifn, d]) => [n, i, ifn, d]),
    );
    assert.match(text.stdout, /; no reply\.$/m);
    assert.match(text.stdout, new RegExp(`^Last seen: request on eth0 in ${ctr} \\(netif_receive_skb\\)\\.$`, 'm'));
  }));

/** The inode column as the table prints it. */
function expect(inode: number): string {
  return `(${inode})`;
}
