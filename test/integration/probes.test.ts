/** TCP and UDP probes, and following them through NAT, in real namespaces. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { hops, kernelAtLeast, natLab, routerLab, runCli, tcpServer, withLab, type CliRun } from './helpers';
import { NO_REASON_GIVEN } from '../../src/events';

const l4 = (run: CliRun) => run.events.map((e) => [e.netns_name, e.ifname, e.dir, e.proto, `${e.sport}>${e.dport}`, e.tcp_flags]);

test('TCP to an open port: SYN out, SYN-ACK back, exit 0', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    const stop = await tcpServer(topo.b, 8080);
    try {
      const run = await runCli(['--json', '--tcp', '8080', '--from', topo.a, topo.v4]);
      assert.equal(run.status, 0, run.stderr);
      const syn = run.events.filter((e) => e.tcp_flags === 'S');
      const synAck = run.events.filter((e) => e.tcp_flags === 'S.');
      assert.deepEqual(hops(syn), [
        [topo.a, 'eth0', 'request', 'net_dev_queue'],
        [topo.r, 'ra', 'request', 'netif_receive_skb'],
        [topo.r, 'rb', 'request', 'net_dev_queue'],
        [topo.b, 'eth0', 'request', 'netif_receive_skb'],
      ]);
      assert.deepEqual(hops(synAck).map((h) => h.slice(0, 3)), [
        [topo.b, 'eth0', 'reply'],
        [topo.r, 'rb', 'reply'],
        [topo.r, 'ra', 'reply'],
        [topo.a, 'eth0', 'reply'],
      ]);
      const port = syn[0].sport;
      assert.ok(syn.every((e) => e.dport === 8080 && e.sport === port) && synAck.every((e) => e.sport === 8080 && e.dport === port));
      assert.equal(run.summary?.verdict, `answered with SYN-ACK: port 8080 open on ${topo.v4}`);
    } finally {
      stop();
    }
  }));

test('TCP to a closed port: RST back, exit 0, the SYN dropped by the target for want of a socket', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    const run = await runCli(['--json', '--tcp', '8081', '--from', topo.a, topo.v4]);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(l4(run).filter((x) => x[2] === 'reply').map((x) => [x[0], x[5]]), [
      [topo.b, 'R.'],
      [topo.r, 'R.'],
      [topo.r, 'R.'],
      [topo.a, 'R.'],
    ]);
    const drop = run.lines.find((l) => l.kind === 'drop');
    // Before 5.17 the kernel gives no reason: the place (TCP's receive, no socket found) says it.
    assert.deepEqual([drop?.netns_name, drop?.reason, drop?.tcp_flags], [topo.b, kernelAtLeast(5, 17) ? 'NO_SOCKET' : NO_REASON_GIVEN, 'S']);
    if (!kernelAtLeast(5, 17)) assert.match(drop?.location ?? '', /^tcp_v4_rcv\b/);
    assert.equal(run.summary?.verdict, `answered with RST: port 8081 closed on ${topo.v4}`);
  }));

test('UDP to a closed port: the ICMP port-unreachable travels back, exit 1', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    const run = await runCli(['--json', '--udp', '5353', '--from', topo.a, topo.v4]);
    assert.equal(run.status, 1, run.stderr);
    const errors = run.events.filter((e) => e.dir === 'error');
    assert.deepEqual(errors.map((e) => [e.netns_name, e.ifname, e.icmp_type, e.icmp_code, e.proto, e.dport]), [
      [topo.b, 'eth0', 3, 3, 17, 5353],
      [topo.r, 'rb', 3, 3, 17, 5353],
      [topo.r, 'ra', 3, 3, 17, 5353],
      [topo.a, 'eth0', 3, 3, 17, 5353],
    ]);
    assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.b} at __udp4_lib_rcv: destination unreachable \\(port unreachable\\); ICMP error sent back by ${topo.v4.replace(/\./g, '\\.')}$`));
  }));

test('a Docker-style published port: DNAT from host port 8080 to the container’s port 80, both ways', () =>
  withLab(async (lab) => {
    const topo = natLab(lab);
    lab.exec(topo.host, 'iptables', '-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '8080', '-j', 'DNAT', '--to-destination', '172.17.0.2:80');
    const stop = await tcpServer(topo.ctr, 80);
    try {
      const run = await runCli(['--json', '--tcp', '8080', '--from', topo.out, topo.hostExt]);
      assert.equal(run.status, 0, run.stderr);
      const syn = run.events.filter((e) => e.tcp_flags === 'S');
      assert.deepEqual(syn.map((e) => [e.netns_name, e.ifname, e.dst, e.dport]), [
        [topo.out, 'eth0', '10.99.0.1', 8080],
        [topo.host, 'ext', '10.99.0.1', 8080],
        [topo.host, 'docker0', '172.17.0.2', 80],
        [topo.host, topo.veth, '172.17.0.2', 80],
        [topo.ctr, 'eth0', '172.17.0.2', 80],
      ]);
      assert.equal(syn[2].rewritten, 'dst 10.99.0.1:8080 -> 172.17.0.2:80', 'the hop after DNAT says what changed');
      const synAck = run.events.filter((e) => e.tcp_flags === 'S.');
      assert.deepEqual(synAck.map((e) => [e.netns_name, e.ifname, e.src, e.sport]), [
        [topo.ctr, 'eth0', '172.17.0.2', 80],
        [topo.host, topo.veth, '172.17.0.2', 80],
        [topo.host, 'docker0', '172.17.0.2', 80],
        [topo.host, 'ext', '10.99.0.1', 8080],
        [topo.out, 'eth0', '10.99.0.1', 8080],
      ]);
      // The mapping from the conntrack entry, where the kernel's BTF describes it (not 5.10's module).
      assert.match(run.summary?.verdict, new RegExp(`^answered with SYN-ACK: port 80 open on 172\\.17\\.0\\.2 \\(reached as 10\\.99\\.0\\.1:8080(; NAT by conntrack in namespace ${topo.host}: dnat 10\\.99\\.0\\.1:8080->172\\.17\\.0\\.2:80)?\\)$`));
      // The DNAT rule is named where it judged the SYN.
      const nat = run.lines.find((l) => l.kind === 'netfilter' && l.table === 'nat' && l.hook === 'PREROUTING' && l.dir === 'request');
      assert.match(nat?.rule ?? '', /dnat to 172\.17\.0\.2:80/);
    } finally {
      stop();
    }
  }));

test('a masqueraded container reaching an outside address: SNAT on the way out, undone on the way back', () =>
  withLab(async (lab) => {
    const topo = natLab(lab);
    const stop = await tcpServer(topo.out, 80);
    try {
      const run = await runCli(['--json', '--tcp', '80', '--from', topo.ctr, topo.outAddr]);
      assert.equal(run.status, 0, run.stderr);
      const syn = run.events.filter((e) => e.tcp_flags === 'S');
      assert.deepEqual(syn.map((e) => [e.netns_name, e.ifname, e.src]), [
        [topo.ctr, 'eth0', '172.17.0.2'],
        [topo.host, topo.veth, '172.17.0.2'],
        [topo.host, 'docker0', '172.17.0.2'],
        [topo.host, 'ext', '10.99.0.1'],
        [topo.out, 'eth0', '10.99.0.1'],
      ]);
      assert.match(syn[3].rewritten ?? '', /^src 172\.17\.0\.2:\d+ -> 10\.99\.0\.1:\d+$/);
      const synAck = run.events.filter((e) => e.tcp_flags === 'S.');
      assert.deepEqual(synAck.map((e) => [e.netns_name, e.ifname, e.dst]), [
        [topo.out, 'eth0', '10.99.0.1'],
        [topo.host, 'ext', '10.99.0.1'],
        [topo.host, 'docker0', '172.17.0.2'],
        [topo.host, topo.veth, '172.17.0.2'],
        [topo.ctr, 'eth0', '172.17.0.2'],
      ]);
      assert.match(synAck[2].rewritten ?? '', /^dst 10\.99\.0\.1:\d+ -> 172\.17\.0\.2:\d+$/);
    } finally {
      stop();
    }
  }));
