import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { CheckpointEvent } from '../../src/events';
import { judgesFromChains, judgesFromLegacy, planCheckpoints } from '../../src/netfilter/judges';
import { netfilterEvents } from '../../src/netfilter/verdicts';
import { parseRuleHandles } from '../../src/netfilter/rule-text';
import { ROUTER, routerRun } from '../fixtures/netfilter';

const row = (e: { netns_name: string | null; dir: string; hook: string; table_family: string; table: string; chain: string; verdict: string; decided_by: string; handle: number | null; backend: string }) =>
  [e.netns_name, e.dir, e.hook, `${e.table_family} ${e.table} ${e.chain}`, e.verdict, e.decided_by, e.backend, e.handle !== null];

test('the recorded router run: every table in order, rules from traces, legacy from checkpoints', () => {
  const { hops, checkpoints, namespaces } = routerRun();
  const events = netfilterEvents(namespaces, checkpoints, hops);
  const { r, b } = ROUTER.roles;
  assert.deepEqual(events.map(row), [
    [r, 'request', 'PREROUTING', 'ip raw PREROUTING', 'ACCEPT', 'rule', 'nftables', true],
    [r, 'request', 'FORWARD', 'ip mangle FORWARD', 'ACCEPT', 'rule', 'nftables', true],
    [r, 'request', 'FORWARD', 'ip filter FORWARD', 'ACCEPT', 'rule', 'nftables', true],
    [r, 'request', 'POSTROUTING', 'ip nat POSTROUTING', 'ACCEPT', 'rule', 'nftables', true],
    [b, 'request', 'INPUT', 'ip filter INPUT', 'ACCEPT', 'passage', 'iptables-legacy', false],
    [b, 'reply', 'OUTPUT', 'ip filter OUTPUT', 'ACCEPT', 'passage', 'iptables-legacy', false],
    [r, 'reply', 'PREROUTING', 'ip raw PREROUTING', 'ACCEPT', 'rule', 'nftables', true],
    [r, 'reply', 'FORWARD', 'ip mangle FORWARD', 'ACCEPT', 'rule', 'nftables', true],
    [r, 'reply', 'FORWARD', 'ip filter FORWARD', 'ACCEPT', 'rule', 'nftables', true],
    [r, 'reply', 'POSTROUTING', 'ip nat POSTROUTING', 'ACCEPT', 'passage', 'nftables', false],
  ]);
  // Same as what tracepkt concluded live, rule texts aside (filled in later from nft).
  assert.deepEqual(events.map((e) => ({ ...e, rule: null })), ROUTER.verdicts.map((e) => ({ ...e, rule: null })));
  // Each verdict lies between the receive and transmit hops of its namespace.
  for (const e of events) {
    const mine = hops.filter((h) => h.netns === e.netns && h.dir === e.dir);
    const rx = mine.find((h) => h.hook === 'netif_receive_skb');
    const tx = mine.find((h) => h.hook === 'net_dev_queue');
    if (rx && e.hook !== 'OUTPUT') assert.ok(e.time_ns > rx.time_ns, `${e.table} after receive`);
    if (tx && e.hook !== 'INPUT') assert.ok(e.time_ns < tx.time_ns, `${e.table} before transmit`);
  }
});

test('a missing checkpoint after a band: that band dropped the packet, nothing after it is reported', () => {
  const { hops, checkpoints, namespaces } = routerRun();
  const router = namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  const forward = router.plans.find((p) => p.hooknum === 2 && p.pf === 2)!;
  // Pretend the request never came out of the filter band (the last FORWARD checkpoint).
  const last = forward.checkpointPriorities.length - 1;
  const cut = checkpoints.filter((c) => !(c.netns === router.netns && c.dir === 'request' && (c.nf_hook > 2 || (c.nf_hook === 2 && c.index === last))));
  const traceless = { ...router, traces: [] }; // and no nftables trace: checkpoints alone
  const events = netfilterEvents([traceless], cut, hops).filter((e) => e.dir === 'request');
  assert.deepEqual(events.map((e) => [e.hook, e.table, e.verdict, e.decided_by]), [
    ['PREROUTING', 'raw', 'ACCEPT', 'passage'],
    ['FORWARD', 'mangle', 'ACCEPT', 'passage'],
    ['FORWARD', 'filter', 'DROP', 'passage'],
  ]);
});

test('two tables in one band: nftables’ traced drop wins, the legacy table is not blamed', () => {
  const { hops, checkpoints, namespaces } = routerRun();
  const router = namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  const judges = [...router.judges, ...judgesFromLegacy(2, ['filter'])];
  const plans = planCheckpoints(judges, 16);
  // Same checkpoints, replanned: the legacy filter table joins the nft filter chain at priority 0.
  const forward = plans.find((p) => p.hooknum === 2 && p.pf === 2)!;
  assert.deepEqual(forward.priorities, [-150, 0]);
  const dropTraces = router.traces.map((t) => (t.table === 'filter' && t.chain === 'FORWARD' && t.verdict === 1 ? { ...t, verdict: 0 } : t));
  const cut = checkpoints.filter((c) => !(c.netns === router.netns && c.dir === 'request' && (c.nf_hook > 2 || (c.nf_hook === 2 && c.index === 2))));
  const events = netfilterEvents([{ ...router, judges, plans, traces: dropTraces }], cut, hops).filter((e) => e.dir === 'request' && e.hook === 'FORWARD');
  assert.deepEqual(events.map((e) => [e.backend, e.table, e.verdict, e.decided_by]), [
    ['nftables', 'mangle', 'ACCEPT', 'rule'],
    ['nftables', 'filter', 'DROP', 'rule'],
  ]);
});

test('without checkpoints (kernels before 6.4) traced decisions are placed by the hops of their namespace', () => {
  const { hops, namespaces } = routerRun();
  const router = namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  const events = netfilterEvents([{ ...router, plans: [] }], [] as CheckpointEvent[], hops).filter((e) => e.dir === 'request');
  assert.deepEqual(events.map((e) => `${e.hook} ${e.table}`), ['PREROUTING raw', 'FORWARD mangle', 'FORWARD filter', 'POSTROUTING nat']);
  const rx = hops.find((h) => h.netns === router.netns && h.dir === 'request' && h.hook === 'netif_receive_skb')!;
  const tx = hops.find((h) => h.netns === router.netns && h.dir === 'request' && h.hook === 'net_dev_queue')!;
  for (const e of events) assert.ok(rx.time_ns < e.time_ns && e.time_ns < tx.time_ns);
});

test('rule texts: `nft -s -a list chain` lines by handle, chain and table lines left out', () => {
  const listing = ['table ip filter { # handle 2', '\tchain FORWARD { # handle 1', '\t\ttype filter hook forward priority filter; policy accept;', '\t\tmeta l4proto icmp counter drop # handle 3', '\t\tct state established accept # handle 14', '\t}', '}'].join('\n');
  assert.deepEqual([...parseRuleHandles(listing)], [
    [3, 'meta l4proto icmp counter drop'],
    [14, 'ct state established accept'],
  ]);
});

test('judges from chains: the recorded router has exactly the four iptables-nft base chains', () => {
  const router = ROUTER.namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  assert.deepEqual(router.judges.map((j) => `${j.table} ${j.chain} ${j.priority}`).sort(), ['filter FORWARD 0', 'mangle FORWARD -150', 'nat POSTROUTING 100', 'raw PREROUTING -300']);
  assert.deepEqual(judgesFromChains([], 'x'), []);
});

test('without checkpoints, iptables-legacy tables report their own verdicts (fexit), at the time they gave them', () => {
  const { hops, namespaces } = routerRun();
  const { b } = ROUTER.roles;
  const inB = namespaces.find((ns) => ns.netnsName === b)!;
  const request = hops.find((h) => h.netns === inB.netns && h.dir === 'request')!;
  const verdict = (table: string, nf_hook: number, code: number) => ({ ...request, kind: 'xt-table' as const, nf_hook, nf_pf: 2, table, priority: 0, verdict: code, time_ns: request.time_ns + 10 });
  const events = netfilterEvents([{ ...inB, traces: [] }], [], hops, [verdict('filter', 1, 0)]);
  assert.deepEqual(events.map(row), [[b, 'request', 'INPUT', 'ip filter INPUT', 'DROP', 'table', 'iptables-legacy', false]]);
  assert.equal(events[0].time_ns, request.time_ns + 10);
  // A table of a namespace not traced is nobody's verdict here.
  assert.deepEqual(netfilterEvents([{ ...inB, traces: [], netns: 1 }], [], hops, [verdict('filter', 1, 0)]), []);
});
