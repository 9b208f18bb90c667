/**
 * Why the probe stopped, in real namespaces: each case asserts where (the
 * namespace and the kernel function), why (the drop reason, the route, the
 * ICMP error) and the verdict sentence.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Lab } from '../../src/lab/lab';
import { hops, kernelAtLeast, routerLab, runCli, withLab, type CliRun } from './helpers';
import { NO_REASON_GIVEN } from '../../src/events';

type Topo = ReturnType<typeof routerLab>;

function stopCase(name: string, body: (lab: Lab, topo: Topo) => Promise<void>) {
  test(name, () => withLab((lab) => body(lab, routerLab(lab))));
}

/** The kernel's drop reason, where it gives one (5.17+); before, drops are named by place only. */
const reason = (name: string) => (kernelAtLeast(5, 17) ? name : NO_REASON_GIVEN);
const kind = (run: CliRun, k: string) => run.lines.filter((l) => l.kind === k);
const drops = (run: CliRun) => kind(run, 'drop').map((d) => [d.netns_name, d.location.replace(/\+0x[0-9a-f]+$/, ''), d.reason, d.dir]);
const errors = (run: CliRun) =>
  run.events.filter((e) => e.dir === 'error').map((e) => [e.netns_name, e.ifname, e.hook, e.icmp_type, e.icmp_code, e.quotes, e.src, e.dst]);

async function probe(topo: Topo, ...args: string[]): Promise<CliRun> {
  const run = await runCli(['--json', '--timeout', '1', '--from', topo.a, ...args]);
  assert.equal(run.status, 1, run.stderr);
  return run;
}

stopCase('a blackhole route in the router: dropped there, silently', async (lab, topo) => {
  lab.ip(topo.r, 'route', 'add', 'blackhole', '10.0.2.2/32');
  const run = await probe(topo, topo.v4);
  const route = kind(run, 'route').find((r) => r.netns_name === topo.r)!;
  assert.deepEqual([route.purpose, route.table, route.error, route.oif], ['input', 'main', 'blackhole', null]);
  assert.deepEqual(drops(run), [[topo.r, 'ip_error', reason('NOT_SPECIFIED'), 'request']]);
  assert.deepEqual(errors(run), [], 'a blackhole tells no one');
  assert.equal(run.summary?.verdict, `dropped in namespace ${topo.r} at ip_error: blackhole route to 10.0.2.2 (table main)`);
});

stopCase('an unreachable route: dropped, and the sender is told "host unreachable"', async (lab, topo) => {
  lab.ip(topo.r, 'route', 'add', 'unreachable', '10.0.2.2/32');
  const run = await probe(topo, topo.v4);
  assert.equal(kind(run, 'route').find((r) => r.netns_name === topo.r)?.error, 'unreachable');
  assert.deepEqual(drops(run), [[topo.r, 'ip_error', reason('NOT_SPECIFIED'), 'request']]);
  assert.deepEqual(errors(run), [
    [topo.r, 'ra', 'net_dev_queue', 3, 1, 'request', '10.0.1.1', '10.0.1.2'],
    [topo.a, 'eth0', 'netif_receive_skb', 3, 1, 'request', '10.0.1.1', '10.0.1.2'],
  ]);
  assert.equal(run.summary?.verdict, `dropped in namespace ${topo.r} at ip_error: unreachable route to 10.0.2.2 (table main); ICMP error sent back by 10.0.1.1`);
});

stopCase('strict rp_filter with an asymmetric path: the reverse-path check names the other interface', async (lab, topo) => {
  // The router's way back to 10.0.1.2 goes out rb, so a request arriving on ra fails the check.
  lab.sysctl(topo.r, 'net.ipv4.conf.all.rp_filter', 1);
  lab.sysctl(topo.r, 'net.ipv4.conf.ra.rp_filter', 1);
  lab.ip(topo.r, 'route', 'add', '10.0.1.2/32', 'via', '10.0.2.2', 'dev', 'rb');
  // rp_filter judges ARP too: give the sender the router's address by hand so the probe leaves.
  const mac = JSON.parse(lab.ip(topo.r, '-j', 'link', 'show', 'ra'))[0].address;
  lab.ip(topo.a, 'neigh', 'add', '10.0.1.1', 'lladdr', mac, 'dev', 'eth0', 'nud', 'permanent');
  const run = await probe(topo, topo.v4);
  const check = kind(run, 'route').find((r) => r.purpose === 'reverse-path')!;
  assert.deepEqual([check.netns_name, check.dst, check.oif], [topo.r, '10.0.1.2', 'rb']);
  assert.deepEqual(drops(run).map((d) => [d[0], d[2]]), [[topo.r, reason('IP_RPFILTER')]]);
  // Before 5.17 nothing says it was the reverse-path check: the verdict does not guess.
  const why = kernelAtLeast(5, 17) ? 'reverse path filter: replies to 10.0.1.2 would leave by rb, but it came in on ra' : NO_REASON_GIVEN;
  assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.r} at \\S+: ${why}$`));
});

stopCase('a next hop that does not exist: ARP fails and the address is named', async (lab, topo) => {
  lab.ip(topo.a, 'route', 'add', '10.0.2.0/24', 'via', '10.0.1.9');
  // ARP gives up after about three seconds: wait longer than that.
  const run = await probe(topo, '--timeout', '5', topo.v4);
  const route = kind(run, 'route').find((r) => r.netns_name === topo.a)!;
  assert.deepEqual([route.purpose, route.gateway, route.oif], ['output', '10.0.1.9', 'eth0']);
  assert.deepEqual(drops(run).filter((d) => d[3] === 'request'), [[topo.a, 'neigh_invalidate', reason('NEIGH_FAILED'), 'request']]);
  assert.deepEqual(hops(run.events).filter((h) => h[2] === 'request'), [], 'the request never left');
  assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.a} at neigh_invalidate: next hop 10.0.1.9 did not answer ARP on eth0${kernelAtLeast(5, 17) ? ' \\(NEIGH_FAILED\\)' : ''}`));
});

stopCase('a router forwards to a host that does not exist: the probe waits for ARP there, and the verdict says so before ARP gives up', async (_lab, topo) => {
  const run = await probe(topo, '10.0.2.9');
  assert.deepEqual(hops(run.events), [
    [topo.a, 'eth0', 'request', 'net_dev_queue'],
    [topo.r, 'ra', 'request', 'netif_receive_skb'],
  ]);
  // The kernel queued it at the neighbour: the probe itself, on the device that asks.
  const queued = kind(run, 'neighbour').map((n) => [n.netns_name, n.ifname, n.next_hop, n.neighbour_state, n.dst, n.icmp_seq]);
  assert.deepEqual(queued.filter((n) => n[0] === topo.r), [[topo.r, 'rb', '10.0.2.9', 'INCOMPLETE', '10.0.2.9', 1]]);
  // The sender may first have waited, briefly, for the router's own address (5.10 shows it): that one was answered.
  assert.deepEqual(queued.filter((n) => n[0] !== topo.r).map((n) => [n[0], n[2]]).slice(0, 1), queued.length > 1 ? [[topo.a, '10.0.1.1']] : []);
  assert.deepEqual(drops(run), [], 'ARP has not given up within the probe\'s second');
  assert.equal(
    run.summary?.verdict,
    `no reply: next hop 10.0.2.9 on rb in namespace ${topo.r} had not answered ARP when the trace ended: the request was waiting for it there (neighbour INCOMPLETE when it was queued); last seen as request on ra in namespace ${topo.r} (netif_receive_skb)`,
  );
});

stopCase('--ttl 1: time exceeded at the router, the error travels back', async (_lab, topo) => {
  const run = await probe(topo, '--ttl', '1', topo.v4);
  assert.deepEqual(run.events.filter((e) => e.dir === 'request').map((e) => [e.netns_name, e.ifname, e.ttl]), [
    [topo.a, 'eth0', 1],
    [topo.r, 'ra', 1],
  ]);
  assert.deepEqual(drops(run), [[topo.r, 'ip_forward', reason('IP_INHDR'), 'request']]);
  assert.deepEqual(errors(run), [
    [topo.r, 'ra', 'net_dev_queue', 11, 0, 'request', '10.0.1.1', '10.0.1.2'],
    [topo.a, 'eth0', 'netif_receive_skb', 11, 0, 'request', '10.0.1.1', '10.0.1.2'],
  ]);
  assert.equal(run.summary?.verdict, `dropped in namespace ${topo.r} at ip_forward: time exceeded (TTL exceeded in transit); ICMP error sent back by 10.0.1.1`);
});

stopCase('IPv6 --ttl 1: hop limit exceeded at the router', async (_lab, topo) => {
  const run = await probe(topo, '--ttl', '1', topo.v6);
  assert.deepEqual(errors(run), [
    [topo.r, 'ra', 'net_dev_queue', 3, 0, 'request', 'fd00:1::1', 'fd00:1::2'],
    [topo.a, 'eth0', 'netif_receive_skb', 3, 0, 'request', 'fd00:1::1', 'fd00:1::2'],
  ]);
  assert.deepEqual(drops(run).map((d) => [d[0], d[3]]), [[topo.r, 'request']]);
  assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.r} at \\S+: time exceeded \\(hop limit exceeded in transit\\); ICMPv6 error sent back by fd00:1::1$`));
});

stopCase('IPv6 unreachable route: the lookup names it', async (lab, topo) => {
  lab.ip(topo.r, '-6', 'route', 'add', 'unreachable', 'fd00:2::2/128');
  const run = await probe(topo, topo.v6);
  assert.equal(kind(run, 'route').find((r) => r.netns_name === topo.r && r.purpose === 'input')?.error, 'unreachable');
  assert.equal(errors(run)[0][3], 1, 'ICMPv6 destination unreachable');
  assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.r} at \\S+: unreachable route to fd00:2::2 \\(table main\\)`));
});

stopCase('the sender’s interface is down: not sent, no route, and the down interface is named', async (lab, topo) => {
  lab.ip(topo.a, 'link', 'set', 'eth0', 'down');
  const run = await probe(topo, topo.v4);
  assert.deepEqual(run.events, [], 'nothing left');
  const route = kind(run, 'route')[0];
  assert.deepEqual([route.netns_name, route.purpose, route.error], [topo.a, 'output', 'no route']);
  assert.equal(run.summary?.verdict, `not sent: no route to 10.0.2.2 (table main; down there: eth0) in namespace ${topo.a}`);
});

stopCase('a packet larger than the next link’s MTU, with DF: fragmentation needed, MTU named', async (lab, topo) => {
  lab.ip(topo.r, 'link', 'set', 'rb', 'mtu', '1280');
  lab.ip(topo.b, 'link', 'set', 'eth0', 'mtu', '1280');
  const run = await probe(topo, '--size', '1400', topo.v4);
  assert.equal(run.events[0].len, 1428, 'IP length of a 1400-byte payload');
  assert.deepEqual(drops(run), [[topo.r, 'ip_forward', reason('PKT_TOO_BIG'), 'request']]);
  const err = run.events.find((e) => e.dir === 'error')!;
  assert.deepEqual([err.icmp_type, err.icmp_code, err.mtu], [3, 4, 1280]);
  assert.equal(run.summary?.verdict, `dropped in namespace ${topo.r} at ip_forward: destination unreachable (fragmentation needed, MTU 1280); ICMP error sent back by 10.0.1.1`);
});

test('delivered and answered, with the route of every hop', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    const run = await runCli(['--json', '--from', topo.a, topo.v4]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.summary?.verdict, 'delivered and answered');
    // Each routing decision once, in order: the sender's, the router's, local delivery, and back.
    assert.deepEqual(kind(run, 'route').map((r) => [r.netns_name, r.purpose, r.dst, r.table, r.oif, r.gateway, r.error]), [
      [topo.a, 'output', '10.0.2.2', 'main', 'eth0', '10.0.1.1', null],
      [topo.r, 'input', '10.0.2.2', 'main', 'rb', null, null],
      [topo.b, 'input', '10.0.2.2', 'main', 'eth0', null, null],
      [topo.b, 'output', '10.0.1.2', 'main', 'eth0', '10.0.2.1', null],
      [topo.r, 'input', '10.0.1.2', 'main', 'ra', null, null],
      [topo.a, 'input', '10.0.1.2', 'main', 'eth0', null, null],
    ]);
    assert.deepEqual(kind(run, 'drop'), [], 'nothing dropped');
  }));
