/**
 * The pieces that keep a journey exact: the TCP/UDP probe's source port,
 * the packet reader chosen for this kernel, what a route lookup was for,
 * and each probe's outcome with -c N.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NODE_PORTS, parsePortRange, parseReservedPorts, pickPort, portsInUse } from '../../src/probe/flow';
import { chooseSkbReader, directMapSymbols } from '../../src/kernel/skb-reader';
import { isReversePathCheck, purposeFromStack } from '../../src/kernel/route-purpose';
import { probeOutcomes, probesVerdict } from '../../src/verdict';
import type { HopEvent, RouteEvent, TraceEvent } from '../../src/events';
import type { Native } from '../../src/native';

test('the probe’s source port: free, outside the ephemeral, reserved and NodePort ranges', () => {
  assert.deepEqual(parsePortRange('32768\t60999\n'), [32768, 60999]);
  assert.deepEqual(parseReservedPorts('8080,9000-9010\n'), [[8080, 8080], [9000, 9010]]);
  assert.deepEqual(parseReservedPorts('\n'), []);
  // /proc/net/tcp as the kernel writes it (local address, then remote), ports in hex.
  const tcp = ['  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode', '   0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0'].join('\n');
  assert.deepEqual([...portsInUse([tcp, ''])], [0x4e21]);
  const excluded = [[32768, 60999], NODE_PORTS, [20000, 20000]] as const;
  for (let i = 0; i < 200; i++) {
    const port = pickPort(excluded, new Set([0x4e21]), (max) => Math.floor(Math.random() * max))!;
    assert.ok(port >= 10000 && port <= 65535);
    assert.ok(!(port >= 30000 && port <= 60999) && port !== 20000 && port !== 0x4e21, `port ${port}`);
  }
  assert.equal(pickPort([[0, 65535]], new Set()), null, 'none left: said, not guessed');
});

test('packet bytes past the linear part: dynptr where tracing programs may use it, else the pages, else none; once per boot', async () => {
  assert.deepEqual(directMapSymbols('ffffffff82415730 D vmemmap_base\nffffffff82415740 D page_offset_base\n'), { pageOffsetBase: 0xffffffff82415740n, vmemmapBase: 0xffffffff82415730n });
  assert.equal(directMapSymbols('ffffffff82415730 D vmemmap_base\n'), null);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-reader-'));
  const kallsyms = path.join(dir, 'kallsyms');
  fs.writeFileSync(kallsyms, 'ffffffff81000000 T _text\nffffffff82415730 D vmemmap_base\nffffffff82415740 D page_offset_base\n');
  // A kernel that refuses the dynptr probe (as 6.1 does).
  const loads: string[] = [];
  const refusing = {
    open: () => ({}), close: () => undefined, setAutoload: () => undefined, programs: () => ['probe_dynptr'],
    loadAsync: async () => { loads.push('probe'); throw Object.assign(new Error('load'), { op: 'bpf_object__load', errno: 13, log: 'calling kernel function bpf_dynptr_from_skb is not allowed' }); },
  } as unknown as Native;
  try {
    const first = await chooseSkbReader(refusing, { cacheDir: dir, kallsyms, arch: 'x64' });
    assert.deepEqual(first, { reader: { kind: 'pages', pageOffsetBase: 0xffffffff82415740n, vmemmapBase: 0xffffffff82415730n }, note: null });
    const again = await chooseSkbReader(refusing, { cacheDir: dir, kallsyms: '/nonexistent', arch: 'x64' });
    assert.deepEqual(again, first, 'remembered for this boot');
    assert.deepEqual(loads, ['probe'], 'measured once');
    fs.rmSync(path.join(dir, 'kernel-skb-reader.json'));
    const none = await chooseSkbReader(refusing, { cacheDir: dir, kallsyms: '/nonexistent', arch: 'x64' });
    assert.equal(none.reader.kind, 'linear');
    assert.match(none.note ?? '', /cannot be read on this kernel .*probes larger than about 16 KB may not be recognised/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const route = (x: Partial<RouteEvent>): RouteEvent => ({ kind: 'route', time_ns: 0, skb: 'a', lost_so_far: 0, netns: 1, netns_name: 'r', family: 4, src: '10.0.2.2', dst: '10.0.1.2', table: 'main', table_id: 254, oif: 'ra', gateway: null, error: null, purpose: 'output', proto: 0, sport: 0, dport: 0, flow_icmp_type: 0, ...x });

test('what a route lookup was for: the kernel’s caller chain, else its flow; never the direction alone', () => {
  // Recorded on 6.18 (kallsyms names of the stack above fib_table_lookup).
  const rpCheck = ['__traceiter_fib_table_lookup+0x3f', 'fib_table_lookup+0x5c0', 'fib_validate_source_reason+0x4a1', 'ip_route_input_slow+0x7b6', 'ip_route_input_noref+0x67', 'ip_rcv_finish_core+0x87'];
  const icmpRelookup = ['__traceiter_fib_table_lookup+0x3f', 'fib_table_lookup+0x5c0', 'ip_route_input_slow+0x2a1', 'ip_route_input_noref+0x67', 'icmp_route_lookup+0x3a6', '__icmp_send+0x47c'];
  assert.equal(purposeFromStack(rpCheck), 'reverse-path');
  assert.equal(purposeFromStack(icmpRelookup), 'input');
  assert.equal(purposeFromStack(['fib_table_lookup+0x5c0', 'ip_route_output_key_hash_rcu+0x2f0']), 'output');
  assert.equal(purposeFromStack(['fib_table_lookup+0x5c0', 'rpfilter_mt+0xd1']), 'reverse-path');
  assert.equal(purposeFromStack(['0xffffffffc0001234']), null);
  // Without a stack: the flow. A SYN-ACK routes TCP with ports; rp_filter's check routes a bare flow.
  const syn = { src: '10.0.1.2', dst: '10.0.2.2', proto: 6 } as HopEvent;
  assert.equal(isReversePathCheck(route({ proto: 6, sport: 8080, dport: 40000 }), syn), false, 'the SYN-ACK’s own route');
  assert.equal(isReversePathCheck(route({ proto: 1 }), { ...syn, proto: 1 }), false, 'an echo reply’s route');
  assert.equal(isReversePathCheck(route({}), syn), true);
  assert.equal(isReversePathCheck(route({ purpose: 'input' }), syn), false);
  const v6 = { src: 'fd00:1::2', dst: 'fd00:2::2', proto: 58 } as HopEvent;
  assert.equal(isReversePathCheck(route({ family: 6, src: 'fd00:2::2', dst: 'fd00:1::2', proto: 58 }), v6), true, 'IPv6 rpfilter keeps the next header');
  assert.equal(isReversePathCheck(route({ family: 6, src: 'fd00:2::2', dst: 'fd00:1::2', proto: 58, flow_icmp_type: 129 }), v6), false, 'the echo reply’s route names its type');
});

const hop = (seq: number, dir: HopEvent['dir'], x: Partial<HopEvent> = {}): HopEvent =>
  ({ kind: 'hop', hook: 'netif_receive_skb', vlan: null, time_ns: seq * 1000 + (dir === 'reply' ? 500 : 0), skb: `s${seq}${dir}`, lost_so_far: 0, netns: 2, netns_name: 'b', ifindex: 2, ifname: 'eth0', dir, family: 4, src: '10.0.1.2', dst: '10.0.2.2', icmp_id: 7, icmp_seq: seq, icmp_type: 8, icmp_code: 0, quotes: null, mtu: null, proto: 1, sport: 0, dport: 0, tcp_flags: '', tcp_seq: 0, ttl: 64, len: 84, quoted_src: null, quoted_dst: null, fragment: null, tunnel: null, conntrack: null, ...x });

test('-c N: each probe’s outcome, ping the witness; alike fates together; disagreement said, not hidden', () => {
  const events: TraceEvent[] = [];
  for (const seq of [1, 2, 3, 4]) {
    events.push(hop(seq, 'request'));
    if (seq !== 2 && seq !== 4) events.push(hop(seq, 'reply', { netns_name: 'a' }));
  }
  events.push({ ...hop(2, 'request'), kind: 'drop', reason: 'NOT_SPECIFIED', reason_code: 2, location: 'veth_xdp_rcv_skb+0x1a' } as TraceEvent);
  events.push({ ...hop(4, 'request'), kind: 'drop', reason: 'NOT_SPECIFIED', reason_code: 2, location: 'veth_xdp_rcv_skb+0x1a' } as TraceEvent);
  const ping = { answered: new Set([1, 3]), transmitted: 4, localErrors: [], localMtu: null };
  const outcomes = probeOutcomes(events, 4, ping);
  assert.deepEqual(outcomes.map((o) => [o.seq, o.answered]), [[1, true], [2, false], [3, true], [4, false]]);
  assert.equal(probesVerdict(outcomes), '2 of 4 probes answered; probes 2, 4: dropped in namespace b at veth_xdp_rcv_skb: XDP on eth0 dropped it');
  // ping got no answer for 3, though its reply was traced into a: the trace does not overrule it.
  const disagree = probeOutcomes(events, 4, { ...ping, answered: new Set([1]) });
  assert.equal(disagree[2].answered, false);
  assert.equal(disagree[2].verdict, 'no reply received by ping, though one was traced as far as eth0 in namespace a (netif_receive_skb)');
  // ping says answered, the trace saw no reply: said so.
  const unseen = probeOutcomes(events, 4, { ...ping, answered: new Set([1, 2, 3]) });
  assert.match(unseen[1].verdict, /^answered \(ping received the reply, but no hop of it was traced/);
  assert.equal(probesVerdict(probeOutcomes(events.filter((e) => e.kind === 'route' || (e.icmp_seq !== 2 && e.icmp_seq !== 4)), 1, ping)), 'delivered and answered', 'one probe: one verdict, as before');
});
