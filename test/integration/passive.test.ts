/** Passive tracing: existing traffic, matched in the kernel, grouped into journeys. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { bridgeLab, capture, eventually, finished, netnsInode, ourKernelObjects, routerLab, startCli, tcpServer, withLab } from './helpers';
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

test('tcpdump\'s language: seven runs at once, each with an expression the old filters lacked, trace what it selects and nothing else; tcpdump agrees packet for packet', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    const stop = await tcpServer(topo.b, 8080);
    const filters = {
      syn: 'tcp[tcpflags] & tcp-syn != 0',
      echo: 'icmp[icmptype] == icmp-echo',
      range: 'udp portrange 9990-9999',
      big: 'icmp and greater 1000',
      v6: 'ip6 and tcp dst port 8080',
      proto: 'proto 17 and not portrange 9990-9999',
      deep: 'udp[128:4] == 0x70726f62', // "prob", past the 128 bytes read of every packet first
    } as const;
    const witnessed = ['syn', 'echo', 'big'] as const;
    try {
      const runs = Object.fromEntries(
        await Promise.all(
          Object.entries(filters).map(async ([name, expr]) => {
            const child = startCli(['--json', '--filter', expr]);
            const done = finished(child);
            await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve())); // attached
            return [name, { child, done }] as const;
          }),
        ),
      );
      const dumps = await Promise.all(witnessed.map((name) => capture(topo.b, 'eth0', filters[name])));
      // Everything, once: TCP over IPv4 and IPv6 with data, small and large pings, UDP into and beside
      // the range (one Python process: quicker to start than Node under the kernel matrix's emulation).
      const traffic = [
        'import socket, time',
        ...[topo.v4, topo.v6].map((host) => `s = socket.create_connection(('${host}', 8080)); s.sendall(b'hello'); s.shutdown(socket.SHUT_WR); s.recv(100); s.close()`),
        ...[9991, 9989].map((port) => `u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'probe', ('${topo.v4}', ${port})); time.sleep(0.3); u.close()`),
        `u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'x' * 120 + b'probe', ('${topo.v4}', 9985)); u.close()`,
      ].join('\n');
      execFileSync('ip', ['netns', 'exec', topo.a, 'python3', '-c', traffic], { stdio: 'ignore', timeout: 120_000 });
      execFileSync('ip', ['netns', 'exec', topo.a, 'ping', '-c', '2', '-i', '0.2', '-q', topo.v4], { stdio: 'ignore' });
      execFileSync('ip', ['netns', 'exec', topo.a, 'ping', '-c', '1', '-s', '1200', '-q', topo.v4], { stdio: 'ignore' });
      await new Promise((resolve) => setTimeout(resolve, 1500)); // the last journeys close (1 s idle)
      const seenByTcpdump = await Promise.all(dumps.map((d) => d.stop()));
      const out: Record<string, Record<string, any>[]> = {};
      for (const [name, { child, done }] of Object.entries(runs)) {
        child.kill('SIGINT');
        const run = await done;
        assert.equal(run.status, 130, `${name}: ${run.stderr}`);
        out[name] = run.lines.filter((l) => l.kind === 'hop' || l.kind === 'drop');
        assert.ok(out[name].length > 0, `${name} traced something`);
        assert.equal(run.summary?.lost_events, 0, `${name}: nothing lost`);
      }
      // SYN and SYN-ACK, nothing else of the connections; IPv4 only, as in tcpdump: libpcap's tcp[...]
      // reads IPv4's TCP header (man pcap-filter).
      assert.deepEqual([...new Set(out.syn.map((p) => `${p.family} ${p.tcp_flags}`))].sort(), ['4 S', '4 S.']);
      // Echo requests only, small and large; never a reply.
      assert.ok(out.echo.every((p) => p.proto === 1 && p.icmp_type === 8), 'requests only');
      assert.deepEqual([...new Set(out.echo.map((p) => p.len))].sort((x, y) => x - y), [84, 1228]);
      // The datagram into the range, and the port unreachable that quotes it (an error is selected by what it quotes).
      // (an error's sighting carries the quoted packet's protocol and ports, its dir is "error").
      assert.ok(out.range.some((p) => p.dir === 'request' && p.proto === 17 && p.dport === 9991));
      assert.ok(out.range.some((p) => p.dir === 'error' && p.icmp_type === 3 && p.quotes === 'request' && p.dport === 9991));
      assert.ok(out.range.every((p) => p.proto === 17 && p.dport === 9991), 'nothing beside the range');
      // Larger than 1000 bytes: the large ping both ways, none of the small ones.
      assert.ok(out.big.every((p) => p.proto === 1 && p.len === 1228));
      assert.deepEqual([...new Set(out.big.map((p) => p.icmp_type))].sort(), [0, 8]);
      // IPv6 TCP to 8080: its requests (SYN, ACK, data, FIN), no IPv4, no replies from 8080.
      assert.ok(out.v6.every((p) => p.family === 6 && p.proto === 6 && p.dport === 8080));
      // UDP beside the range: 9989 only.
      assert.ok(out.proto.some((p) => p.dport === 9989) && out.proto.every((p) => p.proto === 17 && (p.dport === 9989 || p.dport === 9985)));
      // Bytes past the first read: the datagram whose payload holds "prob" 120 bytes in, on every hop,
      // and the port unreachable that quotes it (the quote holds those bytes too), all the way back.
      const deep = (dir: string) => out.deep.filter((p) => p.kind === 'hop' && p.dir === dir).map((p) => `${p.dport} ${p.ifname}`);
      assert.deepEqual(deep('request'), ['9985 eth0', '9985 ra', '9985 rb', '9985 eth0']);
      assert.deepEqual(deep('error'), ['9985 eth0', '9985 rb', '9985 ra', '9985 eth0']);
      // The witness: what tcpdump saw on b's eth0 with the same expression, we saw there too, packet for packet.
      witnessed.forEach((name, i) => {
        const ours = out[name].filter((p) => p.kind === 'hop' && p.netns === netnsInode(topo.b) && p.ifname === 'eth0').length;
        assert.ok(ours > 0, `${name}: something to compare`);
        assert.equal(ours, seenByTcpdump[i].length, `${name}: sightings on b's eth0 against tcpdump's there:\n${seenByTcpdump[i].join('\n')}`);
      });
    } finally {
      stop();
    }
  }));

test('a filter libpcap refuses, or one tracepkt cannot run, is refused with libpcap\'s message before anything is attached', async () => {
  const before = ourKernelObjects();
  for (const [expr, message] of [
    ['tcp and port 99999', /^tracepkt: bad filter "tcp and port 99999": illegal port number 99999 > 65535\n$/],
    ['tcp and', /^tracepkt: bad filter "tcp and": can't parse filter expression: syntax error\n$/],
    ['vlan 10', /^tracepkt: bad filter "vlan 10": no VLAN support for Raw IP\n$/],
    ['ether host 02:00:00:00:00:01', /^tracepkt: bad filter "ether host 02:00:00:00:00:01": ethernet addresses supported only on ethernet\/FDDI\/token ring\/802\.11\/ATM LANE\/Fibre Channel\n$/],
    ['ip6[400] = 1', /^tracepkt: filter "ip6\[400\] = 1" cannot run in tracepkt's programs: the filter reads up to byte 401 of the packet; tracepkt's programs see its first 256\n$/],
  ] as const) {
    const run = await finished(startCli(['--filter', expr]));
    assert.equal(run.status, 2, expr);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, message);
  }
  assert.deepEqual(ourKernelObjects().progs, before.progs, 'nothing loaded');
});

test('events the kernel could not deliver are counted, and the journeys they hit are marked incomplete', () =>
  withLab(async (lab) => {
    const { host, v4 } = bridgeLab(lab);
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), write: (text: string | Uint8Array) => lines.push(...String(text).slice(0, -1).split('\n')), err: () => {} };
    // A one-page ring (about 25 records) cannot hold a ping flood's sightings: the kernel must lose some.
    const run = passiveCommand({ filter: `icmp and host ${v4}`, count: 1, json: true, ringBytes: 4096, idleMs: 3000 }, io);
    assert.ok(await eventually(() => lines.length > 0), 'the start line: attached');
    await new Promise((resolve) => spawn('ip', ['netns', 'exec', host, 'ping', '-f', '-q', '-c', '3000', v4], { stdio: 'ignore' }).on('exit', resolve));
    assert.equal(await run, 0);
    const summary = JSON.parse(lines[lines.length - 1]);
    assert.equal(summary.kind, 'summary');
    const sightings = lines.map((l) => JSON.parse(l)).filter((e) => e.kind === 'hop').length;
    // 3000 round trips, 6 hops each (bridgeJourney), all either delivered or counted as lost
    // (the count also covers records passive output leaves out, such as frees after delivery).
    assert.ok(summary.lost_events > 0 && sightings > 0, `delivered ${sightings}, lost ${summary.lost_events}`);
    assert.ok(sightings + summary.lost_events >= 3000 * 6, `delivered ${sightings} + lost ${summary.lost_events}`);
    assert.equal(summary.lost_in_user_space, 0, 'lost in the ring, none in tracepkt (its queue holds 32 K events)');
    assert.equal(summary.journeys.length, 1, JSON.stringify(summary.journeys));
    assert.equal(summary.journeys[0].incomplete, true);
  }));

test('a reader that stops reading: tracepkt waits for it, drops what its own queue cannot hold, and says those losses are its own', () =>
  withLab(async (lab) => {
    const { host, v4 } = bridgeLab(lab);
    const child = startCli(['--json', '--filter', `icmp and host ${v4}`]);
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => chunks.push(c));
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const closed = new Promise<number | null>((resolve) => child.on('close', (status) => resolve(status)));
    try {
      assert.ok(await eventually(() => Buffer.concat(chunks).includes('"kind":"start"')), `attached: ${stderr}`);
      // The reader stops: the pipe fills, then what tracepkt holds for it (4 MiB), then tracepkt's queue of events.
      child.stdout!.pause();
      await new Promise((resolve) => spawn('ip', ['netns', 'exec', host, 'ping', '-f', '-q', '-c', '40000', v4], { stdio: 'ignore' }).on('exit', resolve));
      child.stdout!.resume();
      child.kill('SIGINT');
      assert.equal(await closed, 130, stderr);
    } finally {
      child.kill('SIGKILL');
    }
    // Every line whole (nothing torn while the writer waited), the summary last.
    const events = Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const summary = events[events.length - 1];
    assert.equal(summary.kind, 'summary');
    const sightings = events.filter((e) => e.kind === 'hop').length;
    assert.ok(summary.lost_in_user_space > 0, `tracepkt fell behind its reader and says so: ${summary.lost_in_user_space} of ${summary.lost_events}`);
    assert.ok(summary.lost_events >= summary.lost_in_user_space);
    // 40000 round trips, 6 hops each: every one written or counted lost.
    assert.ok(sightings + summary.lost_events >= 40000 * 6, `delivered ${sightings} + lost ${summary.lost_events}`);
    assert.equal(summary.journeys[0].incomplete, true, JSON.stringify(summary));
  }));

test('records carry the kernel\'s count of lost events, and nothing is inferred across a gap: a flood through a router, a tiny ring, no TTL called altered', () =>
  withLab(async (lab) => {
    const { a, v4 } = routerLab(lab);
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), write: (text: string | Uint8Array) => lines.push(...String(text).slice(0, -1).split('\n')), err: () => {} };
    // Sighting pairs whose router hops were lost look like a link that lowered the TTL by one.
    const run = passiveCommand({ filter: `icmp and host ${v4}`, count: 1, json: true, ringBytes: 4096, idleMs: 3000 }, io);
    assert.ok(await eventually(() => lines.length > 0), 'the start line: attached');
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
