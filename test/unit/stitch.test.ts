/**
 * Stitching a probe's journey from two nodes' parts, on streams recorded by
 * test/integration/two-hosts.test.ts (this machine and a Debian 12 guest,
 * a VXLAN overlay between them): the crossings found by the packets on the
 * wire, the order of cause whatever order the parts come in and however
 * wrong the clock offset is, and the verdict naming the far node.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { stitch } from '../../src/cluster/stitch';
import { checkJourneyEvent } from '../../src/cluster/event-check';
import { summarize } from '../../src/journey';
import { renderPath } from '../../src/render/path';
import { verdictLine } from '../../src/verdict';
import type { HopEvent, RouteEvent, TraceEvent } from '../../src/events';
import { FIXTURES } from '../fixtures';

function recorded(name: string): { events: TraceEvent[]; summary: Record<string, any>; start: Record<string, any> } {
  const lines = fs.readFileSync(path.join(FIXTURES, `two-hosts-${name}.jsonl`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { events: lines.filter((l) => l.kind !== 'start' && l.kind !== 'summary'), summary: lines.find((l) => l.kind === 'summary'), start: lines.find((l) => l.kind === 'start') };
}

const LOCAL = 'vm';
const where = (e: TraceEvent) =>
  `${e.node} ${e.netns_name} ${e.kind === 'route' ? `route ${e.oif}` : e.kind === 'netfilter' ? `${e.hook} ${e.verdict}` : `${e.ifname} ${e.dir} ${e.kind === 'hop' ? e.hook : e.kind}`}`;
const bounds = (s: Record<string, any>) => new Map<string, number>(s.nodes.map((n: any) => [n.node, n.clock_uncertainty_ns]));
const clone = (events: readonly TraceEvent[]) => events.map((e) => structuredClone(e));

test('stitch: the recorded parts come out as recorded, the crossings as the run found them, whatever order they arrive in', () => {
  const { events, summary } = recorded('delivered');
  const expected = events.map(where);
  fc.assert(
    fc.property(fc.shuffledSubarray(events.map((_, i) => i), { minLength: events.length, maxLength: events.length }), (order) => {
      const s = stitch(order.map((i) => structuredClone(events[i])), bounds(summary), LOCAL);
      assert.deepEqual(s.events.map(where), expected);
      assert.deepEqual(JSON.parse(JSON.stringify(s.crossings)), summary.wire);
      assert.deepEqual(s.roundTrips, summary.wire_round_trips);
      assert.equal(s.shifts.size, 0, 'the offset measured already orders them by cause');
    }),
    { numRuns: 200 },
  );
});

test('stitch: a clock offset wrong within its bound still gives the order of cause, and the round trip without it; beyond it, no join is guessed', () => {
  const { events, summary } = recorded('delivered');
  const truth = stitch(clone(events), bounds(summary), LOCAL);
  const bound = bounds(summary).get('far')!;
  const skewed = (skew: number) => stitch(clone(events).map((e) => (e.node === 'far' ? { ...e, time_ns: e.time_ns + skew } : e)), bounds(summary), LOCAL);
  for (const skew of [-3e6, -1e6, 1e6, 3e6]) {
    // The far node's times as an offset wrong by `skew` (within the bound) would have converted them.
    const s = skewed(skew);
    assert.deepEqual(s.events.map(where), truth.events.map(where), `skew ${skew / 1e6} ms`);
    const [there, back] = s.crossings;
    assert.equal(there.latency_ns, truth.crossings[0].latency_ns + skew);
    assert.equal(back.latency_ns, truth.crossings[1].latency_ns - skew);
    // Across the wire and back less the time there: the same to the nanosecond, whatever the offset.
    assert.deepEqual(s.roundTrips, truth.roundTrips);
    // Moved only when the clocks would put a receive before its transmit; within the bound: no doubt.
    const shift = s.shifts.get('far') ?? 0;
    assert.equal(shift !== 0, skew < -truth.crossings[0].latency_ns || skew > truth.crossings[1].latency_ns, `skew ${skew / 1e6} ms: shift ${shift}`);
    assert.ok(Math.abs(shift) <= bound);
    assert.deepEqual(s.doubts, []);
  }
  // 20 ms off against a bound of ~4 ms: the receives seem to come before anything was sent. Not joined, and said.
  const far = skewed(-20e6);
  assert.deepEqual(far.crossings.map((c) => c.dir), ['reply'], 'the reply still fits: sent there 20 ms "earlier" is within any bound');
  assert.match(far.doubts.join('\n'), /a packet node far received on eth0 looks like one node vm sent \d+\.\d{3} ms later by the clocks, beyond their bound: not joined/);
});

/** A hop of the recorded journey, changed as given: made-up packets of a real shape. */
function hopLike(base: HopEvent, change: Partial<HopEvent>): HopEvent {
  return { ...structuredClone(base), ...change };
}

test('stitch: a retransmission from the same sk_buff, one lost on the wire: each receive joined to its own transmit, never to a later one', () => {
  const { events } = recorded('delivered');
  const tx = events.find((e): e is HopEvent => e.kind === 'hop' && e.node === 'vm' && e.hook === 'net_dev_queue' && !!e.tunnel && e.dir === 'request')!;
  const rx = events.find((e): e is HopEvent => e.kind === 'hop' && e.node === 'far' && e.hook === 'netif_receive_skb' && !!e.tunnel && e.dir === 'request')!;
  const second = 1_000_000_000; // TCP resends its SYN after a second, from a clone at the same address
  const bound = new Map([['far', 2_000_000]]);
  const both = stitch([tx, rx, hopLike(tx, { time_ns: tx.time_ns + second }), hopLike(rx, { skb: 'ffff0000aaaa0001', time_ns: rx.time_ns + second })], bound, LOCAL);
  assert.deepEqual(both.crossings.map((c) => c.latency_ns), [rx.time_ns - tx.time_ns, rx.time_ns - tx.time_ns]);
  // The first lost on the way: its transmit stays alone; the second's receive is the second's.
  const lost = stitch([tx, hopLike(tx, { time_ns: tx.time_ns + second }), hopLike(rx, { skb: 'ffff0000aaaa0001', time_ns: rx.time_ns + second })], bound, LOCAL);
  assert.deepEqual(lost.crossings.map((c) => [c.from.time_ns, c.latency_ns]), [[tx.time_ns + second, rx.time_ns - tx.time_ns]]);
  assert.deepEqual([lost.shifts.size, lost.doubts], [0, []]);
  // The far node received only the first (its firewall dropped it; the second never came): no latency of -1 s.
  const first = stitch([tx, rx, hopLike(tx, { time_ns: tx.time_ns + second })], bound, LOCAL);
  assert.deepEqual(first.crossings.map((c) => c.latency_ns), [rx.time_ns - tx.time_ns]);
  assert.equal(first.shifts.size, 0);
});

test('stitch: fragments of one probe are joined each to its own, by their offset', () => {
  const { events } = recorded('delivered');
  const tx = events.find((e): e is HopEvent => e.kind === 'hop' && e.node === 'vm' && e.hook === 'net_dev_queue' && !!e.tunnel && e.dir === 'request')!;
  const rx = events.find((e): e is HopEvent => e.kind === 'hop' && e.node === 'far' && e.hook === 'netif_receive_skb' && !!e.tunnel && e.dir === 'request')!;
  const frag = (offset: number, more: boolean) => ({ id: 4242, offset, more });
  const s = stitch([
    hopLike(tx, { skb: 'ffff0000000000a1', fragment: frag(0, true), time_ns: tx.time_ns }),
    hopLike(tx, { skb: 'ffff0000000000a2', fragment: frag(1480, true), time_ns: tx.time_ns + 10_000 }),
    hopLike(rx, { skb: 'ffff0000000000b1', fragment: frag(0, true), time_ns: rx.time_ns }),
    hopLike(rx, { skb: 'ffff0000000000b2', fragment: frag(1480, true), time_ns: rx.time_ns + 10_000 }),
  ], new Map([['far', 5_000_000]]), LOCAL);
  assert.deepEqual(s.crossings.map((c) => [c.from.time_ns - tx.time_ns, c.latency_ns]), [[0, rx.time_ns - tx.time_ns], [10_000, rx.time_ns - tx.time_ns]]);
});

test('stitch: a chain of three nodes is ordered by cause end to end; clocks that contradict the crossings are said', () => {
  const { events } = recorded('delivered');
  const base = events.find((e): e is HopEvent => e.kind === 'hop' && e.dir === 'request' && !e.tunnel)!;
  const h = (node: string, hook: string, time_ns: number, skb: string, dir: 'request' | 'reply' = 'request') =>
    hopLike(base, { node, hook, time_ns, skb, dir, ifname: 'eth0', tunnel: null, fragment: null });
  // vm sends to r, r forwards to s (no TTL decrement on the way here: one packet); s's clock runs 1 ms slow.
  const chain = [h('vm', 'net_dev_queue', 0, 'a1'), h('r', 'netif_receive_skb', 100_000, 'b1'), h('r', 'net_dev_queue', 200_000, 'b1'), h('s', 'netif_receive_skb', 300_000 - 1_000_000, 'c1')];
  const s = stitch(chain, new Map([['r', 50_000], ['s', 2_000_000]]), LOCAL);
  assert.deepEqual(s.events.map((e) => e.node), ['vm', 'r', 'r', 's'], 'the server after the router that sent to it, though its clock says before');
  assert.deepEqual(s.crossings.map((c) => `${c.from.node}>${c.to.node}`), ['vm>r', 'r>s']);
  assert.ok((s.shifts.get('s') ?? 0) > 800_000 && (s.shifts.get('s') ?? 0) <= 2_000_000);
  assert.deepEqual(s.doubts, []);
  // Far's request came 3 ms after it left, its reply left 3 ms after it arrived back here: no one shift
  // of its clock satisfies both. Said; not hidden.
  const both = [h('vm', 'net_dev_queue', 0, 'a1'), h('far', 'netif_receive_skb', -3_000_000, 'f1'), h('far', 'net_dev_queue', 1_000_000, 'f2', 'reply'), h('vm', 'netif_receive_skb', -2_000_000, 'a2', 'reply')];
  const c = stitch(both, new Map([['far', 5_000_000]]), LOCAL);
  assert.equal(c.crossings.length, 2);
  assert.match(c.doubts.join('\n'), /node far's clock contradicts the order of cause/);
  // The way from here to r crossed something untraced (no transmit here matches r's receive): r and s are
  // tied to each other, not to us. Their order against ours is their clocks': said.
  const loose = stitch(chain.slice(1), new Map([['r', 50_000], ['s', 2_000_000]]), LOCAL);
  assert.deepEqual(loose.events.map((e) => e.node), ['r', 'r', 's'], 'still in cause order among themselves');
  assert.match(loose.doubts.join('\n'), /node r is tied to this one by no packet seen crossing between them/);
});

test('stitch: a packet of another probe, or a look-alike on a third node, is not taken for the one that crossed', () => {
  const { events, summary } = recorded('delivered');
  const farRx = events.find((e): e is HopEvent => e.kind === 'hop' && e.node === 'far' && e.ifname === 'eth0' && e.dir === 'request')!;
  // Probe 2 reaches the far node at the same moment: another sequence number, another packet on the wire.
  const other = { ...structuredClone(farRx), skb: 'ffff0000deadbeef', icmp_seq: 2 };
  // A third node receives a packet that looks the same later (a copy, a replay): one transmit reaches one node.
  const third = { ...structuredClone(farRx), node: 'third', skb: 'ffff0000feedface', time_ns: farRx.time_ns + 50e6 };
  const s = stitch([...clone(events), other, third], new Map([...bounds(summary), ['third', 1000]]), LOCAL);
  const requests = s.crossings.filter((c) => c.dir === 'request' && c.seq === 1);
  assert.deepEqual(requests.map((c) => [c.from.node, c.to.node]), [['vm', 'far']]);
  assert.ok(!s.crossings.some((c) => c.seq === 2), 'probe 2 crossed nowhere that was seen sending it');
});

test('stitch: the path picture and the namespaces name each node', () => {
  const { events, summary } = recorded('delivered');
  const s = stitch(clone(events), bounds(summary), LOCAL);
  const j = summarize(s.events, true);
  assert.deepEqual(j.namespaces.map((n) => `${n.node}/${n.name}`), summary.namespaces.map((n: any) => `${n.node}/${n.netns_name}`));
  const picture = renderPath(j.request);
  assert.match(picture[0], /^vm\/tpk-4de0-c1 +\| +vm\/tpk-4de0-a +\| +far\/host +\| +far\/c2$/);
  assert.match(picture[1], /^eth0 -+> vc1 ---> vx0 ==\[vxlan 42: 192\.168\.77\.1 -> 192\.168\.77\.2\]==> tpkb120a0 =+> eth0 =+> vx0 ---> vc2 -+> eth0$/);
});

test('verdict across nodes: the far firewall named with its node; what was read here is not applied to the far node\'s namespaces', () => {
  const { events, summary } = recorded('far-firewall');
  const s = stitch(clone(events), bounds(summary), LOCAL);
  assert.equal(verdictLine(s.events, false, { localNode: LOCAL }), summary.verdict);
  // Both hosts' first namespace has the same inode. A route lookup that failed on the far node's must not
  // be explained by an interface down in this host's.
  const farRoute = events.find((e): e is RouteEvent => e.kind === 'route' && e.node === 'far')!;
  const failed: RouteEvent = { ...structuredClone(farRoute), error: 'no route', oif: null };
  const down = new Map([[farRoute.netns, ['eth7']]]);
  const onlyFar = [failed];
  assert.equal(verdictLine(onlyFar, false, { localNode: LOCAL, down }), `not sent: no route to ${failed.dst} (table ${failed.table}) in namespace host on node far`);
  assert.match(verdictLine([{ ...failed, node: LOCAL }], false, { localNode: LOCAL, down }), /down there: eth7/);
});

test('events of a probe\'s journey, as an agent sends them, pass the check; every kind', () => {
  const kinds = new Set<string>();
  for (const name of ['delivered', 'far-firewall']) {
    for (const e of recorded(name).events) {
      const { node: _node, ...sent } = structuredClone(e) as TraceEvent & { node?: string };
      kinds.add(sent.kind);
      assert.equal(typeof checkJourneyEvent(sent as unknown as Record<string, unknown>), 'object', `${checkJourneyEvent(sent as unknown as Record<string, unknown>)}`);
    }
  }
  assert.deepEqual([...kinds].sort(), ['drop', 'hop', 'netfilter', 'route']);
  const verdict = recorded('far-firewall').events.find((e) => e.kind === 'netfilter')!;
  const { node: _n, ...sent } = structuredClone(verdict) as TraceEvent & { node?: string };
  assert.match(checkJourneyEvent({ ...sent, rule: 42 } as unknown as Record<string, unknown>) as string, /rule/);
  assert.match(checkJourneyEvent({ ...sent, decided_by: 'rumour' } as unknown as Record<string, unknown>) as string, /decided_by/);
  assert.match(checkJourneyEvent({ ...sent, exec: 'x' } as unknown as Record<string, unknown>) as string, /unknown field "exec"/);
});
