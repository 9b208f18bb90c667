/**
 * Overlays: the probe followed into a VXLAN tunnel, across the underlay and
 * out again, both ways; what kills it in the underlay said in words. Two
 * namespaces act as nodes (overlayLab); tcpdump on the underlay is the
 * independent witness of the outer packets.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { NO_REASON_GIVEN, type HopEvent } from '../../src/events';
import { capture, finished, hops, overlayJourney, overlayLab, runCli, startCli, withLab } from './helpers';

/** The hop events as JSON gave them. */
const ev = (run: { events: unknown[] }) => run.events as Record<string, any>[];

/** The tunnel as each underlay hop reports it: [interface, type, id, outer src, outer dst, outer dport]. */
const tunnelOf = (events: Record<string, any>[]) =>
  events.filter((e) => e.tunnel).map((e) => [e.ifname, e.dir, e.tunnel.type, e.tunnel.id, e.tunnel.src, e.tunnel.dst, e.tunnel.dport]);

for (const underlay6 of [false, true]) {
  const family = underlay6 ? 'IPv6' : 'IPv4';
  test(`VXLAN over an ${family} underlay: the journey goes into the tunnel, across the underlay with the outer headers, and out, both ways`, () =>
    withLab(async (lab) => {
      const topo = overlayLab(lab, { underlay6 });
      const [e1, e2] = topo.endpoints;
      const dump = await capture(topo.n2, 'u2', 'udp port 4789', { whole: true });
      try {
        const run = await runCli(['--json', '--from', topo.c1, '10.99.0.2']);
        assert.equal(run.status, 0, run.stderr);
        assert.deepEqual(hops(run.events), overlayJourney(topo));
        assert.deepEqual(tunnelOf(ev(run)), [
          ['u1', 'request', 'vxlan', 42, e1, e2, 4789],
          ['u2', 'request', 'vxlan', 42, e1, e2, 4789],
          ['u2', 'reply', 'vxlan', 42, e2, e1, 4789],
          ['u1', 'reply', 'vxlan', 42, e2, e1, 4789],
        ]);
        // Inside, the probe itself: its addresses and echo on every hop, underlay included.
        assert.ok(ev(run).every((e) => [e.src, e.dst].sort().join() === '10.99.0.1,10.99.0.2' && e.proto === 1));
        assert.equal(run.summary!.verdict, 'delivered and answered');
        // The witness: the outer packets on the far node's underlay, VNI 42 around the probe's echo.
        const seen = await dump.stop();
        const id = ev(run)[0].icmp_id;
        const echo = (from: string, to: string, what: string) =>
          seen.filter((l) => /VXLAN, flags \[I\] \(0x08\), vni 42/.test(l) && l.includes(`${from} > ${to}: ICMP echo ${what}, id ${id}`));
        assert.equal(echo('10.99.0.1', '10.99.0.2', 'request').length, 1, seen.join('\n'));
        assert.equal(echo('10.99.0.2', '10.99.0.1', 'reply').length, 1, seen.join('\n'));
        const outerPorts = ev(run).filter((e) => e.tunnel && e.dir === 'request').map((e) => e.tunnel.sport);
        assert.ok(outerPorts[0] > 0 && seen.some((l) => l.includes(`.${outerPorts[0]} > `)), `the outer source port ${outerPorts[0]} is the one on the wire`);
      } finally {
        await dump.stop().catch(() => {});
      }
    }));
}

test('VXLAN through a router in the underlay: its hops carry the outer packet, and an IPv6 probe rides an IPv4 underlay', () =>
  withLab(async (lab) => {
    const topo = overlayLab(lab, { router: true });
    const [e1, e2] = topo.endpoints;
    const run = await runCli(['--json', '--from', topo.c1, 'fd99::2']);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(hops(run.events), overlayJourney(topo));
    const routerHops = ev(run).filter((e) => e.netns_name === topo.r);
    assert.deepEqual(routerHops.map((e) => [e.ifname, e.tunnel.type, e.tunnel.src, e.tunnel.dst, e.family, e.tunnel.family]), [
      ['r1', 'vxlan', e1, e2, 6, 4],
      ['r2', 'vxlan', e1, e2, 6, 4],
      ['r2', 'vxlan', e2, e1, 6, 4],
      ['r1', 'vxlan', e2, e1, 6, 4],
    ]);
    // The router forwards the outer packet: its TTL drops, the probe's inside does not.
    const [inR, outR] = routerHops;
    assert.equal(outR.tunnel.ttl, inR.tunnel.ttl - 1);
    assert.equal(outR.ttl, inR.ttl);
    assert.ok(ev(run).every((e) => !e.altered), 'nothing called altered');
    // The router's route lookup for the outer packet belongs to the journey.
    const routes = run.lines.filter((l) => l.kind === 'route' && l.netns_name === topo.r);
    assert.ok(routes.some((l) => l.dst === e2 && l.oif === 'r2'), JSON.stringify(routes));
  }));

test('a firewall dropping the tunnel on the far node is named: rule, table, namespace, interface, for each probe', () =>
  withLab(async (lab) => {
    const topo = overlayLab(lab);
    lab.exec(topo.n2, 'iptables', '-A', 'INPUT', '-p', 'udp', '--dport', '4789', '-j', 'DROP');
    const run = await runCli(['--json', '--from', topo.c1, '10.99.0.2', '-c', '2', '--timeout', '1']);
    assert.equal(run.status, 1);
    // Each probe: last seen on the far underlay.
    assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === 1)), overlayJourney(topo).slice(0, 5));
    assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === 2)), overlayJourney(topo).slice(0, 5));
    // One DROP per probe, each its own (kernels before 6.4 place the outer packet's decisions by order).
    const stops = run.lines.filter((l) => l.kind === 'netfilter' && l.verdict === 'DROP');
    assert.deepEqual(stops.map((s) => [s.icmp_seq, s.netns_name, s.table, s.chain, s.rule]), [1, 2].map((seq) => [seq, topo.n2, 'filter', 'INPUT', 'udp dport 4789 counter drop']));
    for (const stop of stops) {
      const arrived = ev(run).find((e) => e.icmp_seq === stop.icmp_seq && e.ifname === 'u2');
      assert.ok(stop.time_ns > arrived!.time_ns, 'after the probe reached u2');
      assert.deepEqual([stop.tunnel.type, stop.tunnel.id, stop.tunnel.src, stop.tunnel.dst], ['vxlan', 42, ...topo.endpoints], 'the verdict was on the outer packet');
    }
    const why = `dropped in namespace ${topo.n2} by ip filter INPUT: rule \`udp dport 4789 counter drop\` (it matched the vxlan 42: ${topo.endpoints.join(' -> ')} packet carrying the probe, on u2)`;
    assert.equal(run.summary!.verdict, `none of 2 probes answered; probes 1, 2: ${why}`);
  }));

test('an underlay MTU too small for the encapsulated probe: both MTUs named, and the ICMP error the tunnel sent', () =>
  withLab(async (lab) => {
    const topo = overlayLab(lab);
    lab.ip(topo.n1, 'link', 'set', 'u1', 'mtu', '1400');
    lab.ip(topo.n2, 'link', 'set', 'u2', 'mtu', '1400');
    // IPv6: no path MTU the sender learned from another test's probe.
    const run = await runCli(['--from', topo.c1, '--size', '1400', 'fd99::2', '--timeout', '1']);
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, new RegExp(`Verdict: too big for the vxlan tunnel vx0 in namespace ${topo.n1}: its own MTU 1450 let the 1448-byte probe in, but it carries at most 1350 bytes over u1 \\(MTU 1400, 50 bytes of it for the tunnel's headers\\); IPv6 is never fragmented on the way, so vx0 sent back packet too big \\(MTU 1350\\)`), run.stdout);
  }));

test('a VXLAN device with no remote and no forwarding entry for the destination: the drop says so', () =>
  withLab(async (lab) => {
    const topo = overlayLab(lab);
    lab.ip(topo.n1, 'link', 'del', 'vx0');
    // No learning either: the far node's own traffic would teach it where the peer is.
    lab.ip(topo.n1, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', topo.endpoints[0], 'dstport', '4789', 'dev', 'u1', 'nolearning');
    lab.ip(topo.n1, 'link', 'set', 'vx0', 'master', 'br0', 'up');
    const run = await runCli(['--json', '--from', topo.c1, '10.99.0.2', '--timeout', '1']);
    assert.equal(run.status, 1);
    const drop = run.lines.find((l) => l.kind === 'drop');
    assert.ok(drop, run.stdout);
    // 6.9+ names the reason; older kernels free without one, and the verdict says no more than that.
    const why = drop.reason === 'NOT_SPECIFIED' || drop.reason === NO_REASON_GIVEN
      ? 'vxlan device vx0 could not send it on, and this kernel gives no reason \\(no remote or forwarding entry for the destination, or no route to the remote endpoint\\)'
      : `vxlan device vx0 has no remote and no forwarding entry for the destination \\(${drop.reason}\\)`;
    assert.match(run.summary!.verdict, new RegExp(`^dropped in namespace ${topo.n1} at vxlan_xmit[a-z_]*: ${why}$`), run.summary!.verdict);
  }));

/** Makes node 1's VXLAN device anew, towards another remote endpoint; no learning (the far node's traffic would teach it the old one). */
function remoteOf(lab: Parameters<Parameters<typeof withLab>[0]>[0], topo: ReturnType<typeof overlayLab>, remote: string, ...more: string[]) {
  lab.ip(topo.n1, 'link', 'del', 'vx0');
  lab.ip(topo.n1, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', topo.endpoints[0], 'remote', remote, 'dstport', '4789', 'nolearning', ...more);
  lab.ip(topo.n1, 'link', 'set', 'vx0', 'master', 'br0', 'up');
}

for (const underlay6 of [false, true]) {
  test(`no route to the tunnel's remote endpoint (${underlay6 ? 'IPv6' : 'IPv4'} underlay): the tunnel's own lookup is on the journey, and the verdict names it`, () =>
    withLab(async (lab) => {
      const topo = overlayLab(lab, { underlay6 });
      const remote = underlay6 ? 'fd88::2' : '192.168.88.2';
      // Without `dev`: with one, the kernel takes a destination it has no route to as on that link.
      remoteOf(lab, topo, remote);
      // The witness: the kernel's own answer for that address in node 1.
      assert.throws(() => lab.ip(topo.n1, 'route', 'get', remote), /unreachable/i);
      const run = await runCli(['--json', '--from', topo.c1, '10.99.0.2', '--timeout', '1']);
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.deepEqual(hops(run.events), overlayJourney(topo).slice(0, 3), 'last seen entering the tunnel');
      const lookups = run.lines.filter((l) => l.kind === 'route' && l.dst === remote);
      assert.ok(lookups.length > 0 && lookups.every((l) => l.netns_name === topo.n1 && l.error !== null && l.oif === null && l.purpose === 'output' && l.dport === 4789), JSON.stringify(lookups));
      // IPv6 answers a missing route with its null entry: told apart from an unreachable route.
      assert.match(run.summary!.verdict, new RegExp(`^dropped in namespace ${topo.n1} at vxlan_xmit[a-z_]*: vxlan device vx0 has no route to its remote endpoint ${remote} \\(table main\\)$`), run.summary!.verdict);
    }));
}

for (const underlay6 of [false, true]) {
  const resolution = underlay6 ? 'neighbour discovery' : 'ARP';
  test(`the tunnel's remote endpoint does not answer ${resolution}: the outer packet waits for it, the verdict says so, and tcpdump sees the unanswered requests`, () =>
    withLab(async (lab) => {
      const topo = overlayLab(lab, { underlay6 });
      const remote = underlay6 ? 'fd77::9' : '192.168.77.9'; // on the underlay's subnet, and nobody has it
      remoteOf(lab, topo, remote, 'dev', 'u1');
      const dump = await capture(topo.n1, 'u1', underlay6 ? 'icmp6 and ip6[40] == 135' : 'arp');
      try {
        const run = await runCli(['--json', '--from', topo.c1, '10.99.0.2', '--timeout', '1']);
        assert.equal(run.status, 1, run.stdout + run.stderr);
        assert.deepEqual(hops(run.events), overlayJourney(topo).slice(0, 3), 'last seen entering the tunnel');
        // The outer packet, queued at the neighbour: the probe inside, the tunnel around it.
        const waiting = run.lines.filter((l) => l.kind === 'neighbour');
        assert.deepEqual(waiting.map((w) => [w.netns_name, w.ifname, w.next_hop, w.neighbour_state, w.src, w.dst, w.tunnel?.type, w.tunnel?.dst]), [[topo.n1, 'u1', remote, 'INCOMPLETE', '10.99.0.1', '10.99.0.2', 'vxlan', remote]]);
        // Three unanswered requests take seconds: a slow run may see the kernel give up and drop the packet.
        const gaveUp = run.lines.find((l) => l.kind === 'drop');
        if (gaveUp) {
          assert.match(gaveUp.location, /^neigh_invalidate\b/, JSON.stringify(gaveUp));
          const why = gaveUp.reason === NO_REASON_GIVEN || gaveUp.reason === 'NOT_SPECIFIED' ? '' : ` \\(${gaveUp.reason}\\)`;
          assert.match(run.summary!.verdict, new RegExp(`^dropped in namespace ${topo.n1} at neigh_invalidate: next hop ${remote.replace(/\./g, '\\.')} did not answer ${resolution} on u1 \\(for the vxlan 42: ${topo.endpoints[0].replace(/\./g, '\\.')} -> ${remote.replace(/\./g, '\\.')} packet carrying the probe\\)${why}$`), run.summary!.verdict);
        } else {
          assert.equal(
            run.summary!.verdict,
            `no reply: next hop ${remote} on u1 in namespace ${topo.n1} had not answered ${resolution} when the trace ended: the vxlan 42: ${topo.endpoints[0]} -> ${remote} packet carrying the request was waiting for it there (neighbour INCOMPLETE when it was queued); last seen as request on vx0 in namespace ${topo.n1} (net_dev_queue)`,
          );
        }
        const seen = await dump.stop();
        const asked = underlay6 ? `who has ${remote}` : `Request who-has ${remote} tell ${topo.endpoints[0]}`;
        assert.ok(seen.some((l) => l.includes(asked)), seen.join('\n'));
        // The nodes may well resolve each other meanwhile: only an answer for the remote would count.
        const answered = underlay6 ? `tgt is ${remote}` : `Reply ${remote} is-at`;
        assert.ok(!seen.some((l) => l.includes(answered)), `nobody answered for ${remote}: ${seen.join('\n')}`);
      } finally {
        await dump.stop().catch(() => {});
      }
    }));
}

test('two runs at once through the same tunnel, beside a competing ping flood in it: each shows only its own probe', () =>
  withLab(async (lab) => {
    const topo = overlayLab(lab);
    // Another flow in the same tunnel between the same two containers, all the while.
    const flood = spawn('ip', ['netns', 'exec', topo.c1, 'ping', '-q', '-i', '0.01', '-s', '56', '10.99.0.2'], { stdio: 'ignore' });
    try {
      const runs = await Promise.all([1, 2].map(() => runCli(['--json', '--from', topo.c1, '10.99.0.2', '-c', '2'])));
      const ids = new Set<number>();
      for (const [i, run] of runs.entries()) {
        assert.equal(run.status, 0, run.stderr);
        const mine = new Set(ev(run).map((e) => e.icmp_id));
        assert.equal(mine.size, 1, `run ${i}: one ping's packets only`);
        ids.add([...mine][0]);
        for (const seq of [1, 2]) assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === seq)), overlayJourney(topo), `run ${i} probe ${seq}: its journey, once`);
        assert.equal(run.summary!.verdict, 'delivered and answered (all 2 probes)');
      }
      assert.equal(ids.size, 2, 'each run its own ping');
    } finally {
      flood.kill('SIGKILL');
    }
  }));

test('passive: the inner flow is followed across the underlay, and a filter on the outer packet selects the tunnel', () =>
  withLab(async (lab) => {
    const topo = overlayLab(lab);
    // The inner flow's filter sees the probe everywhere; the outer packet's, from where it is
    // encapsulated on (and, by its sk_buff, on after decapsulation).
    const whole = overlayJourney(topo).slice(0, 8);
    for (const [filter, expected] of [['icmp and host 10.99.0.2', whole], [`udp and port 4789 and host ${topo.endpoints[1]}`, whole.slice(3)]] as const) {
      const child = startCli(['--json', '--count', '1', '--filter', filter]);
      const done = finished(child);
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      execFileSync('ip', ['netns', 'exec', topo.c1, 'ping', '-c', '1', '-W', '1', '10.99.0.2'], { stdio: 'ignore' });
      const run = await done;
      assert.equal(run.status, 0, run.stderr);
      const mine = ev(run).filter((e) => e.icmp_type === 8);
      assert.deepEqual(hops(mine as HopEvent[]), expected, filter);
      assert.deepEqual(mine.filter((e) => e.tunnel).map((e) => e.ifname), ['u1', 'u2'], filter);
      // Grouped by the inner flow: the echo's sightings, underlay ones too, make one journey.
      const echoes = ev(run).filter((e) => e.proto === 1 && [e.src, e.dst].includes('10.99.0.2'));
      assert.equal(new Set(echoes.map((e) => e.journey)).size, 1, `one journey for the echo: ${filter}`);
      if (filter.startsWith('icmp')) assert.equal(echoes.length, ev(run).length, 'nothing else matched the inner filter');
    }
  }));

test('a macvlan port in a container: its transmit and its parent\'s, both ways; its receive is its parent\'s', () =>
  withLab(async (lab) => {
    const n1 = lab.netns('n1');
    const n2 = lab.netns('n2');
    const c1 = lab.netns('c1');
    lab.veth(n1, 'u1', n2, 'u2');
    lab.addr(n2, 'u2', '192.168.77.2/24');
    lab.ip(n1, 'link', 'add', 'link', 'u1', 'name', 'm0', 'type', 'macvlan', 'mode', 'bridge');
    lab.ip(n1, 'link', 'set', 'm0', 'netns', c1);
    lab.ip(c1, 'link', 'set', 'm0', 'up');
    lab.addr(c1, 'm0', '192.168.77.11/24');
    const run = await runCli(['--json', '--from', c1, '192.168.77.2']);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(hops(run.events), [
      [c1, 'm0', 'request', 'net_dev_queue'],
      [n1, 'u1', 'request', 'net_dev_queue'],
      [n2, 'u2', 'request', 'netif_receive_skb'],
      [n2, 'u2', 'reply', 'net_dev_queue'],
      // The kernel hands a frame for a macvlan port over in the same receive pass as its
      // parent's (the rx handler says "another round"): netif_receive_skb fires for u1 only.
      [n1, 'u1', 'reply', 'netif_receive_skb'],
    ]);
    assert.equal(run.summary!.verdict, 'delivered and answered');
  }));
