/**
 * Never a confident wrong answer: each claim tried with the traffic that
 * would fool it. Other runs at once, a port sweep sharing the probe's
 * ports, probes larger than an sk_buff's linear part, fragments and
 * extension headers, probes lost on the way, too small an MTU on the
 * sender's own link, no rp_filter, ICMP errors and competing flows in
 * passive mode; tcpdump on each interface as the independent witness.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { HopEvent, NetfilterEvent, RouteEvent } from '../../src/events';
import { bridgeJourney, bridgeLab, capture, finished, hops, routerJourney, routerLab, runCli, startCli, tcpServer, udpServer, withLab, type CliRun } from './helpers';

const netfilterRows = (run: CliRun) => run.lines.filter((l): l is NetfilterEvent => l.kind === 'netfilter');

/** Starts a passive trace and waits for its start line (attached). */
async function passive(args: string[]) {
  const child = startCli(['--json', ...args]);
  const done = finished(child);
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return { child, done };
}

/** Runs `code` (a Node script) in a namespace. */
const nodeIn = (ns: string, code: string) => execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: 'ignore' });

test('six runs at once through a router with iptables rules: each shows only its own packets, verdicts and tables, once', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    for (const rule of [
      ['-t', 'raw', '-A', 'PREROUTING', '-p', 'icmp', '-j', 'ACCEPT'],
      ['-t', 'mangle', '-A', 'FORWARD', '-j', 'ACCEPT'],
      ['-A', 'FORWARD', '-p', 'icmp', '-j', 'ACCEPT'],
      ['-A', 'FORWARD', '-p', 'tcp', '--dport', '8080', '-j', 'ACCEPT'],
      ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'rb', '-j', 'ACCEPT'],
    ]) lab.exec(topo.r, 'iptables', ...rule);
    const stop = await tcpServer(topo.b, 8080);
    try {
      // What one run alone concludes: the reference for every concurrent one.
      // Five seconds for each answer: six runs at once on an emulated kernel (the kernel matrix) take more than one.
      const solo = await runCli(['--json', '--timeout', '5', '--from', topo.a, topo.v4]);
      const verdictsOf = (rows: NetfilterEvent[], seq: number) => rows.filter((r) => r.icmp_seq === seq).map((r) => [r.netns_name, r.dir, r.hook, r.table_family, r.table, r.chain, r.verdict, r.decided_by]);
      // raw, mangle and filter each way at least (nat's chain runs for the request where conntrack
      // does, and checkpoints, 6.4+, show the one the reply passes without running it).
      assert.ok(verdictsOf(netfilterRows(solo), 1).length >= 6, 'the router’s tables judged the probe both ways');

      const watcher = await passive(['--filter', `icmp and host ${topo.v4}`]);
      const runs = await Promise.all([
        ...[1, 2, 3].map(() => runCli(['--json', '--timeout', '5', '-c', '2', '--from', topo.a, topo.v4])),
        ...[1, 2].map(() => runCli(['--json', '--timeout', '5', '--tcp', '8080', '--from', topo.a, topo.v4])),
      ]);
      watcher.child.kill('SIGINT');
      const watched = await watcher.done;
      assert.equal(watched.status, 130, watched.stderr);

      const idsSeen = new Set<number>();
      for (const [i, run] of runs.entries()) {
        assert.equal(run.status, 0, run.stderr);
        const rows = netfilterRows(run);
        assert.ok(!rows.some((r) => /^tracepkt_/.test(r.table)), `run ${i}: no tracepkt table judged anything`);
        // Each table's verdict once per packet that passed it: a TCP client may send two segments
        // alike (the ACKs of SYN-ACK and FIN), each seen entering the namespace once.
        const key = (e: { netns: number; dir: string; icmp_seq: number; sport: number; dport: number; tcp_flags: string; tcp_seq: number }) => JSON.stringify([e.netns, e.dir, e.icmp_seq, e.sport, e.dport, e.tcp_flags, e.tcp_seq]);
        for (const r of rows) {
          const same = rows.filter((x) => key(x) === key(r) && x.hook === r.hook && x.table === r.table && x.chain === r.chain).length;
          const packets = Math.max(...['netif_receive_skb', 'net_dev_queue'].map((hook) => run.events.filter((e) => key(e) === key(r) && e.hook === hook).length));
          assert.ok(same <= packets, `run ${i}: ${r.hook} ${r.table} judged ${same} times ${key(r)}, for ${packets} packet(s)`);
        }
        if (i < 3) {
          const ids = new Set(run.events.map((e) => e.icmp_id));
          assert.equal(ids.size, 1, `run ${i}: one ping, one identifier`);
          const [id] = ids;
          assert.ok(!idsSeen.has(id), 'each run its own ping');
          idsSeen.add(id);
          assert.ok(rows.every((r) => r.icmp_id === id), `run ${i}: only its own probes' verdicts`);
          for (const seq of [1, 2]) {
            assert.deepEqual(hops(run.events.filter((e) => e.icmp_seq === seq)), routerJourney(topo), `run ${i} seq ${seq}: its journey, nothing else`);
            assert.deepEqual(verdictsOf(rows, seq), verdictsOf(netfilterRows(solo), 1), `run ${i} seq ${seq}: as alone`);
          }
          assert.equal(run.summary?.verdict, 'delivered and answered (all 2 probes)');
        } else {
          const sport = run.events.find((e) => e.tcp_flags === 'S')!.sport;
          const ours = (e: { src: string; dst: string; sport: number; dport: number }) =>
            (e.src === '10.0.1.2' && e.sport === sport && e.dst === topo.v4 && e.dport === 8080) || (e.dst === '10.0.1.2' && e.dport === sport && e.src === topo.v4 && e.sport === 8080);
          const stray = [...run.events, ...rows].find((e) => !ours(e));
          assert.equal(stray, undefined, `run ${i}: only its own flow`);
          assert.ok(rows.some((r) => r.table === 'filter' && r.hook === 'FORWARD' && r.decided_by === 'rule'), `run ${i}: the rule that let it through`);
        }
      }
      // The passive run saw every ping: the three runs' probes, each its own journey.
      const flows = (watched.summary?.journeys as { flow: string }[]).map((j) => j.flow);
      for (const id of idsSeen) assert.ok(flows.some((f) => f.endsWith(`id ${id}`)), `the passive run saw ping ${id}`);
    } finally {
      stop();
    }
  }));

/** Raw TCP SYNs from `src`, from every source port in [from, to], to dst:dport, in a loop until killed. */
const SWEEP = `
import socket, struct, sys
src, dst, dport, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
S, D = socket.inet_aton(src), socket.inet_aton(dst)
print('ready', flush=True)
while True:
    for sport in range(lo, hi + 1):
        tcp = struct.pack('!HHIIBBHHH', sport, dport, 1, 0, 5 << 4, 0x02, 8192, 0, 0)
        tcp = tcp[:16] + struct.pack('!H', csum(S + D + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)) + tcp[18:]
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, 0, 0, 64, 6, 0, S, D)
        s.sendto(ip + tcp, (dst, 0))
`;

test('a TCP probe while another address on the same host sends SYNs from every source port to the same port: only the probe’s flow', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.addr(topo.a, 'eth0', '10.0.1.3/24');
    const stop = await tcpServer(topo.b, 8080);
    const sweep = spawn('ip', ['netns', 'exec', topo.a, 'python3', '-c', SWEEP, '10.0.1.3', topo.v4, '8080', '10000', '65535'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise((resolve) => sweep.stdout!.once('data', resolve));
      const run = await runCli(['--json', '--timeout', '1', '--tcp', '8080', '--from', topo.a, topo.v4]);
      assert.equal(run.status, 0, run.stderr);
      const syn = run.events.filter((e) => e.tcp_flags === 'S');
      assert.deepEqual(hops(syn), routerJourney(topo).slice(0, 4));
      const sport = syn[0].sport;
      assert.ok(sport >= 10000 && !(sport >= 30000 && sport <= 60999), `source port ${sport}: outside the NodePort and ephemeral ranges`);
      for (const e of [...run.events, ...netfilterRows(run)]) {
        const way = [e.src, e.sport, e.dst, e.dport].join(' ');
        assert.ok(way === `10.0.1.2 ${sport} ${topo.v4} 8080` || way === `${topo.v4} 8080 10.0.1.2 ${sport}`, `only the probe's flow: ${way}`);
      }
      assert.equal(run.summary?.verdict, `answered with SYN-ACK: port 8080 open on ${topo.v4}`);
    } finally {
      sweep.kill('SIGKILL');
      stop();
    }
  }));

for (const family of [4, 6] as const) {
  test(`IPv${family}: a 20000-byte probe over a 65000-byte MTU path, its payload in pages: recognised on every hop`, () =>
    withLab(async (lab) => {
      const topo = bridgeLab(lab);
      for (const [ns, dev] of [[topo.host, 'docker0'], [topo.host, topo.veth], [topo.ctr, 'eth0']]) lab.ip(ns, 'link', 'set', dev, 'mtu', '65000');
      const run = await runCli(['--json', '--size', '20000', '--from', topo.host, family === 4 ? topo.v4 : topo.v6]);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(hops(run.events), bridgeJourney(topo));
      assert.ok(run.events.every((e) => e.len === 20000 + 8 + (family === 4 ? 20 : 40)), 'the whole probe, each time');
      assert.equal(run.summary?.verdict, 'delivered and answered');
    }));
}

test('--size larger than the MTU of the sender’s own link: not sent (DF), the link and its MTU named; larger than a later link’s: the router says so', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.ip(topo.a, 'link', 'set', 'eth0', 'mtu', '1300');
    const own = await runCli(['--json', '--timeout', '1', '--size', '1400', '--from', topo.a, topo.v4]);
    assert.equal(own.status, 1, own.stderr);
    assert.deepEqual(own.events, [], 'never sent, so never fragmented');
    assert.equal(own.summary?.verdict, `not sent: larger than the MTU 1300 of its way out (route out of namespace ${topo.a} via eth0); it carries DF, so the sender may not fragment it`);
    lab.ip(topo.a, 'link', 'set', 'eth0', 'mtu', '1500');
    lab.ip(topo.r, 'link', 'set', 'rb', 'mtu', '1300');
    const later = await runCli(['--json', '--timeout', '1', '--size', '1400', '--from', topo.a, topo.v4]);
    assert.equal(later.status, 1, later.stderr);
    assert.equal(later.summary?.verdict, `dropped in namespace ${topo.r} at ip_forward: destination unreachable (fragmentation needed, MTU 1300); ICMP error sent back by 10.0.1.1`);
    // The sender learned that path MTU from the router's error: now its own kernel refuses, its link is still 1500.
    const learned = await runCli(['--json', '--timeout', '1', '--size', '1400', '--from', topo.a, topo.v4]);
    assert.equal(learned.summary?.verdict, `not sent: larger than the path MTU 1300 the kernel learned from an earlier ICMP error (eth0 itself has 1500) of its way out (route out of namespace ${topo.a} via eth0); it carries DF, so the sender may not fragment it`);
  }));

test('-c 8 with a share of the probes dropped on the way: how many were answered, and where each other one died', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    const mangler = startCli(['mangle', 'eth0', '--netns', topo.b, '--drop', '--ratio', '0.5', '--filter', 'icmp', '--json']);
    const mangled = finished(mangler);
    await new Promise((resolve) => mangler.stdout!.once('data', resolve));
    let run: CliRun | undefined;
    try {
      // Random drops: try until some probes, not all, were lost (1 - 2 * 0.5^8 of the time at once).
      for (let attempt = 0; attempt < 5; attempt++) {
        run = await runCli(['--json', '--timeout', '1', '-c', '8', '--from', topo.a, topo.v4]);
        if (run.summary?.answered > 0 && run.summary?.answered < 8) break;
      }
    } finally {
      mangler.kill('SIGINT');
    }
    const counters = (await mangled).lines.at(-1)!;
    const s = run!.summary!;
    const outcomes = s.outcomes as { seq: number; answered: boolean; verdict: string }[];
    assert.deepEqual(outcomes.map((o) => o.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
    const lost = outcomes.filter((o) => !o.answered);
    assert.ok(lost.length > 0 && lost.length < 8, `some lost: ${JSON.stringify(outcomes)}`);
    assert.equal(run!.status, 0, 'ping’s status: some replies came');
    assert.equal(s.replied, true);
    // The independent witness: the XDP program dropped exactly the requests that went unanswered.
    assert.equal(counters.dropped, lost.length, JSON.stringify(counters));
    for (const o of lost) {
      assert.match(o.verdict, new RegExp(`^dropped in namespace ${topo.b} at `), `probe ${o.seq}: where it died`);
      assert.ok(!run!.events.some((e) => e.icmp_seq === o.seq && e.dir === 'reply'), `probe ${o.seq}: no reply was traced`);
    }
    for (const o of outcomes.filter((x) => x.answered)) assert.equal(o.verdict, 'delivered and answered');
    assert.match(s.verdict, new RegExp(`^${8 - lost.length} of 8 probes answered; probes? ${lost.map((o) => o.seq).join(', ')}: dropped in namespace ${topo.b} at `));
    assert.doesNotMatch(s.verdict, /delivered and answered/);
    const text = await runCli(['--timeout', '1', '-c', '1', '--from', topo.a, topo.v4]);
    assert.match(text.stdout, /^Verdict: (delivered and answered|dropped in namespace .*)\.$/m, 'one probe: one verdict, as before');
  }));

test('a TCP probe into a container without rp_filter: its SYN-ACK’s route is output routing, no reverse-path check is claimed', () =>
  withLab(async (lab) => {
    const topo = bridgeLab(lab);
    for (const ns of [topo.host, topo.ctr]) for (const dev of ['all', 'default']) lab.sysctl(ns, `net.ipv4.conf.${dev}.rp_filter`, 0);
    const stop = await tcpServer(topo.ctr, 80);
    try {
      const run = await runCli(['--json', '--tcp', '80', '--from', topo.host, topo.v4]);
      assert.equal(run.status, 0, run.stderr);
      const routes = run.lines.filter((l): l is RouteEvent => l.kind === 'route');
      assert.deepEqual(routes.filter((r) => r.purpose === 'reverse-path'), [], 'rp_filter is off: the kernel made no such check');
      const answer = routes.find((r) => r.netns_name === topo.ctr && r.dst === '172.17.0.1');
      assert.deepEqual([answer?.purpose, answer?.proto], ['output', 6], 'the SYN-ACK routed as TCP output');
    } finally {
      stop();
    }
  }));

/** The sightings per interface of a passive run, as `namespace/interface`. */
function perInterface(run: CliRun, keep: (e: HopEvent) => boolean): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of run.events.filter(keep)) counts.set(`${e.netns_name}/${e.ifname}`, (counts.get(`${e.netns_name}/${e.ifname}`) ?? 0) + 1);
  return counts;
}

for (const family of [4, 6] as const) {
  test(`IPv${family} passive: a fragmented UDP datagram (and, IPv6, one behind extension headers) is seen whole on every hop, as tcpdump sees it`, () =>
    withLab(async (lab) => {
      const topo = routerLab(lab);
      const [src, dst] = family === 4 ? ['10.0.1.2', topo.v4] : ['fd00:1::2', topo.v6];
      const stop = await udpServer(topo.b, 7777, family);
      const path = [[topo.a, 'eth0'], [topo.r, 'ra'], [topo.r, 'rb'], [topo.b, 'eth0']] as const;
      const witnesses = await Promise.all(path.map(([ns, dev]) => capture(ns, dev, `${family === 4 ? 'ip' : 'ip6'} src ${src} and dst ${dst}`)));
      try {
        // libpcap's `udp port` reads the UDP header right behind IPv6's (as tcpdump does): IPv6's first
        // fragments, and datagrams behind destination options, are selected by their next headers.
        const filter = family === 4 ? 'udp and dst port 7777' : `ip6 dst ${dst} and ((ip6[6] == 44 and ip6[42:2] & 0xfff8 == 0) or ip6[6] == 60)`;
        const trace = await passive(['--filter', filter]);
        nodeIn(topo.a, `const s = require('dgram').createSocket('udp${family}'); s.send(Buffer.alloc(4000), 7777, '${dst}', () => s.close())`);
        if (family === 6) {
          // Destination options before UDP: the filter must walk to the L4 header. Fragmented too.
          const dstopts = `import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IPV6, 59, bytes([0, 0, 1, 4, 0, 0, 0, 0]))
for size in (100, 3000): s.sendto(b'x' * size, ('${dst}', 7777))`;
          execFileSync('ip', ['netns', 'exec', topo.a, 'python3', '-c', dstopts]);
        }
        const seen = await Promise.all(witnesses.map((w) => w.stop()));
        await new Promise((resolve) => setTimeout(resolve, 300)); // the last sightings reach the trace
        trace.child.kill('SIGINT');
        const run = await trace.done;
        assert.equal(run.status, 130, `interrupted, it ends with its summary: ${run.stderr}`);
        const expected = new Map(path.map(([ns, dev], i) => [`${ns}/${dev}`, seen[i].length]));
        const fragments = seen[0].filter((l) => (family === 4 ? /flags \[\+\]|offset [1-9]/ : /frag \(/).test(l)).length;
        assert.ok(fragments >= (family === 4 ? 3 : 5), `tcpdump saw fragments: ${seen[0].join('\n')}`);
        assert.deepEqual(perInterface(run, (e) => e.src === src), expected, 'each interface: as many sightings as tcpdump captured');
        const journeys = run.summary?.journeys as { flow: string; packets: number }[];
        assert.ok(journeys.length >= 1 && journeys.every((j) => !/fragments/.test(j.flow)), `later fragments joined their datagram's journey: ${JSON.stringify(journeys)}`);
        const hopLines = run.lines.filter((l) => l.kind === 'hop');
        const later = hopLines.filter((l) => l.fragment && l.fragment.offset > 0);
        assert.ok(later.length > 0, 'later fragments traced');
        for (const l of later) {
          const first = hopLines.find((f) => f.fragment?.id === l.fragment.id && f.fragment.offset === 0);
          assert.equal(l.journey, first?.journey, 'a later fragment is in its first fragment’s journey');
        }
      } finally {
        stop();
        await Promise.all(witnesses.map((w) => w.stop().catch(() => [])));
      }
    }));
}

test('passive: an ICMP error joins the journey of the flow it quotes; a competing flow sharing the sk_buffs never joins', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    // Every datagram to the closed port gets its error: no rate limit in b.
    lab.sysctl(topo.b, 'net.ipv4.icmp_ratelimit', 0);
    // Per namespace from 6.2; before, one limit for the whole machine (1000 a second), which this test stays under.
    lab.exec(topo.b, 'sh', '-c', '[ ! -e /proc/sys/net/ipv4/icmp_msgs_per_sec ] || sysctl -qw net.ipv4.icmp_msgs_per_sec=100000');
    const stop = await udpServer(topo.b, 7002, 4);
    try {
      const trace = await passive(['--filter', 'udp and dst port 7001']);
      // Another run at once, by host: the errors (from the target itself) are matched by their own
      // addresses there, and still go to the journey of the flow they quote.
      const byHost = await passive(['--filter', `host ${topo.v4} and not icmp6`]);
      // Flow B (7002, answered by nobody's error) floods while flow A (7001, closed: port unreachable) runs:
      // the kernel hands the same sk_buff addresses from one to the other.
      const flood = `const d = require('dgram'); const s = d.createSocket('udp4'); let n = 0; const go = () => { if (n++ > 20000) return s.close(); s.send('b', 7002, '${topo.v4}', go); }; go();`;
      const probe = `const d = require('dgram'); const s = d.createSocket('udp4'); s.bind(41001, () => { let n = 0; const t = setInterval(() => { s.send('a', 7001, '${topo.v4}'); if (++n === 20) { clearInterval(t); setTimeout(() => s.close(), 100); } }, 10); });`;
      await Promise.all([
        new Promise((resolve) => spawn('ip', ['netns', 'exec', topo.a, process.execPath, '-e', flood], { stdio: 'ignore' }).on('exit', resolve)),
        new Promise((resolve) => spawn('ip', ['netns', 'exec', topo.a, process.execPath, '-e', probe], { stdio: 'ignore' }).on('exit', resolve)),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      trace.child.kill('SIGINT');
      byHost.child.kill('SIGINT');
      const run = await trace.done;
      const hosted = await byHost.done;
      const hostFlows = (hosted.summary?.journeys as { flow: string }[]).map((j) => j.flow);
      assert.ok(hostFlows.includes(`udp 10.0.1.2:41001 -> ${topo.v4}:7001`), JSON.stringify(hostFlows));
      assert.ok(hostFlows.every((f) => /^udp /.test(f)), `every error in the journey of the flow it quotes: ${JSON.stringify(hostFlows)}`);
      const hostErrors = hosted.lines.filter((l) => l.kind === 'hop' && l.dir === 'error');
      assert.ok(hostErrors.length > 0 && hostErrors.every((l) => l.quoted_src === '10.0.1.2' && l.quoted_dst === topo.v4 && l.dport === 7001));
      const packets = run.lines.filter((l) => l.kind === 'hop' || l.kind === 'drop');
      assert.ok(packets.length > 0);
      for (const p of packets) {
        const quoted = p.dir === 'error' ? [p.quoted_src, p.quoted_dst] : [p.src, p.dst];
        assert.deepEqual([quoted, p.sport, p.dport, p.proto], [['10.0.1.2', topo.v4], 41001, 7001, 17], `only flow A: ${JSON.stringify(p)}`);
      }
      const errors = packets.filter((p) => p.dir === 'error');
      const arrived = packets.filter((p) => p.dir === 'request' && p.netns_name === topo.b && p.hook === 'netif_receive_skb').length;
      assert.ok(arrived >= 15, `flow A's datagrams reached b (${arrived} of 20)`);
      assert.equal(errors.length, arrived * 4, 'each one’s port-unreachable error, on its 4 hops back');
      const journeys = run.summary?.journeys as { journey: number; flow: string }[];
      assert.deepEqual(journeys.map((j) => j.flow), [`udp 10.0.1.2:41001 -> ${topo.v4}:7001`], 'one flow, its errors in it');
      assert.ok(packets.every((p) => p.journey === journeys[0].journey));
    } finally {
      stop();
    }
  }));

