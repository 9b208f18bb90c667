/**
 * Conntrack on every hop: the entry each sighting of the probe carries, as
 * the kernel held it there, against `conntrack -L` and `conntrack -S` in the
 * same namespace as the independent witness; NAT mappings on the hop where
 * they were made; drops by rules that matched on conntrack state, in words.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { DropEvent, HopEvent } from '../../src/events';
import type { Lab } from '../../src/lab/lab';
import { finished, routerLab, runCli, startCli, tcpServer, withLab } from './helpers';

/** The router's conntrack table, as conntrack-tools lists it (one line per entry). */
const conntrackList = (ns: string, ...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-L', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
/** Packets conntrack found invalid in a namespace, summed over CPUs (conntrack -S). */
const invalidCount = (ns: string) =>
  [...execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-S'], { encoding: 'utf8' }).matchAll(/\binvalid=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);

/**
 * The probe resets its connection once answered, and conntrack forgets a closed one after 10 s: on a
 * slow kernel (the matrix's guests) a witness reading the table after the run would come too late.
 */
const keepClosedEntries = (lab: Lab, ns: string) => lab.sysctl(ns, 'net.netfilter.nf_conntrack_tcp_timeout_close', 600);

const hopAt = (run: { events: HopEvent[] }, ns: string, ifname: string, hook: string, flags: string) =>
  run.events.find((e) => e.netns_name === ns && e.ifname === ifname && e.hook === hook && e.tcp_flags === flags);

test('conntrack on a TCP probe’s hops through a stateful router: new, then established in the reply direction, as conntrack -L lists it', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.exec(topo.r, 'nft', 'add table inet tpkt_state; add chain inet tpkt_state forward { type filter hook forward priority 0; policy drop; }; add rule inet tpkt_state forward ct state established,related accept; add rule inet tpkt_state forward tcp dport 8080 ct state new accept');
    keepClosedEntries(lab, topo.r);
    const stop = await tcpServer(topo.b, 8080);
    try {
      const run = await runCli(['--json', '--timeout', '5', '--tcp', '8080', '--from', topo.a, topo.v4]);
      assert.equal(run.status, 0, run.stderr);
      const syn = hopAt(run, topo.r, 'rb', 'net_dev_queue', 'S');
      const synAck = hopAt(run, topo.r, 'ra', 'net_dev_queue', 'S.');
      assert.ok(syn && synAck, 'the SYN and the SYN-ACK left the router');
      const sport = syn.sport;
      // The witness: the router's own table holds the connection, with the probe's source port.
      const listed = conntrackList(topo.r, '-p', 'tcp', '--dport', '8080');
      assert.match(listed, new RegExp(`src=10\\.0\\.1\\.2 dst=10\\.0\\.2\\.2 sport=${sport} dport=8080 .*src=10\\.0\\.2\\.2 dst=10\\.0\\.1\\.2 sport=8080 dport=${sport}`));

      assert.deepEqual(
        { state: syn.conntrack?.state, direction: syn.conntrack?.direction, original: syn.conntrack?.original, reply: syn.conntrack?.reply, nat: syn.conntrack?.nat, zone: syn.conntrack?.zone },
        {
          state: 'new',
          direction: 'original',
          original: { src: '10.0.1.2', dst: topo.v4, sport, dport: 8080 },
          reply: { src: topo.v4, dst: '10.0.1.2', sport: 8080, dport: sport },
          nat: null,
          zone: 0,
        },
      );
      assert.ok(syn.conntrack!.status.includes('confirmed'), 'confirmed once it left the router');
      assert.equal(synAck.conntrack?.state, 'established');
      assert.equal(synAck.conntrack?.direction, 'reply');
      assert.ok(synAck.conntrack!.status.includes('seen_reply'));
      // Received from another namespace: crossing it cleared the entry; conntrack runs after this hook.
      assert.equal(hopAt(run, topo.r, 'ra', 'netif_receive_skb', 'S')?.conntrack, null);
      // The namespaces without rules track nothing.
      assert.equal(hopAt(run, topo.b, 'eth0', 'net_dev_queue', 'S.')?.conntrack, null);

      const text = await runCli(['--timeout', '5', '--tcp', '8080', '--from', topo.a, topo.v4]);
      assert.match(text.stdout, /rb\s+request .* net_dev_queue \(ct new\)/);
      assert.match(text.stdout, /ra\s+reply .* net_dev_queue \(ct est reply\)/);
    } finally {
      stop();
    }
  }));

test('a published port: the DNAT mapping on the hop where conntrack made it, the same as conntrack -L, and in the verdict; other clients of the same port at once lend it none of theirs', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.exec(topo.r, 'nft', 'add table ip tpkt_pub; add chain ip tpkt_pub pre { type nat hook prerouting priority -100; }; add rule ip tpkt_pub pre tcp dport 9090 dnat to 10.0.2.2:8080');
    keepClosedEntries(lab, topo.r);
    const stop = await tcpServer(topo.b, 8080);
    // Other clients from the same namespace to the same published port, all along: the same DNAT, other entries.
    const others = spawn('ip', ['netns', 'exec', topo.a, process.execPath, '-e', "setInterval(() => require('net').connect(9090, '10.0.1.1').on('error', () => {}).on('data', () => {}), 20)"], { stdio: 'ignore' });
    try {
      const run = await runCli(['--json', '--timeout', '5', '--tcp', '9090', '--from', topo.a, '10.0.1.1']);
      assert.equal(run.status, 0, run.stderr);
      const syn = hopAt(run, topo.r, 'rb', 'net_dev_queue', 'S');
      assert.ok(syn, `the SYN left the router towards b: ${JSON.stringify(run.events.map((e) => [e.netns_name, e.ifname, e.hook, e.tcp_flags]))}`);
      const sport = syn.sport;
      assert.ok(conntrackList(topo.r, '-p', 'tcp', '--orig-port-dst', '9090').trim().split('\n').length > 1, 'the other clients had entries of their own meanwhile');
      // Every entry on the probe's hops is the probe's own connection, whatever the other clients did.
      for (const h of run.events.filter((e) => e.conntrack)) assert.equal(h.conntrack!.original!.sport, sport, `${h.netns_name} ${h.ifname} ${h.hook}`);
      assert.equal(syn.dst, topo.v4);
      assert.equal(syn.conntrack?.nat, 'dnat 10.0.1.1:9090->10.0.2.2:8080');
      assert.deepEqual(syn.conntrack?.original, { src: '10.0.1.2', dst: '10.0.1.1', sport, dport: 9090 });
      assert.deepEqual(syn.conntrack?.reply, { src: topo.v4, dst: '10.0.1.2', sport: 8080, dport: sport });
      assert.ok(syn.conntrack!.status.includes('dst_nat') && syn.conntrack!.status.includes('dst_nat_done'));
      // The witness agrees on the mapping.
      assert.match(conntrackList(topo.r, '-p', 'tcp', '--orig-port-dst', '9090'), new RegExp(`src=10\\.0\\.1\\.2 dst=10\\.0\\.1\\.1 sport=${sport} dport=9090 .*src=10\\.0\\.2\\.2 dst=10\\.0\\.1\\.2 sport=8080 dport=${sport} .*\\[ASSURED\\]|src=10\\.0\\.1\\.2 dst=10\\.0\\.1\\.1 sport=${sport} dport=9090 .*src=10\\.0\\.2\\.2 dst=10\\.0\\.1\\.2 sport=8080 dport=${sport}`));
      // The SYN-ACK back: the same entry, seen from the reply direction.
      assert.equal(hopAt(run, topo.r, 'ra', 'net_dev_queue', 'S.')?.conntrack?.nat, 'dnat 10.0.1.1:9090->10.0.2.2:8080');
      assert.equal(run.summary?.verdict, `answered with SYN-ACK: port 8080 open on ${topo.v4} (reached as 10.0.1.1:9090; NAT by conntrack in namespace ${topo.r}: dnat 10.0.1.1:9090->10.0.2.2:8080)`);
    } finally {
      others.kill();
      stop();
    }
  }));

test('a rule that drops by conntrack state: the verdict says the rule and the entry the packet had', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.exec(topo.r, 'nft', 'add table inet tpkt_new; add chain inet tpkt_new forward { type filter hook forward priority 0; }; add rule inet tpkt_new forward tcp dport 8081 ct state new drop');
    const run = await runCli(['--json', '--timeout', '1', '--tcp', '8081', '--from', topo.a, topo.v4]);
    assert.equal(run.status, 1, run.stderr);
    const drop = run.lines.find((l): l is DropEvent => l.kind === 'drop' && l.netns_name === topo.r);
    assert.equal(drop?.conntrack?.state, 'new');
    assert.doesNotMatch(drop!.conntrack!.status.join(' '), /confirmed/, 'never confirmed: dropped before it left');
    assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.r} by inet tpkt_new forward \\(hook FORWARD\\): rule \`tcp dport 8081 ct state new drop\`; its conntrack entry there: new \\(original direction\\)$`));
  }));

test('a stray TCP ACK against `ct state invalid drop`, traced passively: dropped with no conntrack entry, as conntrack -S counts it', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.exec(topo.r, 'nft', 'add table inet tpkt_inv; add chain inet tpkt_inv forward { type filter hook forward priority 0; }; add rule inet tpkt_inv forward ct state invalid drop');
    // Mid-stream pickup off: an ACK that belongs to no connection conntrack saw begin is invalid.
    lab.sysctl(topo.r, 'net.netfilter.nf_conntrack_tcp_loose', 0);
    const invalidBefore = invalidCount(topo.r);
    const child = startCli(['--json', '--count', '1', '--filter', `tcp and port 7777 and host ${topo.v4}`]);
    const done = finished(child);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    // A bare ACK from a raw socket: no connection behind it on either side.
    const stray = [
      'import socket, struct',
      's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)',
      "h = struct.pack('!HHIIBBHHH', 40777, 7777, 1000, 2000, 5 << 4, 0x10, 65535, 0, 0)",
      "p = socket.inet_aton('10.0.1.2') + socket.inet_aton('10.0.2.2') + struct.pack('!BBH', 0, 6, len(h))",
      "b = p + h; t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16",
      "h = h[:16] + struct.pack('!H', ~t & 0xffff) + h[18:]",
      "s.sendto(h, ('10.0.2.2', 0))",
    ].join('\n');
    execFileSync('ip', ['netns', 'exec', topo.a, 'python3', '-c', stray]);
    const run = await done;
    assert.equal(run.status, 0, run.stderr);
    const drop = run.lines.find((l): l is DropEvent => l.kind === 'drop');
    assert.ok(drop, `the ACK was dropped: ${run.stdout}`);
    assert.equal(drop.netns_name, topo.r);
    assert.equal(drop.reason, 'NETFILTER_DROP');
    assert.equal(drop.conntrack, null, 'conntrack attached no entry');
    assert.equal(drop.tcp_flags, '.');
    assert.ok(invalidCount(topo.r) > invalidBefore, 'conntrack counted an invalid packet (conntrack -S)');
    assert.doesNotMatch(conntrackList(topo.r), /dport=7777/, 'and made no entry of it');
    // Where the packet was freed: in nft_do_chain on recent kernels, by nf_hook_slow on its verdict on 6.1.
    assert.match(run.summary?.journeys[0].dropped, new RegExp(`^request dropped in namespace ${topo.r} at (nft_do_chain|nf_hook_slow): .*; it had no conntrack entry there \\(conntrack does not run there, or found it invalid\\)$`));
  }));
