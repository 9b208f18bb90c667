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

test('stitch: a clock offset wrong by more than the wire is fast still gives the order of cause, and the round trip without it', () => {
  const { events, summary } = recorded('delivered');
  const truth = stitch(clone(events), bounds(summary), LOCAL);
  for (const skew of [-20e6, -5e6, 5e6, 20e6]) {
    // The far node's times as a wrong offset would have converted them.
    const skewed = clone(events).map((e) => (e.node === 'far' ? { ...e, time_ns: e.time_ns + skew } : e));
    const s = stitch(skewed, bounds(summary), LOCAL);
    assert.deepEqual(s.events.map(where), truth.events.map(where), `skew ${skew / 1e6} ms`);
    const [there, back] = s.crossings;
    assert.equal(there.latency_ns, truth.crossings[0].latency_ns + skew);
    assert.equal(back.latency_ns, truth.crossings[1].latency_ns - skew);
    // Across the wire and back less the time there: the same to the nanosecond, whatever the offset.
    assert.deepEqual(s.roundTrips, truth.roundTrips);
    // Moved only when the clocks would have put a receive before its transmit, and then within the crossings' bounds.
    const shift = s.shifts.get('far') ?? 0;
    assert.equal(shift !== 0, skew < -truth.crossings[0].latency_ns || skew > truth.crossings[1].latency_ns, `skew ${skew / 1e6} ms: shift ${shift}`);
  }
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
