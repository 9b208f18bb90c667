/** Passive tracing: existing traffic, matched in the kernel, grouped into journeys. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { bridgeLab, eventually, finished, routerLab, startCli, tcpServer, withLab } from './helpers';
import { passiveCommand } from '../../src/commands/passive';

test('only traffic matching the filter is traced; it comes as journeys; --count ends the run', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    const stop = await tcpServer(topo.b, 8080);
    try {
      const child = startCli(['--json', '--count', '1', '--filter', `tcp and port 8080 and host ${topo.v4}`]);
      const done = finished(child);
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve())); // the start line: attached
      // Unmatched: pings both ways, TCP to another port, UDP to the same port number.
      execFileSync('ip', ['netns', 'exec', topo.a, 'ping', '-c', '2', '-i', '0.2', '-q', topo.v4], { stdio: 'ignore' });
      const closed = `require('net').connect({ host: '${topo.v4}', port: 8081 }).on('error', () => {})`;
      const udp = `const s = require('dgram').createSocket('udp4'); s.send('x', 8080, '${topo.v4}', () => s.close())`;
      for (const code of [closed, udp]) execFileSync('ip', ['netns', 'exec', topo.a, process.execPath, '-e', code], { stdio: 'ignore' });
      // Matched: one TCP connection to 8080.
      const hello = `require('net').connect({ host: '${topo.v4}', port: 8080 }, function () { this.end(); })`;
      spawn('ip', ['netns', 'exec', topo.a, process.execPath, '-e', hello], { stdio: 'ignore' });
      const run = await done;
      assert.equal(run.status, 0, run.stderr);
      const packets = run.lines.filter((l) => l.kind === 'hop' || l.kind === 'drop');
      assert.ok(packets.length >= 8, `the connection was traced (${packets.length} sightings)`);
      for (const p of packets) {
        assert.equal(p.proto, 6, 'TCP only');
        assert.ok(p.sport === 8080 || p.dport === 8080, 'port 8080 only');
        assert.equal(p.journey, 1, 'one flow, one journey');
      }
      // Its SYN crossed a, the router and b in order; the SYN-ACK came back as the reply.
      const syn = packets.filter((p) => p.kind === 'hop' && p.tcp_flags === 'S').map((p) => [p.netns_name, p.ifname, p.dir]);
      assert.deepEqual(syn, [
        [topo.a, 'eth0', 'request'],
        [topo.r, 'ra', 'request'],
        [topo.r, 'rb', 'request'],
        [topo.b, 'eth0', 'request'],
      ]);
      assert.ok(packets.some((p) => p.tcp_flags === 'S.' && p.dir === 'reply' && p.netns_name === topo.a));
      assert.match(run.summary?.journeys[0].flow, new RegExp(`^tcp 10\\.0\\.1\\.2:\\d+ -> ${topo.v4.replace(/\./g, '\\.')}:8080$`));
      assert.equal(run.summary?.journeys[0].complete, true);
    } finally {
      stop();
    }
  }));

test('a malformed filter is refused with its column before anything is attached', async () => {
  const run = await finished(startCli(['--filter', 'tcp and port 99999']));
  assert.equal(run.status, 2);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^tracepkt: bad filter at column 14: expected a port number \(0-65535\), not "99999" \(in "tcp and port 99999"\)\n$/);
});

test('events the kernel could not deliver are counted, and the journeys they hit are marked incomplete', () =>
  withLab(async (lab) => {
    const { host, v4 } = bridgeLab(lab);
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: () => {} };
    // A one-page ring (about 25 records) cannot hold a ping flood's sightings: the kernel must lose some.
    const run = passiveCommand({ filter: `icmp and host ${v4}`, count: 1, json: true, ringBytes: 4096, idleMs: 3000 }, io);
    await eventually(() => lines.length > 0); // the start line: attached
    await new Promise((resolve) => spawn('ip', ['netns', 'exec', host, 'ping', '-f', '-q', '-c', '3000', v4], { stdio: 'ignore' }).on('exit', resolve));
    assert.equal(await run, 0);
    const summary = JSON.parse(lines[lines.length - 1]);
    assert.equal(summary.kind, 'summary');
    const sightings = lines.map((l) => JSON.parse(l)).filter((e) => e.kind === 'hop').length;
    // 3000 round trips, 6 hops each (bridgeJourney), all either delivered or counted as lost
    // (the count also covers records passive output leaves out, such as frees after delivery).
    assert.ok(summary.lost_events > 0 && sightings > 0, `delivered ${sightings}, lost ${summary.lost_events}`);
    assert.ok(sightings + summary.lost_events >= 3000 * 6, `delivered ${sightings} + lost ${summary.lost_events}`);
    assert.equal(summary.journeys.length, 1, JSON.stringify(summary.journeys));
    assert.equal(summary.journeys[0].incomplete, true);
  }));

test('records carry the kernel\'s count of lost events, and nothing is inferred across a gap: a flood through a router, a tiny ring, no TTL called altered', () =>
  withLab(async (lab) => {
    const { a, v4 } = routerLab(lab);
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: () => {} };
    // Sighting pairs whose router hops were lost look like a link that lowered the TTL by one.
    const run = passiveCommand({ filter: `icmp and host ${v4}`, count: 1, json: true, ringBytes: 4096, idleMs: 3000 }, io);
    await eventually(() => lines.length > 0);
    await new Promise((resolve) => spawn('ip', ['netns', 'exec', a, 'ping', '-f', '-q', '-c', '3000', v4], { stdio: 'ignore' }).on('exit', resolve));
    assert.equal(await run, 0);
    const events = lines.map((l) => JSON.parse(l));
    const summary = events[events.length - 1];
    const hops = events.filter((e) => e.kind === 'hop');
    assert.ok(summary.lost_events > 0, 'the kernel lost events');
    const counted = hops.map((e) => e.lost_so_far as number);
    assert.ok(Math.max(...counted) > 0 && Math.max(...counted) <= summary.lost_events, `records carry the kernel's count: up to ${Math.max(...counted)} of ${summary.lost_events}`);
    // Nothing mangles these packets: every TTL change is forwarding.
    assert.deepEqual(hops.filter((e) => e.altered).map((e) => `${e.netns_name} ${e.ifname} ${e.hook} ${e.altered}`), []);
  }));
