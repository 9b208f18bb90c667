import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeBatch } from '../../src/decode';
import { EventKind, HEADER, Hook, HOP, NEIGH, ROUTE } from '../../src/bpf/layout';
import type { HopEvent, KernelEvent, NeighbourEvent, RouteEvent } from '../../src/events';
import { DEMO_FIXTURE as D, decodeFixture, fixture } from '../fixtures';

const HOPS = [
  [D.hostNetns, 'docker0', 'request', 'net_dev_queue'],
  [D.hostNetns, D.veth, 'request', 'net_dev_queue'],
  [D.containerNetns, 'eth0', 'request', 'netif_receive_skb'],
  [D.containerNetns, 'eth0', 'reply', 'net_dev_queue'],
  [D.hostNetns, D.veth, 'reply', 'netif_receive_skb'],
  [D.hostNetns, 'docker0', 'reply', 'netif_receive_skb'],
];

for (const [file, family, host, ctr, len] of [
  ['demo-ipv4.batch', 4, '172.17.0.1', '172.17.0.2', 84],
  ['demo-ipv6.batch', 6, 'fd00:17::1', 'fd00:17::2', 104],
] as const) {
  test(`decodes a recorded ping across a bridge and a veth pair (${file})`, () => {
    const events = decodeFixture(file);
    assert.deepEqual(
      events.map((e) => [e.netns, e.ifname, e.dir, e.hook]),
      HOPS,
    );
    for (const e of events) {
      assert.equal(e.kind, 'hop');
      assert.equal(e.family, family);
      assert.deepEqual([e.src, e.dst], e.dir === 'request' ? [host, ctr] : [ctr, host]);
      assert.equal(e.icmp_seq, 1);
      assert.equal(e.icmp_id, events[0].icmp_id);
      assert.equal(e.len, len);
      assert.equal(e.ttl, 64);
      assert.equal(e.netns_name, null, 'naming is the resolver’s job, not the decoder’s');
      assert.match(e.skb, /^ffff[0-9a-f]{12}$/);
    }
    // One sk_buff carries the request through every hop, another the reply.
    assert.equal(new Set(events.filter((e) => e.dir === 'request').map((e) => e.skb)).size, 1);
    assert.equal(new Set(events.filter((e) => e.dir === 'reply').map((e) => e.skb)).size, 1);
    // Kernel time only moves forward along the journey.
    for (let i = 1; i < events.length; i++) assert.ok(events[i].time_ns > events[i - 1].time_ns);
    assert.deepEqual(new Set(events.map((e) => e.ifindex)), new Set([2, 3]));
  });
}

test('frames: every record is length-prefixed and 4-byte aligned', () => {
  const batch = fixture('demo-ipv4.batch');
  assert.equal(batch.length, 6 * (4 + HOP.$size));
  assert.equal(batch.readUInt32LE(0), HOP.$size);
});

test('skips records of unknown kinds and stops at a truncated tail', () => {
  const batch = fixture('demo-ipv4.batch');
  const oneRecord = batch.subarray(0, 4 + HOP.$size);
  const unknown = Buffer.from(oneRecord);
  unknown[4 + HEADER.kind[0]] = 99;
  const truncated = batch.subarray(0, 4 + HOP.$size + 10);
  const seen: string[] = [];
  assert.equal(decodeBatch(Buffer.concat([unknown, truncated]), (e) => seen.push(e.kind === 'hop' ? e.ifname : e.kind)), 1);
  assert.deepEqual(seen, ['docker0']);
});

test('an empty batch decodes to nothing', () => {
  assert.equal(decodeBatch(Buffer.alloc(0), () => assert.fail('no event expected')), 0);
});

test('remembered strings never stand for other bytes: sk_buff addresses and IP addresses', () => {
  const one = fixture('demo-ipv6.batch').subarray(0, 4 + HOP.$size); // the first record, with its length
  const decodeWith = (skb: bigint, lastByte: number) => {
    const rec = Buffer.from(one);
    rec.writeBigUInt64LE(skb, 4 + HOP.h.skb[0]);
    rec[4 + HOP.p.saddr[0] + 15] = lastByte;
    let ev: HopEvent | undefined;
    decodeBatch(rec, (e) => (ev = e as HopEvent));
    return ev!;
  };
  for (const [skb, last] of [[0xffff8880_0000000an, 1], [0xffff8881_0000000an, 1], [0x0000000an, 2], [0xffff8880_0000000an, 0xfe]] as const) {
    const ev = decodeWith(skb, last);
    assert.equal(ev.skb, skb.toString(16), 'the same low half, another high half: another string');
    assert.equal(ev.src, `fd00:17::${last.toString(16)}`);
  }
});

test('a neighbour record: the probe queued at an unresolved next hop, the next hop and its state', () => {
  const hopRecord = fixture('demo-ipv4.batch').subarray(4, 4 + HOP.$size);
  const rec = Buffer.alloc(4 + NEIGH.$size);
  rec.writeUInt32LE(NEIGH.$size, 0);
  hopRecord.copy(rec, 4, 0, HOP.o.$offset + HOP.o.$size); // header, packet, quoted, outer: the prefix every packet record shares
  rec[4 + HEADER.kind[0]] = EventKind.NEIGH;
  rec[4 + HEADER.hook[0]] = Hook.NEIGH;
  Buffer.from([172, 17, 0, 9]).copy(rec, 4 + NEIGH.next_hop[0]);
  rec[4 + NEIGH.family[0]] = 4;
  rec[4 + NEIGH.nud_state[0]] = 0x01;
  const events: KernelEvent[] = [];
  assert.equal(decodeBatch(rec, (e) => events.push(e)), 1);
  const [ev] = events as NeighbourEvent[];
  assert.deepEqual([ev.kind, ev.hook, ev.next_hop, ev.neighbour_state, ev.ifname, ev.src, ev.dst, ev.icmp_seq], ['neighbour', 'neigh', '172.17.0.9', 'INCOMPLETE', 'docker0', '172.17.0.1', '172.17.0.2', 1]);
  rec[4 + NEIGH.family[0]] = 6;
  Buffer.from('fd770000000000000000000000000009', 'hex').copy(rec, 4 + NEIGH.next_hop[0]);
  rec[4 + NEIGH.nud_state[0]] = 0x20;
  decodeBatch(rec, (e) => events.push(e));
  assert.deepEqual([(events[1] as NeighbourEvent).next_hop, (events[1] as NeighbourEvent).neighbour_state], ['fd77::9', 'FAILED']);
});

test('IPv6 route lookups: no route at all (the null entry) is told apart from an unreachable route', () => {
  const lookup = (error: number, routeType: number) => {
    const rec = Buffer.alloc(4 + ROUTE.$size);
    rec.writeUInt32LE(ROUTE.$size, 0);
    rec[4 + HEADER.kind[0]] = EventKind.ROUTE;
    rec[4 + ROUTE.family[0]] = 6;
    rec.writeInt32LE(error, 4 + ROUTE.error[0]);
    rec[4 + ROUTE.route_type[0]] = routeType;
    let ev: RouteEvent | undefined;
    decodeBatch(rec, (e) => (ev = e as RouteEvent));
    return ev!.error;
  };
  assert.equal(lookup(-101, 7), 'no route');
  assert.equal(lookup(0, 7), 'unreachable');
  assert.equal(lookup(0, 1), null);
});
