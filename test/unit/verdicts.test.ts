import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { CheckpointEvent, DropEvent } from '../../src/events';
import { judgesFromChains, judgesFromLegacy, planCheckpoints } from '../../src/netfilter/judges';
import { netfilterEvents, netfilterFindings, ownTraces } from '../../src/netfilter/verdicts';
import { verdictLine } from '../../src/verdict';
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
  // Same as what tracepkt concluded live, rule texts aside (filled in later from nft); recorded
  // before verdicts said whether they judged a tunnel's outer packet (none of these did).
  assert.deepEqual(events.map((e) => ({ ...e, rule: null })), ROUTER.verdicts.map((e) => ({ ...e, rule: null, tunnel: null })));
  // Each verdict lies between the receive and transmit hops of its namespace.
  for (const e of events) {
    const mine = hops.filter((h) => h.netns === e.netns && h.dir === e.dir);
    const rx = mine.find((h) => h.hook === 'netif_receive_skb');
    const tx = mine.find((h) => h.hook === 'net_dev_queue');
    if (rx && e.hook !== 'OUTPUT') assert.ok(e.time_ns > rx.time_ns, `${e.table} after receive`);
    if (tx && e.hook !== 'INPUT') assert.ok(e.time_ns < tx.time_ns, `${e.table} before transmit`);
  }
});

test('a band entered and not left, with nothing to say why: no table is blamed, the gap is told', () => {
  const { hops, checkpoints, namespaces } = routerRun();
  const router = namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  const forward = router.plans.find((p) => p.hooknum === 2 && p.pf === 2)!;
  // Pretend the request never came out of the filter band (the last FORWARD checkpoint).
  const last = forward.checkpointPriorities.length - 1;
  const cut = checkpoints.filter((c) => !(c.netns === router.netns && c.dir === 'request' && (c.nf_hook > 2 || (c.nf_hook === 2 && c.index === last))));
  const traceless = { ...router, traces: [] }; // and no nftables trace: checkpoints alone
  const { events, gaps } = netfilterFindings([traceless], cut, hops);
  assert.deepEqual(events.filter((e) => e.dir === 'request').map((e) => [e.hook, e.table, e.verdict, e.decided_by]), [
    ['PREROUTING', 'raw', 'ACCEPT', 'passage'],
    ['FORWARD', 'mangle', 'ACCEPT', 'passage'],
  ]);
  assert.deepEqual(gaps.map((g) => [g.netns_name, g.dir, g.hook, g.tables]), [[ROUTER.roles.r, 'request', 'FORWARD', ['ip filter FORWARD']]]);
  // The journey as it would be had it stopped there: the hops up to the band.
  const seen = hops.filter((h) => h.dir === 'request' && h.time_ns <= gaps[0].time_ns);
  assert.match(verdictLine(seen, false, { gaps }), /^no reply: last seen in namespace .* entering ip filter FORWARD at FORWARD; it did not come out, and nothing recorded a drop there/);
});

test('an iptables-legacy table is blamed for a drop only when the kernel freed the packet there as netfilter’s', () => {
  const { hops, checkpoints, namespaces } = routerRun();
  const router = namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  // The router's filter table as iptables-legacy would have it: no trace names its rules.
  const judges = router.judges.map((j) => (j.table === 'filter' ? { ...j, backend: 'iptables-legacy' as const } : j));
  const forward = router.plans.find((p) => p.hooknum === 2 && p.pf === 2)!;
  const last = forward.checkpointPriorities.length - 1;
  const cut = checkpoints.filter((c) => !(c.netns === router.netns && c.dir === 'request' && (c.nf_hook > 2 || (c.nf_hook === 2 && c.index === last))));
  const entered = cut.filter((c) => c.netns === router.netns && c.dir === 'request' && c.nf_hook === 2).at(-1)!;
  const ns = { ...router, judges, traces: [] };
  const freed = (reason: string): DropEvent => ({ ...hops[0], kind: 'drop', netns: router.netns, skb: entered.skb, time_ns: entered.time_ns + 10, reason, reason_code: 0, location: 'nf_hook_slow+0x9d' });
  const blamed = (drop: DropEvent) => netfilterFindings([ns], cut, [...hops, drop]).events.filter((e) => e.dir === 'request' && e.hook === 'FORWARD').map((e) => [e.table, e.verdict, e.backend]);
  assert.deepEqual(blamed(freed('NETFILTER_DROP')), [['mangle', 'ACCEPT', 'nftables'], ['filter', 'DROP', 'iptables-legacy']]);
  assert.deepEqual(blamed(freed('NOT_SPECIFIED')), [['mangle', 'ACCEPT', 'nftables']], 'freed otherwise (nf_queue without a listener, say): not the table');
});

test('trace messages of other tracepkt runs, and of packets others marked, are not ours', () => {
  const base = { family: 2, chain: 'FORWARD', handle: 7, verdict: 1, jumpTo: null, policy: null, nfproto: 2, networkHeader: null, transportHeader: null, iif: null, oif: null };
  const msg = (id: number, table: string, type: number, chain = 'pre', handle: number | null = 7) => ({ ...base, id, table, chain, type, handle });
  // As 6.18 sends them: a tracepkt chain's marking rule (with its handle), the chain's end (a rule
  // message without one), its policy; then the user's chains.
  const chain = (id: number, table: string, matched: boolean) => [...(matched ? [msg(id, table, 3)] : []), msg(id, table, 3, 'pre', null), msg(id, table, 1)];
  const traces = [
    ...chain(1, 'tracepkt_0000000a', true), ...chain(1, 'tracepkt_0000000b', false), msg(1, 'filter', 3, 'FORWARD'), // ours: our rule marked it
    ...chain(2, 'tracepkt_0000000b', true), ...chain(2, 'tracepkt_0000000a', false), msg(2, 'filter', 3, 'FORWARD'), // another run's
    ...chain(3, 'tracepkt_0000000a', false), msg(3, 'filter', 3, 'FORWARD'), // marked by someone else before our chain ran
    ...chain(1, 'tracepkt_0000000b', true), msg(1, 'filter', 3, 'FORWARD'), // id 1 reused by another run's packet
  ];
  assert.deepEqual(ownTraces(traces, 'tracepkt_0000000a').map((t) => [t.id, t.table]), [[1, 'filter']]);

  // A bridge hands the packet up to its IP stack: INPUT's messages get another id (the input
  // interface changed), no tracepkt table speaks for it; the headers dumped say it is ours.
  const ip = Buffer.from('4500005400004000400100000a0001020a000202', 'hex'); // 10.0.1.2 -> 10.0.2.2, ICMP
  const echo = (seq: number) => Buffer.from(`08000000002a${seq.toString(16).padStart(4, '0')}0000000000000000`, 'hex');
  const dumped = (id: number, table: string, type: number, chain: string, seq: number, handle: number | null = 7) => ({ ...msg(id, table, type, chain, handle), networkHeader: ip, transportHeader: echo(seq) });
  const bridged = [
    dumped(5, 'tracepkt_0000000a', 3, 'pre', 1), msg(5, 'tracepkt_0000000a', 1), dumped(5, 'filter', 3, 'PREROUTING', 1),
    dumped(6, 'filter', 3, 'INPUT', 1), // the same echo, another id: ours
    dumped(7, 'filter', 3, 'INPUT', 2), // another echo nobody of ours marked: not ours
  ];
  assert.deepEqual(ownTraces(bridged, 'tracepkt_0000000a').map((t) => [t.id, t.chain]), [[5, 'PREROUTING'], [6, 'INPUT']]);
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
  assert.deepEqual(judgesFromChains([]), []);
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
