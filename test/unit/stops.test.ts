/** Route, drop and ICMP-error records of a recorded run, and the sentences made of them. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeBatch } from '../../src/decode';
import { NO_REASON_GIVEN, type DropEvent, type HopEvent, type KernelEvent, type NeighbourEvent, type RouteEvent, type TraceEvent } from '../../src/events';
import { describeIcmpError } from '../../src/icmp';
import { classifyRoutes } from '../../src/kernel/route-purpose';
import { freedAfterDelivery, tidy } from '../../src/tidy';
import { verdictLine } from '../../src/verdict';

const TTL: { netns: { a: number; r: number; b: number }; ring: string[] } = require('../../../test/fixtures/router-ttl.json');

function recorded(): KernelEvent[] {
  const out: KernelEvent[] = [];
  for (const b of TTL.ring) decodeBatch(Buffer.from(b, 'base64'), (e) => out.push(e));
  return out;
}

test('decodes the recorded TTL-exceeded run: hops, the error and what it quotes, the drop, the routes', async () => {
  const events = recorded();
  const { a, r } = TTL.netns;
  const hops = events.filter((e): e is HopEvent => e.kind === 'hop');
  assert.deepEqual(hops.map((h) => [h.netns, h.ifname, h.dir, h.icmp_type, h.icmp_code, h.quotes, h.ttl]), [
    [a, 'eth0', 'request', 8, 0, null, 1],
    [r, 'ra', 'request', 8, 0, null, 1],
    [r, 'ra', 'error', 11, 0, 'request', 64],
    [a, 'eth0', 'error', 11, 0, 'request', 64],
  ]);
  // The error quotes the request: same echo id and sequence, addressed back to the sender.
  assert.deepEqual([hops[2].icmp_id, hops[2].icmp_seq, hops[2].src, hops[2].dst], [hops[0].icmp_id, 1, '10.0.1.1', '10.0.1.2']);
  const [drop] = events.filter((e): e is DropEvent => e.kind === 'drop');
  assert.deepEqual([drop.netns, drop.ifname, drop.dir, drop.skb], [r, 'ra', 'request', hops[1].skb]);
  assert.match(drop.location, /^0xffff[0-9a-f]{12}$/, 'an address, named later from kallsyms');
  assert.equal(drop.reason, '', 'named later from BTF');
  const routes = events.filter((e): e is RouteEvent => e.kind === 'route');
  await classifyRoutes(routes, hops);
  const shown = tidy(routes) as RouteEvent[];
  assert.deepEqual(shown.map((x) => [x.netns, x.purpose, x.src, x.dst, x.table_id, x.oif, x.gateway, x.error]), [
    [a, 'output', '0.0.0.0', '10.0.2.2', 254, 'eth0', '10.0.1.1', null],
    [r, 'input', '10.0.1.2', '10.0.2.2', 254, 'rb', null, null],
    [r, 'output', '0.0.0.0', '10.0.1.2', 254, 'ra', null, null],
    [r, 'output', '10.0.1.2', '10.0.2.2', 254, 'rb', null, null],
    // Not a reverse-path check (rp_filter is off here): icmp_route_lookup routes the error's
    // reverse session as input from the far side (the kernel's own flow says so: iif rb).
    [r, 'input', '10.0.2.2', '10.0.1.2', 254, 'ra', null, null],
    [a, 'input', '10.0.1.1', '10.0.1.2', 254, 'eth0', null, null],
  ]);
  // ping's source probe (UDP) and its send share one decision: shown once.
  assert.equal(routes.filter((x) => x.netns === a && x.purpose === 'output').length, 3);
});

test('ICMP errors in words, MTU included', () => {
  const cases: [number, number, number, number | null, string][] = [
    [4, 3, 1, null, 'destination unreachable (host unreachable)'],
    [4, 3, 4, 1280, 'destination unreachable (fragmentation needed, MTU 1280)'],
    [4, 11, 0, null, 'time exceeded (TTL exceeded in transit)'],
    [4, 12, 0, null, 'parameter problem'],
    [6, 1, 0, null, 'destination unreachable (no route to destination)'],
    [6, 2, 0, 1280, 'packet too big (MTU 1280)'],
    [6, 3, 0, null, 'time exceeded (hop limit exceeded in transit)'],
    [4, 5, 1, null, 'ICMP type 5 code 1'],
  ];
  for (const [family, type, code, mtu, text] of cases) assert.equal(describeIcmpError(family, type, code, mtu), text);
});

// Hand-made journeys for each way a verdict is reached.
const base = { time_ns: 0, skb: 'a1', lost_so_far: 0, netns: 7, netns_name: 'r', ifindex: 2, ifname: 'ra', family: 4 as const, src: '10.0.1.2', dst: '10.0.2.2', icmp_id: 1, icmp_seq: 1, icmp_type: 8, icmp_code: 0, quotes: null, mtu: null, proto: 1, sport: 0, dport: 0, tcp_flags: '', tcp_seq: 0, ttl: 64, len: 84, quoted_src: null, quoted_dst: null, fragment: null, tunnel: null, conntrack: null };
const hop = (x: Partial<HopEvent>): HopEvent => ({ kind: 'hop', hook: 'netif_receive_skb', vlan: null, dir: 'request', ...base, ...x });
const drop = (x: Partial<DropEvent>): DropEvent => ({ kind: 'drop', dir: 'request', reason: 'NOT_SPECIFIED', reason_code: 2, location: 'ip_error+0x94', ...base, ...x });
const route = (x: Partial<RouteEvent>): RouteEvent => ({ kind: 'route', time_ns: 0, skb: 'a1', lost_so_far: 0, netns: 7, netns_name: 'r', family: 4, src: '10.0.1.2', dst: '10.0.2.2', table: 'main', table_id: 254, oif: 'rb', gateway: null, error: null, purpose: 'input', proto: 0, sport: 0, dport: 0, flow_icmp_type: 0, ...x });
const neighbour = (x: Partial<NeighbourEvent>): NeighbourEvent => ({ kind: 'neighbour', hook: 'neigh', dir: 'request', next_hop: '10.0.2.9', neighbour_state: 'INCOMPLETE', ...base, ifname: 'rb', ...x });
const vxlan42 = { type: 'vxlan' as const, id: 42, family: 4 as const, src: '192.168.77.1', dst: '192.168.77.9', proto: 17, sport: 4000, dport: 4789, ttl: 64, len: 134 };
const tunnelLookup = (x: Partial<RouteEvent>) => route({ purpose: 'output', src: '192.168.77.1', dst: '192.168.88.2', proto: 17, sport: 4000, dport: 4789, error: 'no route', oif: null, time_ns: 2, ...x });
const error = hop({ dir: 'error', ifname: 'ra', hook: 'net_dev_queue', icmp_type: 11, icmp_code: 0, quotes: 'request', src: '10.0.1.1', dst: '10.0.1.2' });

const verdicts: [string, TraceEvent[], boolean, string][] = [
  ['a reply', [hop({}), hop({ dir: 'reply' })], true, 'delivered and answered'],
  ['a route error explains the drop', [hop({}), route({ error: 'blackhole', oif: null }), drop({})], false, 'dropped in namespace r at ip_error: blackhole route to 10.0.2.2 (table main)'],
  ['a failed neighbour', [route({ purpose: 'output', skb: '0', gateway: '10.0.1.9', oif: 'eth0' }), drop({ reason: 'NEIGH_FAILED', location: 'neigh_invalidate+0x7e' })], false, 'dropped in namespace r at neigh_invalidate: next hop 10.0.1.9 did not answer ARP on eth0 (NEIGH_FAILED)'],
  ['rp_filter', [hop({}), route({ purpose: 'reverse-path', src: '10.0.2.2', dst: '10.0.1.2', oif: 'rb' }), drop({ reason: 'IP_RPFILTER', location: 'ip_rcv_finish_core+0x25b' })], false, 'dropped in namespace r at ip_rcv_finish_core: reverse path filter: replies to 10.0.1.2 would leave by rb, but it came in on ra'],
  ['the ICMP error says why', [hop({}), error, drop({ reason: 'IP_INHDR', location: 'ip_forward+0x2c0' })], false, 'dropped in namespace r at ip_forward: time exceeded (TTL exceeded in transit); ICMP error sent back by 10.0.1.1'],
  ['only the reason', [hop({}), drop({ reason: 'QDISC_DROP', location: 'dev_queue_xmit+0x10' })], false, 'dropped in namespace r at dev_queue_xmit: qdisc drop'],
  ['an error and no drop seen', [hop({}), error], false, 'time exceeded (TTL exceeded in transit) from 10.0.1.1 (namespace r)'],
  ['a VXLAN device with nowhere to send it', [hop({ ifname: 'vx0', hook: 'net_dev_queue' }), drop({ ifname: 'vx0', reason: 'NO_TX_TARGET', location: 'vxlan_xmit+0xdb0' })], false, 'dropped in namespace r at vxlan_xmit: vxlan device vx0 has no remote and no forwarding entry for the destination (NO_TX_TARGET)'],
  ['a failed neighbour on a kernel that gives no reasons (before 5.17): the place says it', [route({ purpose: 'output', skb: '0', gateway: '10.0.1.9', oif: 'eth0' }), drop({ reason: NO_REASON_GIVEN, location: 'neigh_invalidate+0x7e' })], false, 'dropped in namespace r at neigh_invalidate: next hop 10.0.1.9 did not answer ARP on eth0'],
  ['a failed neighbour freed as NOT_SPECIFIED (6.1): the place says it, no reason shown', [route({ purpose: 'output', skb: '0', gateway: '10.0.1.9', oif: 'eth0' }), drop({ location: 'neigh_invalidate+0x7e' })], false, 'dropped in namespace r at neigh_invalidate: next hop 10.0.1.9 did not answer ARP on eth0'],
  ['a VXLAN drop sending, before 5.17 (no reason at all)', [hop({ ifname: 'vx0', hook: 'net_dev_queue' }), drop({ ifname: 'vx0', reason: NO_REASON_GIVEN, location: 'vxlan_xmit_one+0x1a0' })], false, 'dropped in namespace r at vxlan_xmit_one: vxlan device vx0 could not send it on, and this kernel gives no reason (no remote or forwarding entry for the destination, or no route to the remote endpoint)'],
  ['a drop elsewhere before 5.17: the place, and no guess', [hop({}), drop({ reason: NO_REASON_GIVEN, location: 'ip_rcv_core+0x1b0' })], false, 'dropped in namespace r at ip_rcv_core: no reason given by this kernel'],
  ['a VXLAN drop sending, on a kernel that names no reason', [hop({ ifname: 'vx0', hook: 'net_dev_queue' }), drop({ ifname: 'vx0', location: 'vxlan_xmit_one+0x1a0' })], false, 'dropped in namespace r at vxlan_xmit_one: vxlan device vx0 could not send it on, and this kernel gives no reason (no remote or forwarding entry for the destination, or no route to the remote endpoint)'],
  ['a VXLAN drop on receive, without a reason: no guess', [hop({ ifname: 'u2' }), drop({ ifname: 'u2', location: 'vxlan_rcv+0x2e0', tunnel: { type: 'vxlan', id: 42, family: 4, src: '192.168.77.1', dst: '192.168.77.2', proto: 17, sport: 4000, dport: 4789, ttl: 64, len: 134 } })], false, 'dropped in namespace r at vxlan_rcv: the vxlan driver dropped it on receive, and this kernel gives no reason'],
  ['the tunnel\'s next hop did not answer: the outer packet\'s, not the probe\'s', [hop({ family: 6, src: 'fd99::1', dst: 'fd99::2', ifname: 'vx0', hook: 'net_dev_queue' }), drop({ family: 6, src: 'fd99::1', dst: 'fd99::2', ifname: 'u1', reason: 'NEIGH_FAILED', location: 'neigh_invalidate+0x7e', tunnel: { type: 'vxlan', id: 42, family: 4, src: '192.168.77.1', dst: '192.168.77.9', proto: 17, sport: 4000, dport: 4789, ttl: 64, len: 154 } })], false, 'dropped in namespace r at neigh_invalidate: next hop 192.168.77.9 did not answer ARP on u1 (for the vxlan 42: 192.168.77.1 -> 192.168.77.9 packet carrying the probe) (NEIGH_FAILED)'],
  ['not sent', [route({ purpose: 'output', skb: '0', error: 'no route', oif: null, netns_name: 'a' })], false, 'not sent: no route to 10.0.2.2 (table main) in namespace a'],
  ['a tunnel with no route to its remote endpoint, dropping the probe', [hop({ ifname: 'vx0', hook: 'net_dev_queue', time_ns: 1 }), tunnelLookup({}), drop({ ifname: 'vx0', reason: 'IP_OUTNOROUTES', location: 'vxlan_xmit_one+0x26d', time_ns: 3 })], false, 'dropped in namespace r at vxlan_xmit_one: vxlan device vx0 has no route to its remote endpoint 192.168.88.2 (table main)'],
  ['a tunnel with no route to its remote endpoint, freeing the probe without a word (Geneve)', [hop({ ifname: 'gnv0', hook: 'net_dev_queue', time_ns: 1 }), tunnelLookup({ dport: 6081 })], false, 'no reply: geneve device gnv0 in namespace r has no route to its remote endpoint 192.168.88.2 (table main)'],
  ['a GRE tunnel whose endpoint is unreachable', [hop({ ifname: 'gre1', hook: 'net_dev_queue', time_ns: 1 }), tunnelLookup({ proto: 47, sport: 0, dport: 0, error: 'unreachable' })], false, 'no reply: gre device gre1 in namespace r has an unreachable route to its remote endpoint 192.168.88.2 (table main)'],
  ['a UDP lookup to some other port is no tunnel\'s', [hop({ ifname: 'eth0', hook: 'net_dev_queue', time_ns: 1 }), tunnelLookup({ dport: 53, netns_name: 'a' })], false, 'not sent: no route to 192.168.88.2 (table main) in namespace a'],
  ['waiting for ARP at a router', [hop({ time_ns: 1 }), neighbour({ time_ns: 2 })], false, 'no reply: next hop 10.0.2.9 on rb in namespace r had not answered ARP when the trace ended: the request was waiting for it there (neighbour INCOMPLETE when it was queued); last seen as request on ra in namespace r (netif_receive_skb)'],
  ['waiting for neighbour discovery for a tunnel\'s outer packet', [hop({ ifname: 'vx0', hook: 'net_dev_queue', time_ns: 1 }), neighbour({ ifname: 'u1', next_hop: 'fd77::9', tunnel: { ...vxlan42, family: 6, src: 'fd77::1', dst: 'fd77::9' }, time_ns: 2 })], false, 'no reply: next hop fd77::9 on u1 in namespace r had not answered neighbour discovery when the trace ended: the vxlan 42: fd77::1 -> fd77::9 packet carrying the request was waiting for it there (neighbour INCOMPLETE when it was queued); last seen as request on vx0 in namespace r (net_dev_queue)'],
  ['a wait at a neighbour that ended: the packet went on', [hop({ time_ns: 1 }), neighbour({ time_ns: 2 }), hop({ ifname: 'rb', hook: 'net_dev_queue', time_ns: 3 })], false, 'no reply: last seen as request on rb in namespace r (net_dev_queue)'],
  ['a failed neighbour named by the queue it waited in', [hop({ time_ns: 1 }), neighbour({ time_ns: 2 }), drop({ ifname: 'rb', reason: 'NEIGH_FAILED', location: 'neigh_invalidate+0x7e', time_ns: 3 })], false, 'dropped in namespace r at neigh_invalidate: next hop 10.0.2.9 did not answer ARP on rb (NEIGH_FAILED)'],
  ['nothing', [], false, 'not seen on any interface'],
  ['lost on the way', [hop({}), hop({ ifname: 'rb', hook: 'net_dev_queue' })], false, 'no reply: last seen as request on rb in namespace r (net_dev_queue)'],
];

for (const [what, events, replied, sentence] of verdicts) {
  test(`verdict: ${what}`, () => assert.equal(verdictLine(events, replied), sentence));
}

test('verdict: a wait at a neighbour with records lost after it concludes nothing', () => {
  const events = [hop({ time_ns: 1 }), neighbour({ time_ns: 2, lost_so_far: 0 })];
  assert.match(verdictLine(events, false, { lost: 0 }), /had not answered ARP/);
  assert.equal(verdictLine(events, false, { lost: 3 }), 'no reply: last seen as request on ra in namespace r (netif_receive_skb)');
});

test('verdict: a failed route names the interfaces that are down there', () => {
  const events = [route({ purpose: 'output', skb: '0', error: 'no route', oif: null })];
  assert.equal(verdictLine(events, false, { down: new Map([[7, ['eth0', 'eth1']]]) }), 'not sent: no route to 10.0.2.2 (table main; down there: eth0, eth1) in namespace r');
});

test('verdict: too big for a tunnel, with the device\'s MTU, the link beneath and the ICMP error the tunnel sent', () => {
  const tooBig = hop({ dir: 'error', ifname: 'vx0', icmp_type: 3, icmp_code: 4, mtu: 1350, quotes: 'request', src: '10.99.0.2', dst: '10.99.0.1' });
  const events = [hop({ ifname: 'vx0', hook: 'net_dev_queue', len: 1428 }), tooBig];
  const tunnelMtu = { netns: 7, device: 'vx0', kind: 'vxlan', mtu: 1450, probeLen: 1428, lower: { name: 'u1', mtu: 1400 } };
  assert.equal(
    verdictLine(events, false, { tunnelMtu }),
    'too big for the vxlan tunnel vx0 in namespace r: its own MTU 1450 let the 1428-byte probe in, but it carries at most 1350 bytes over u1 (MTU 1400, 50 bytes of it for the tunnel\'s headers); the probe carries DF, so vx0 sent back destination unreachable (fragmentation needed, MTU 1350)',
  );
  // A limit that is not the link beneath (a route's MTU, say): no header count is made up.
  assert.match(verdictLine(events, false, { tunnelMtu: { ...tunnelMtu, lower: { name: 'u1', mtu: 1300 } } }), /carries at most 1350 bytes over its underlay; /);
  // An error that announces no less than the device's MTU is not the tunnel's doing.
  assert.doesNotMatch(verdictLine([events[0], { ...tooBig, mtu: 1500 }], false, { tunnelMtu }), /too big for the vxlan tunnel/);
  // An error from elsewhere (another namespace) is not the tunnel's.
  assert.equal(verdictLine(events, false, { tunnelMtu: { ...tunnelMtu, netns: 8 } }), 'destination unreachable (fragmentation needed, MTU 1350) from 10.99.0.2 (namespace r)');
});

test('tidy: socket-queue purges and raw-ping leftovers are not drops on the path; repeats shown once', () => {
  const events: TraceEvent[] = [
    route({}),
    route({}),
    route({ table: 'local', table_id: 255, src: '0.0.0.0', error: null }),
    route({ table_id: 100, table: '100', error: 'no route' }),
    drop({ reason: 'QUEUE_PURGE', location: 'inet_sock_destruct+0x57', dir: 'error' }),
    drop({ reason: 'NO_SOCKET', location: 'ping_rcv+0xb3', dir: 'reply' }),
    drop({ reason: 'NO_SOCKET', location: 'udp_rcv+0x10', dir: 'reply' }),
  ];
  assert.deepEqual(tidy(events).map((e) => (e.kind === 'route' ? `route ${e.table}` : e.kind === 'drop' ? `drop ${e.location}` : e.kind)), ['route main', 'drop udp_rcv+0x10']);
});

test('decodes a recorded TCP probe to a closed port: ports, flags, the RST, the drop of the SYN', () => {
  const tcp: { netns: { a: number; r: number; b: number }; ring: string[] } = require('../../../test/fixtures/router-tcp.json');
  const events: KernelEvent[] = [];
  for (const b of tcp.ring) decodeBatch(Buffer.from(b, 'base64'), (e) => events.push(e));
  const packets = events.filter((e): e is HopEvent | DropEvent => e.kind === 'hop' || e.kind === 'drop');
  const port = packets[0].sport;
  assert.ok(port >= 10000 && !(port >= 30000 && port <= 60999), 'a source port outside the NodePort and the ephemeral ranges');
  assert.deepEqual(packets.map((e) => [e.kind, e.netns, e.proto, `${e.sport}>${e.dport}`, e.tcp_flags]), [
    ['hop', tcp.netns.a, 6, `${port}>8081`, 'S'],
    ['hop', tcp.netns.r, 6, `${port}>8081`, 'S'],
    ['hop', tcp.netns.r, 6, `${port}>8081`, 'S'],
    ['hop', tcp.netns.b, 6, `${port}>8081`, 'S'],
    ['hop', tcp.netns.b, 6, `8081>${port}`, 'R.'],
    ['drop', tcp.netns.b, 6, `${port}>8081`, 'S'],
    ['hop', tcp.netns.r, 6, `8081>${port}`, 'R.'],
    ['hop', tcp.netns.r, 6, `8081>${port}`, 'R.'],
    ['hop', tcp.netns.a, 6, `8081>${port}`, 'R.'],
  ]);
  // Decoding leaves TCP packets as requests: the probe, which knows its port, turns answers round.
  assert.ok(packets.every((e) => e.dir === 'request'));
  assert.ok(packets.every((e) => e.icmp_type === 0 && e.quotes === null));
});

test('frees after delivery are not drops, whichever kernel words them', () => {
  const after = [
    drop({ reason: 'SOCKET_CLOSE', location: 'inet_sock_destruct+0x1a0', dir: 'error' }), // 6.18
    drop({ reason: 'NOT_SPECIFIED', location: 'inet_sock_destruct+0x1a0', dir: 'error' }), // 6.1: no reason, the place says it
    drop({ reason: 'NO_SOCKET', location: 'ping_rcv+0x90', dir: 'reply' }),
    drop({ reason: 'NO_SOCKET', location: 'icmp_rcv+0x1b1', dir: 'reply' }), // 6.1
    drop({ reason: 'NOT_SPECIFIED', location: 'icmpv6_rcv+0x258', dir: 'error', family: 6 }), // 6.1: an ICMPv6 error handled
  ];
  for (const d of after) assert.equal(freedAfterDelivery(d), true, `${d.reason} at ${d.location}`);
  assert.deepEqual(tidy(after), []);
  // A NO_SOCKET drop of a request is a real one (nobody listens), as is any drop on the way.
  assert.equal(freedAfterDelivery(drop({ reason: 'NO_SOCKET', location: 'icmp_rcv+0x1b1', dir: 'request' })), false);
  assert.equal(freedAfterDelivery(drop({ reason: 'NOT_SPECIFIED', location: 'ip_error+0x94' })), false);
});
