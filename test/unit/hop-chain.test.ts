/**
 * HopChain (src/tidy.ts) keeps recent sightings by packet identity in a ring
 * of typed arrays, for speed. What it must find is stated here the plain
 * way, as it was first written (a list of the last sighting of each
 * sk_buff per identity, as objects): the model. Random traffic that shares
 * identities, sk_buffs, namespaces and times must give the same latency,
 * rewrites and alterations from both.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fc from 'fast-check';
import type { HopEvent } from '../../src/events';
import { alteredSince, HopChain } from '../../src/tidy';

const SAME_PACKET_NS = 20_000_000;
const SAME_SKB_NS = 100_000_000;

function identity(e: HopEvent): number | undefined {
  const dir = { request: 0, reply: 1, error: 2 }[e.dir];
  if (e.proto === 1 || e.proto === 58) return ((dir * 2 + (e.family === 6 ? 1 : 0)) * 0x10000 + e.icmp_id) * 0x10000 + e.icmp_seq;
  if (e.proto === 6) return 2 ** 35 + (dir * 0x10000 + e.len) * 2 ** 32 + e.tcp_seq;
  return undefined;
}

const consecutive = (p: HopEvent, e: HopEvent) => p.lost_so_far === e.lost_so_far && (p.netns === e.netns || (p.hook === 'net_dev_queue' && e.hook === 'netif_receive_skb'));

/** The model: what the previous sighting is, said simply. */
class ModelChain {
  private bySkb = new Map<string, HopEvent>();
  private byIdentity = new Map<number, HopEvent[]>();

  add(e: HopEvent): void {
    const seen = this.bySkb.get(e.skb);
    this.bySkb.set(e.skb, e);
    const before = seen && seen.dir === e.dir && seen.icmp_seq === e.icmp_seq && seen.proto === e.proto && seen.tcp_flags === e.tcp_flags && seen.tcp_seq === e.tcp_seq && e.time_ns - seen.time_ns < SAME_SKB_NS ? seen : undefined;
    e.latency_ns = before ? e.time_ns - before.time_ns : null;
    e.rewritten = null;
    e.altered = null;
    if (e.dir === 'error') return;
    e.altered = alteredSince(this.previous(e, seen), e);
    if (!before || before.dir === 'error') return;
    const changes: string[] = [];
    if (before.src !== e.src || before.sport !== e.sport) changes.push(`src ${before.src}${before.sport ? `:${before.sport}` : ''} -> ${e.src}${e.sport ? `:${e.sport}` : ''}`);
    if (before.dst !== e.dst || before.dport !== e.dport) changes.push(`dst ${before.dst}${before.dport ? `:${before.dport}` : ''} -> ${e.dst}${e.dport ? `:${e.dport}` : ''}`);
    e.rewritten = changes.length ? changes.join(', ') : null;
  }

  private previous(e: HopEvent, sameSkb: HopEvent | undefined): HopEvent | undefined {
    const key = identity(e);
    if (key === undefined) return undefined;
    // The last sighting of each other sk_buff within the window; one that could come just before: the answer.
    const recent = [e, ...(this.byIdentity.get(key) ?? [])].filter((s, i, all) => i === 0 || (e.time_ns - s.time_ns < SAME_PACKET_NS && all.findIndex((r) => r.skb === s.skb) === i));
    this.byIdentity.set(key, recent);
    if (sameSkb && identity(sameSkb) === key && e.time_ns - sameSkb.time_ns < SAME_SKB_NS) return consecutive(sameSkb, e) ? sameSkb : undefined;
    const candidates = recent.slice(1).filter((s) => consecutive(s, e));
    return candidates.length === 1 ? candidates[0] : undefined;
  }
}

const hop = (x: Partial<HopEvent>): HopEvent => ({
  kind: 'hop', hook: 'net_dev_queue', vlan: null, time_ns: 0, skb: 'a', lost_so_far: 0, netns: 7, netns_name: null, ifindex: 2, ifname: 'eth0', dir: 'request', family: 4,
  src: '10.0.0.1', dst: '10.0.0.2', icmp_id: 7, icmp_seq: 1, icmp_type: 8, icmp_code: 0, quotes: null, mtu: null, proto: 1, sport: 0, dport: 0, tcp_flags: '', tcp_seq: 0,
  ttl: 64, len: 84, quoted_src: null, quoted_dst: null, fragment: null, tunnel: null, conntrack: null, ...x,
});

/** A sighting: few sk_buffs, identities, namespaces and hooks, so that they meet; gaps around the windows. */
const sighting = fc.record({
  gap: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constantFrom(SAME_PACKET_NS - 1, SAME_PACKET_NS, SAME_PACKET_NS + 1, SAME_SKB_NS)),
  skb: fc.constantFrom('a', 'b', 'c', 'd'),
  hook: fc.constantFrom('net_dev_queue', 'netif_receive_skb'),
  dir: fc.constantFrom('request' as const, 'reply' as const, 'error' as const),
  proto: fc.constantFrom(1, 6, 17),
  seq: fc.integer({ min: 1, max: 3 }),
  netns: fc.constantFrom(7, 8, 9),
  lostMore: fc.boolean(),
  ttl: fc.constantFrom(64, 63, 62, 7),
  flags: fc.constantFrom('S', 'P.', '.'),
  nat: fc.boolean(),
});

/** A generated sighting's fields at this time, with this many records lost so far. */
const fieldsOf = (s: typeof sighting extends fc.Arbitrary<infer T> ? T : never, time: number, lost: number): Partial<HopEvent> => ({
  time_ns: time, skb: s.skb, hook: s.hook, dir: s.dir, proto: s.proto, icmp_seq: s.seq, tcp_seq: s.seq * 1000, tcp_flags: s.proto === 6 ? s.flags : '',
  netns: s.netns, lost_so_far: lost, ttl: s.ttl, dst: s.nat ? '10.0.0.9' : '10.0.0.2', dport: s.proto === 1 ? 0 : 80,
});

/**
 * The same generated traffic through the chain and the model, one sighting at a time; `check` compares each
 * pair. `back`: how much earlier than its place a sighting's time is (out of order).
 */
function replay(chain: HopChain, steps: { s: typeof sighting extends fc.Arbitrary<infer T> ? T : never; back: number }[], check: (a: HopEvent, b: HopEvent) => void): void {
  const model = new ModelChain();
  let time = 1e9;
  let lost = 0;
  for (const { s, back } of steps) {
    time += s.gap;
    if (s.lostMore && s.gap > 1000) lost++;
    const x = fieldsOf(s, time - back, lost);
    const [a, b] = [hop(x), hop(x)];
    chain.add(a);
    model.add(b);
    check(a, b);
  }
}

test('the same previous sighting as the model: latency, NAT rewrites and alterations, on random traffic', () => {
  fc.assert(
    fc.property(fc.array(sighting, { minLength: 1, maxLength: 60 }), (steps) => {
      replay(new HopChain(), steps.map((s) => ({ s, back: 0 })), (a, b) =>
        assert.deepEqual([a.latency_ns, a.rewritten, a.altered], [b.latency_ns, b.rewritten, b.altered], JSON.stringify(steps)),
      );
    }),
    { numRuns: 3000 },
  );
});

test('sightings out of time order (batches from several CPUs): what the chain infers, the model infers too', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ step: sighting, back: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 2_000_000 })) }), { minLength: 1, maxLength: 60 }), (steps) => {
      replay(new HopChain(), steps.map(({ step, back }) => ({ s: { ...step, lostMore: false }, back })), (a, b) => {
        if (a.altered !== null) assert.equal(a.altered, b.altered, JSON.stringify(steps));
      });
    }),
    { numRuns: 5000 },
  );
});

test('a ring too small for the traffic says less, never something else: what it infers, the model infers too', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 6 }), fc.array(sighting, { minLength: 1, maxLength: 60 }), (slots, steps) => {
      replay(new HopChain(slots), steps.map((s) => ({ s, back: 0 })), (a, b) => {
        // Latency and rewrites come from the packet's own sk_buff: always the same.
        assert.deepEqual([a.latency_ns, a.rewritten], [b.latency_ns, b.rewritten]);
        if (a.altered !== null) assert.equal(a.altered, b.altered, JSON.stringify({ slots, steps }));
      });
    }),
    { numRuns: 3000 },
  );
});

test('a flood that overwrites the sightings of the window: nothing inferred, where the model would see two copies', () => {
  const chain = new HopChain();
  const copies = () => [hop({ time_ns: 1000, skb: 'a', ttl: 64 }), hop({ time_ns: 2_000_000, skb: 'c', ttl: 64 })];
  // One packet in two sk_buffs at once (a copy), both transmitted in namespace 7; between the two, so many other
  // packets within the window that the second copy's sighting takes the first one's place in the ring.
  const [a, c] = copies();
  chain.add(a);
  for (let i = 0; i < 65_535; i++) chain.add(hop({ time_ns: 2000 + i, skb: 'x', icmp_id: 9, icmp_seq: i % 65536, dir: 'reply' }));
  chain.add(c);
  // The packet received in a third sk_buff: either copy could have come here, so no alteration is said
  // (the ring holds only the second now: said from it alone, "ttl 64 -> 7" would be a guess).
  const third = hop({ time_ns: 3_000_000, skb: 'b', hook: 'netif_receive_skb', ttl: 7 });
  chain.add(third);
  assert.equal(third.altered, null);
  // The model, without the flood, sees both copies and says nothing either.
  const model = new ModelChain();
  for (const e of copies()) model.add(e);
  const alone = hop({ time_ns: 3_000_000, skb: 'b', hook: 'netif_receive_skb', ttl: 7 });
  model.add(alone);
  assert.equal(alone.altered, null);
  // Once the window has passed the lost sighting, the ring is whole again: one copy, its alteration said.
  const later = [hop({ time_ns: 50_000_000, skb: 'a', icmp_seq: 2, ttl: 64 }), hop({ time_ns: 50_001_000, skb: 'b', hook: 'netif_receive_skb', icmp_seq: 2, ttl: 7 })];
  for (const e of later) chain.add(e);
  assert.equal(later[1].altered, 'ttl 64 -> 7');
});

test('one identity seen very often (pure TCP ACKs of a bulk flow share one): the walk stops, and nothing is inferred from its first part', () => {
  const sightings = (list: HopEvent[]) => list.map((e) => ({ ...e }));
  const ack = (x: Partial<HopEvent>) => hop({ proto: 6, tcp_flags: '.', tcp_seq: 5000, len: 52, sport: 5201, dport: 40000, ...x });
  const traffic = [
    ack({ time_ns: 1000, skb: 'a', netns: 7, ttl: 64 }),
    // A hundred sightings of the same identity elsewhere (another namespace, received): none could come before the last.
    ...Array.from({ length: 100 }, (_, i) => ack({ time_ns: 2000 + i, skb: `e${i % 3}`, netns: 9, hook: 'netif_receive_skb' })),
    ack({ time_ns: 5000, skb: 'b', netns: 7, ttl: 7 }),
  ];
  const model = new ModelChain();
  const byModel = sightings(traffic);
  for (const e of byModel) model.add(e);
  assert.equal(byModel[byModel.length - 1].altered, 'ttl 64 -> 7', 'the model walks all of them and finds the one');
  const chain = new HopChain();
  const byChain = sightings(traffic);
  for (const e of byChain) chain.add(e);
  assert.equal(byChain[byChain.length - 1].altered, null, 'past the walk it looks at, said: nothing');
});

test('an sk_buff seen again with an earlier time: its last sighting as it came, out of the window, is not replaced by the one before', () => {
  const T = 1e9;
  const traffic = () => [hop({ time_ns: T, skb: 'd', dir: 'reply', ttl: 63 }), hop({ time_ns: T - 1_000_000, skb: 'd', dir: 'reply', ttl: 64 }), hop({ time_ns: T + 19_000_001, skb: 'a', dir: 'reply', ttl: 64 })];
  const chain = new HopChain();
  const model = new ModelChain();
  const [byChain, byModel] = [traffic(), traffic()];
  for (const e of byChain) chain.add(e);
  for (const e of byModel) model.add(e);
  assert.equal(byModel[2].altered, null);
  assert.equal(byChain[2].altered, null, 'not "ttl 63 -> 64" from a sighting the later one replaced');
});
