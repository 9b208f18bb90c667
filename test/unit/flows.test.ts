import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { HopEvent } from '../../src/events';
import { FlowJourneys, flowOf } from '../../src/flows';

const base = { kind: 'hop' as const, hook: 'net_dev_queue', vlan: null, time_ns: 0, skb: '1', lost_so_far: 0, netns: 7, netns_name: 'r', ifindex: 2, ifname: 'eth0', family: 4 as const, icmp_id: 0, icmp_seq: 0, icmp_type: 0, icmp_code: 0, quotes: null, mtu: null, tcp_flags: '', tcp_seq: 0, ttl: 64, len: 60, quoted_src: null, quoted_dst: null, fragment: null, tunnel: null, conntrack: null };
/** Journeys keep kernel time: these tests speak milliseconds. */
const ms = (n: number) => n * 1e6;
const addAt = (j: FlowJourneys, e: HopEvent, at: number) => {
  e.time_ns = ms(at);
  return j.add(e);
};
const tcp = (src: string, sport: number, dst: string, dport: number, flags = 'S'): HopEvent => ({ ...base, dir: 'request', proto: 6, src, sport, dst, dport, tcp_flags: flags });

test('both directions of a flow are one journey; the first packet sets the forward way', () => {
  const j = new FlowJourneys(1000);
  const syn = tcp('10.0.0.1', 40000, '10.0.0.2', 80);
  const synAck = tcp('10.0.0.2', 80, '10.0.0.1', 40000, 'S.');
  assert.equal(addAt(j, syn, 0).id, 1);
  assert.equal(addAt(j, synAck, 10).id, 1);
  assert.deepEqual([syn.dir, synAck.dir], ['request', 'reply']);
  assert.equal(flowOf(syn).key, flowOf(synAck).key);
  const other = tcp('10.0.0.1', 40001, '10.0.0.2', 80);
  assert.equal(addAt(j, other, 20).id, 2, 'another source port, another journey');
  assert.equal(j.all()[0].label, 'tcp 10.0.0.1:40000 -> 10.0.0.2:80');
  assert.equal(j.all()[0].packets, 2);
});

test('a journey completes after the idle time; the same flow later is a new journey', () => {
  const j = new FlowJourneys(1000);
  addAt(j, tcp('10.0.0.1', 40000, '10.0.0.2', 80), 0);
  assert.deepEqual(j.completeIdle(ms(999)), []);
  assert.deepEqual(j.completeIdle(ms(1000)).map((x) => x.id), [1]);
  assert.deepEqual(j.completeIdle(ms(5000)), [], 'completes once');
  assert.equal(addAt(j, tcp('10.0.0.1', 40000, '10.0.0.2', 80), 6000).id, 2);
});

test('ICMP echoes pair by identifier and keep their own direction', () => {
  const j = new FlowJourneys();
  const req: HopEvent = { ...base, dir: 'request', proto: 1, src: '10.0.0.1', dst: '10.0.0.2', icmp_id: 9, icmp_type: 8, sport: 0, dport: 0 };
  const rep: HopEvent = { ...req, dir: 'reply', src: '10.0.0.2', dst: '10.0.0.1', icmp_type: 0 };
  assert.equal(addAt(j, req, 0).id, addAt(j, rep, 1).id);
  assert.equal(rep.dir, 'reply');
  assert.equal(j.all()[0].label, 'icmp 10.0.0.1 -> 10.0.0.2 id 9');
});

test('lost events mark the journeys whose packets span the time of the loss, read before or after it', () => {
  const j = new FlowJourneys(1000);
  const flow = (sport: number) => tcp('10.0.0.1', sport, '10.0.0.2', 80);
  addAt(j, flow(40000), 100); // complete before the loss
  j.completeIdle(ms(1200));
  addAt(j, flow(40001), 1500);
  addAt(j, flow(40001), 2500); // spans the loss
  j.recordLoss(ms(2000), ms(3000));
  addAt(j, flow(40002), 2900); // read after the loss was counted, sent during it
  addAt(j, flow(40003), 5000); // after it
  j.completeIdle(ms(7000));
  assert.deepEqual(j.all().map((x) => [x.id, x.incomplete]), [[1, false], [2, true], [3, true], [4, false]]);
});

test('complete journeys are handed out once and forgotten: memory stays flat over any number of flows', () => {
  const j = new FlowJourneys(10);
  for (let i = 0; i < 5000; i++) {
    addAt(j, tcp('10.0.0.1', 10000 + (i % 50000), '10.0.0.2', 80), i);
    j.completeIdle(ms(i));
  }
  j.completeIdle(ms(1_000_000));
  assert.equal(j.openCount, 0);
  assert.equal(j.all().length, 1000, 'the summary keeps the last thousand');
  assert.equal(j.forgotten, 4000);
});

test('an ICMP error joins the journey of the flow it quotes; later fragments the journey of their first', () => {
  const j = new FlowJourneys(1000);
  const first = { ...tcp('10.0.0.1', 5353, '10.0.0.2', 53), proto: 17, fragment: { id: 77, offset: 0, more: true } };
  const later: HopEvent = { ...first, sport: 0, dport: 0, fragment: { id: 77, offset: 1232, more: false } };
  const error: HopEvent = { ...first, dir: 'error', proto: 17, src: '10.0.0.9', dst: '10.0.0.1', quoted_src: '10.0.0.1', quoted_dst: '10.0.0.2', fragment: null, icmp_type: 3, icmp_code: 3 };
  const id = addAt(j, first, 0).id;
  assert.equal(addAt(j, later, 1).id, id);
  assert.equal(later.dir, 'request');
  assert.equal(addAt(j, error, 2).id, id, 'the error is about that flow, whoever sent it');
  const other = { ...later, fragment: { id: 78, offset: 1232, more: false } };
  assert.notEqual(addAt(j, other, 3).id, id, 'another datagram’s fragment');
});

test('a field no hop changes: TTL across a link, more than forwarding takes, TCP flags', async () => {
  const { alteredSince, HopChain } = await import('../../src/tidy');
  const at = (hook: string, ttl: number, x: Partial<HopEvent> = {}): HopEvent => ({ ...base, dir: 'reply', proto: 1, src: '10.0.0.2', dst: '10.0.0.1', sport: 0, dport: 0, hook, ttl, ...x });
  assert.equal(alteredSince(at('net_dev_queue', 64), at('netif_receive_skb', 64)), null, 'across a link: unchanged');
  assert.equal(alteredSince(at('net_dev_queue', 64), at('netif_receive_skb', 7)), 'ttl 64 -> 7');
  assert.equal(alteredSince(at('net_dev_queue', 64), at('netif_receive_skb', 63)), 'ttl 64 -> 63', 'a link does not forward');
  assert.equal(alteredSince(at('netif_receive_skb', 64), at('net_dev_queue', 63)), null, 'forwarding: one less');
  assert.equal(alteredSince(at('netif_receive_skb', 64), at('net_dev_queue', 64)), null, 'bridged or local: the same');
  assert.equal(alteredSince(at('netif_receive_skb', 64), at('net_dev_queue', 60)), 'ttl 64 -> 60');
  const seg = (hook: string, flags: string) => at(hook, 64, { proto: 6, tcp_flags: flags, tcp_seq: 1000, sport: 4000, dport: 80 });
  assert.equal(alteredSince(seg('netif_receive_skb', '.'), seg('net_dev_queue', 'P.')), 'tcp flags . -> P.');

  // The chain finds the previous sighting by identity, even in another sk_buff, and not a later packet.
  const chain = new HopChain();
  const tx = at('net_dev_queue', 64, { skb: 'a', time_ns: 1000, icmp_id: 5, icmp_seq: 1 });
  const rx = at('netif_receive_skb', 9, { skb: 'b', time_ns: 2000, icmp_id: 5, icmp_seq: 1 });
  const later = at('netif_receive_skb', 9, { skb: 'c', time_ns: 300_000_000, icmp_id: 5, icmp_seq: 1 });
  for (const e of [tx, rx, later]) chain.add(e);
  assert.equal(rx.altered, 'ttl 64 -> 9');
  assert.equal(later.altered, null, 'a retransmission\'s time later: another packet');
  const a = seg('netif_receive_skb', '.');
  const b = { ...seg('net_dev_queue', 'P.'), time_ns: 10 };
  const other = { ...seg('net_dev_queue', 'P.'), time_ns: 20, tcp_seq: 2448 };
  for (const e of [a, b, other]) chain.add(e);
  assert.equal(b.altered, 'tcp flags . -> P.');
  assert.equal(other.altered, null, 'another sequence number: another segment');
  // Received in b, then sent again from a: a retransmission, not a TTL that went up.
  const arrived = { ...seg('netif_receive_skb', '.'), netns: 9, ttl: 63, time_ns: 30, tcp_seq: 9000 };
  const again = { ...seg('net_dev_queue', '.'), netns: 7, ttl: 64, time_ns: 40, tcp_seq: 9000 };
  for (const e of [arrived, again]) chain.add(e);
  assert.equal(again.altered, null);
  // Sent from a, then received in b with the router's two sightings lost (ring full): the
  // kernel's counter moved between them, so no link is inferred and nothing is blamed.
  const sent = { ...seg('net_dev_queue', '.'), netns: 7, ttl: 64, time_ns: 50, tcp_seq: 12000, lost_so_far: 3 };
  const received = { ...seg('netif_receive_skb', '.'), netns: 9, ttl: 63, time_ns: 60, tcp_seq: 12000, lost_so_far: 5 };
  for (const e of [sent, received]) chain.add(e);
  assert.equal(received.altered, null, 'records were lost in between: a router may hide there');
  const nothingLost = { ...received, time_ns: 70, tcp_seq: 13000, lost_so_far: 3 };
  chain.add({ ...sent, time_ns: 65, tcp_seq: 13000 });
  chain.add(nothingLost);
  assert.equal(nothingLost.altered, 'ttl 64 -> 63', 'the same pair with nothing lost: a link does not forward');
  // Recorded on a router under a 2 MiB flood: a retransmission left a (sk_buff 2) before the
  // original (sk_buff 1) reached b. The original's own sk_buff says where it came from.
  const hop = (skb: string, netns: number, hook: string, ttl: number, time_ns: number) => ({ ...seg(hook, '.'), skb, netns, ttl, time_ns, tcp_seq: 20000 });
  const flood = [hop('1', 7, 'net_dev_queue', 64, 100), hop('1', 8, 'netif_receive_skb', 64, 110), hop('1', 8, 'net_dev_queue', 63, 120), hop('2', 7, 'net_dev_queue', 64, 125), hop('1', 9, 'netif_receive_skb', 63, 130), hop('2', 8, 'netif_receive_skb', 64, 135), hop('2', 8, 'net_dev_queue', 63, 140), hop('2', 9, 'netif_receive_skb', 63, 145)];
  for (const e of flood) chain.add(e);
  assert.deepEqual(flood.map((e) => e.altered), flood.map(() => null), 'two copies in flight: each follows its own sk_buff');
  // The same two copies, but b receives a copy of its own (XDP copied it): either sender may be
  // its previous sighting, so nothing is inferred.
  const copied = [hop('3', 7, 'net_dev_queue', 64, 200), hop('3', 8, 'netif_receive_skb', 64, 210), hop('3', 8, 'net_dev_queue', 63, 220), hop('4', 7, 'net_dev_queue', 64, 225), hop('5', 9, 'netif_receive_skb', 63, 230)];
  for (const e of copied) chain.add(e);
  assert.equal(copied[4].altered, null, 'ambiguous: not blamed on either copy');
  // The same race with slow hops (over a millisecond each, as under a flood or emulation).
  const slow = [hop('6', 7, 'net_dev_queue', 64, 10_000_000), hop('6', 8, 'netif_receive_skb', 64, 10_100_000), hop('6', 8, 'net_dev_queue', 63, 10_200_000), hop('7', 7, 'net_dev_queue', 64, 10_600_000), hop('6', 9, 'netif_receive_skb', 63, 11_300_000)].map((e) => ({ ...e, tcp_seq: 30000 }));
  for (const e of slow) chain.add(e);
  assert.equal(slow[4].altered, null, 'its own sk_buff, 1.1 ms later, still says where it came from');
  // And what the chain is for: a field changed in the packet's own sk_buff, across a link.
  const mangled = [hop('8', 7, 'net_dev_queue', 64, 20_000_000), { ...hop('8', 9, 'netif_receive_skb', 64, 20_100_000), tcp_flags: 'P.' }].map((e) => ({ ...e, tcp_seq: 40000 }));
  for (const e of mangled) chain.add(e);
  assert.equal(mangled[1].altered, 'tcp flags . -> P.');
});

test("flows in turn, and a flow's own packets in a row (a flood): each packet its own flow's key, never the one before's", () => {
  const a = tcp('10.0.0.1', 40000, '10.0.0.2', 80);
  const b = tcp('10.0.0.1', 40000, '10.0.0.3', 80);
  const icmp = (id: number): HopEvent => ({ ...base, dir: 'request', proto: 1, src: '10.0.0.1', dst: '10.0.0.2', sport: 0, dport: 0, icmp_id: id });
  const keys = [a, a, b, a, icmp(1), icmp(1), icmp(2), { ...a, proto: 17 }].map((e) => flowOf(e).key);
  assert.deepEqual(keys, ['6 10.0.0.1#40000 10.0.0.2#80', '6 10.0.0.1#40000 10.0.0.2#80', '6 10.0.0.1#40000 10.0.0.3#80', '6 10.0.0.1#40000 10.0.0.2#80', '1 10.0.0.1#1 10.0.0.2#1', '1 10.0.0.1#1 10.0.0.2#1', '1 10.0.0.1#2 10.0.0.2#2', '17 10.0.0.1#40000 10.0.0.2#80']);
});

test('a loss after a journey\'s last packet but while it was still open may have hit it: incomplete; one after it completed: not', () => {
  const j = new FlowJourneys(1000);
  const a = addAt(j, tcp('10.0.0.1', 40000, '10.0.0.2', 80), 0);
  addAt(j, tcp('10.0.0.1', 40000, '10.0.0.2', 80, '.'), 10);
  const b = addAt(j, tcp('10.0.0.1', 40001, '10.0.0.2', 80), 0);
  j.recordLoss(ms(500), ms(600)); // a's packets could have been among these: it was open until 1010 ms
  assert.equal(a.incomplete, true);
  const later = new FlowJourneys(1000);
  const c = addAt(later, tcp('10.0.0.1', 40002, '10.0.0.2', 80), 0);
  later.recordLoss(ms(1500), ms(1600)); // after c had been idle for its whole second
  assert.equal(later.all()[0].incomplete, false);
  void b;
  void c;
});

test('user space behind under a flood: the journey\'s later packets still queued, then thousands of losses after them; once they are read, it is incomplete (losses beyond those kept apart are joined, never forgotten)', () => {
  const j = new FlowJourneys(1000);
  const flow = tcp('10.0.0.1', 40000, '10.0.0.2', 80);
  for (let t = 0; t <= 100; t += 10) addAt(j, flow, t); // handed out before the reader stalled
  // Read meanwhile and dropped, batch by batch: 2000 spans from 2 s to 5 s (more than are remembered one by one).
  for (let i = 0; i < 2000; i++) j.recordLoss(ms(2000 + i * 1.5), ms(2000 + i * 1.5 + 1));
  for (let t = 110; t < 2000; t += 10) addAt(j, flow, t); // the queue, handed out at last
  const [journey] = j.all();
  assert.equal(journey.packets, 11 + 189);
  assert.equal(journey.incomplete, true, 'its packets after 2 s may be among those lost');
  // Losses in bursts more than a second apart, more of them than are kept apart: the oldest are joined, not forgotten.
  const bursts = new FlowJourneys(1000);
  for (let t = 0; t <= 100; t += 10) addAt(bursts, flow, t);
  for (let i = 0; i < 1001; i++) bursts.recordLoss(ms(2000 + i * 1500), ms(2005 + i * 1500));
  for (let t = 110; t < 2000; t += 10) addAt(bursts, flow, t);
  assert.equal(bursts.all()[0].incomplete, true, 'the loss at 2 s is still known');
  // A journey complete and whole between two losses stays so when later losses join those two.
  const whole = new FlowJourneys(1000);
  whole.recordLoss(ms(0), ms(10));
  addAt(whole, tcp('10.0.0.1', 40002, '10.0.0.2', 80), 1500);
  whole.completeIdle(ms(3000));
  for (let i = 0; i < 1001; i++) whole.recordLoss(ms(4000 + i * 1500), ms(4005 + i * 1500));
  assert.equal(whole.all()[0].incomplete, false, 'said whole when it completed, and it was');
  // Merged losses claim no time that had none: a journey between two losses more than a second apart is whole.
  const k = new FlowJourneys(1000);
  k.recordLoss(ms(0), ms(10));
  k.recordLoss(ms(4000), ms(4010));
  addAt(k, tcp('10.0.0.1', 40001, '10.0.0.2', 80), 1500);
  addAt(k, tcp('10.0.0.1', 40001, '10.0.0.2', 80), 1600);
  k.completeIdle(ms(3000));
  assert.equal(k.all()[0].incomplete, false);
});
