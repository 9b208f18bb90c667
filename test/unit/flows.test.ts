import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { HopEvent } from '../../src/events';
import { FlowJourneys, flowOf } from '../../src/flows';

const base = { kind: 'hop' as const, hook: 'net_dev_queue', time_ns: 0, skb: '1', netns: 7, netns_name: 'r', ifindex: 2, ifname: 'eth0', family: 4 as const, icmp_id: 0, icmp_seq: 0, icmp_type: 0, icmp_code: 0, quotes: null, mtu: null, tcp_flags: '', tcp_seq: 0, ttl: 64, len: 60 };
const tcp = (src: string, sport: number, dst: string, dport: number, flags = 'S'): HopEvent => ({ ...base, dir: 'request', proto: 6, src, sport, dst, dport, tcp_flags: flags });

test('both directions of a flow are one journey; the first packet sets the forward way', () => {
  const j = new FlowJourneys(1000);
  const syn = tcp('10.0.0.1', 40000, '10.0.0.2', 80);
  const synAck = tcp('10.0.0.2', 80, '10.0.0.1', 40000, 'S.');
  assert.equal(j.add(syn, 0).id, 1);
  assert.equal(j.add(synAck, 10).id, 1);
  assert.deepEqual([syn.dir, synAck.dir], ['request', 'reply']);
  assert.equal(flowOf(syn).key, flowOf(synAck).key);
  const other = tcp('10.0.0.1', 40001, '10.0.0.2', 80);
  assert.equal(j.add(other, 20).id, 2, 'another source port, another journey');
  assert.equal(j.all()[0].label, 'tcp 10.0.0.1:40000 -> 10.0.0.2:80');
  assert.equal(j.all()[0].packets, 2);
});

test('a journey completes after the idle time; the same flow later is a new journey', () => {
  const j = new FlowJourneys(1000);
  j.add(tcp('10.0.0.1', 40000, '10.0.0.2', 80), 0);
  assert.deepEqual(j.completeIdle(999), []);
  assert.deepEqual(j.completeIdle(1000).map((x) => x.id), [1]);
  assert.deepEqual(j.completeIdle(5000), [], 'completes once');
  assert.equal(j.add(tcp('10.0.0.1', 40000, '10.0.0.2', 80), 6000).id, 2);
});

test('ICMP echoes pair by identifier and keep their own direction', () => {
  const j = new FlowJourneys();
  const req: HopEvent = { ...base, dir: 'request', proto: 1, src: '10.0.0.1', dst: '10.0.0.2', icmp_id: 9, icmp_type: 8, sport: 0, dport: 0 };
  const rep: HopEvent = { ...req, dir: 'reply', src: '10.0.0.2', dst: '10.0.0.1', icmp_type: 0 };
  assert.equal(j.add(req, 0).id, j.add(rep, 1).id);
  assert.equal(rep.dir, 'reply');
  assert.equal(j.all()[0].label, 'icmp 10.0.0.1 -> 10.0.0.2 id 9');
});

test('lost events mark the journeys open or seen since the last check as incomplete, not finished ones', () => {
  const j = new FlowJourneys(1000);
  j.add(tcp('10.0.0.1', 40000, '10.0.0.2', 80), 0); // finished at 1000
  j.completeIdle(1000);
  j.add(tcp('10.0.0.1', 40001, '10.0.0.2', 80), 1500); // open
  j.add(tcp('10.0.0.1', 40002, '10.0.0.2', 80), 1600);
  j.completeIdle(2700); // both finished, but seen since the check at 1550 below
  j.add(tcp('10.0.0.1', 40003, '10.0.0.2', 80), 2800); // open
  j.markGaps(1550);
  assert.deepEqual(j.all().map((x) => [x.id, x.incomplete]), [[1, false], [2, false], [3, true], [4, true]]);
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
  const later = at('netif_receive_skb', 9, { skb: 'c', time_ns: 5_000_000, icmp_id: 5, icmp_seq: 1 });
  for (const e of [tx, rx, later]) chain.add(e);
  assert.equal(rx.altered, 'ttl 64 -> 9');
  assert.equal(later.altered, null, 'milliseconds later: another packet');
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
});
