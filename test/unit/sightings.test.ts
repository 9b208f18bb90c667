import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { DropEvent, HopEvent, KernelEvent, RouteEvent } from '../../src/events';
import { Sightings } from '../../src/sightings';

const hop = (x: Partial<HopEvent>): HopEvent => ({
  kind: 'hop', hook: 'net_dev_queue', vlan: null, time_ns: 0, skb: 'a', lost_so_far: 0, netns: 7, netns_name: 'r', ifindex: 2, ifname: 'eth0', dir: 'request', family: 4,
  src: '10.0.0.1', dst: '10.0.0.2', icmp_id: 7, icmp_seq: 1, icmp_type: 8, icmp_code: 0, quotes: null, mtu: null, proto: 1, sport: 0, dport: 0, tcp_flags: '', tcp_seq: 0,
  ttl: 64, len: 84, quoted_src: null, quoted_dst: null, fragment: null, tunnel: null, conntrack: null, ...x,
});
const drop = (x: Partial<DropEvent>): DropEvent => ({ ...hop({}), kind: 'drop', reason: 'NETFILTER_DROP', reason_code: 6, location: 'nf_hook_slow+0x9a', ...x }) as DropEvent;
const route = { kind: 'route', time_ns: 0 } as RouteEvent;

test("a batch in, its lines out: each packet event numbered by journey, compared with the packet's previous sighting; what is no packet on the way left out", () => {
  const s = new Sightings((ev, j, lines) => lines.add(`#${j.id} ${ev.kind} ${ev.kind === 'hop' ? ev.latency_ns : ev.kind === 'drop' ? ev.reason : ''}`));
  const batch: KernelEvent[] = [
    hop({ time_ns: 1000 }),
    route, // route lookups are not followed passively
    hop({ time_ns: 3000, hook: 'netif_receive_skb', netns: 8 }),
    hop({ time_ns: 4000, src: '10.0.0.9', icmp_id: 9, skb: 'b' }),
    drop({ time_ns: 5000, reason: 'QUEUE_PURGE', location: 'skb_queue_purge_reason+0x10' }), // freed after delivery: no drop on the way
    drop({ time_ns: 6000 }),
  ];
  assert.equal(String(s.take(batch)), '#1 hop null\n#1 hop 2000\n#2 hop null\n#1 drop NETFILTER_DROP\n');
  assert.equal(s.count, 4);
  assert.equal(s.journeys.all()[0].dropped, 'request dropped in namespace r at nf_hook_slow: netfilter drop; it had no conntrack entry there (conntrack does not run there, or found it invalid)');
  assert.equal(s.take([route]), undefined, 'nothing to write: no text at all');
});

test('--quiet: nothing written, every sighting counted and grouped', () => {
  const s = new Sightings(null);
  assert.equal(s.take([hop({}), hop({ time_ns: 10, icmp_id: 8 })]), undefined);
  assert.equal(s.count, 2);
  assert.equal(s.journeys.all().length, 2);
});

test("lines written as UTF-8 whatever their length and characters; a batch's bytes stay as they were once the next batch is taken", () => {
  // Interface names and comments of the traced system may hold any character: 3-byte and 4-byte (surrogate pair) ones here.
  const texts = ['eth0', 'ü'.repeat(3000), '网桥', '🦀 veth', 'x'.repeat(70_000)];
  let n = 0;
  const s = new Sightings((_ev, _j, lines) => lines.add(texts[n++ % texts.length]));
  const first = s.take(texts.map((_, i) => hop({ time_ns: i, icmp_id: i })));
  const firstCopy = Buffer.from(first!);
  assert.equal(first!.toString('utf8'), `${texts.join('\n')}\n`);
  // A bigger batch than its estimate (each line's share is capped at 1 KB: the buffer grows mid-batch), then a small one.
  const many = Array.from({ length: 40 }, (_, i) => hop({ time_ns: 100 + i, icmp_id: 100 + i }));
  const second = s.take(many);
  const secondCopy = Buffer.from(second!);
  assert.equal(second!.toString('utf8'), `${Array.from({ length: 40 }, (_, i) => texts[(5 + i) % 5]).join('\n')}\n`);
  assert.equal(String(s.take([hop({ time_ns: 1000, icmp_id: 1000 })])), `${texts[45 % 5]}\n`);
  // A pipe may still be writing the earlier batches: their bytes are untouched.
  assert.deepEqual(first, firstCopy);
  assert.deepEqual(second, secondCopy);
});
