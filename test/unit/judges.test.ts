import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { judgesFromChains, judgesFromLegacy, judgesInBand, planCheckpoints } from '../../src/netfilter/judges';

test('nft base chains become judges; inet sees both families; tracepkt\'s tables (this run\'s and any other\'s) and non-IP families are left out', () => {
  const judges = judgesFromChains(
    [
      { family: 2, table: 'filter', name: 'FORWARD', hooknum: 2, priority: 0 },
      { family: 1, table: 'fw', name: 'input', hooknum: 1, priority: 10 },
      { family: 2, table: 'filter', name: 'DOCKER' }, // not a base chain
      { family: 7, table: 'br', name: 'fwd', hooknum: 2, priority: 0 }, // bridge family
      { family: 1, table: 'tracepkt_0a1b2c3d', name: 'pre', hooknum: 0, priority: -2147483647 }, // ours
      { family: 1, table: 'tracepkt_ffee0011', name: 'pre', hooknum: 0, priority: -2147483647 }, // another run's
    ],
  );
  assert.deepEqual(judges.map((j) => [j.tableFamily, j.table, j.chain, j.hooknum, j.priority, j.pfs]), [
    ['ip', 'filter', 'FORWARD', 2, 0, [2]],
    ['inet', 'fw', 'input', 1, 10, [2, 10]],
  ]);
});

test('iptables-legacy tables sit at their standard hooks and priorities', () => {
  const judges = judgesFromLegacy(10, ['filter', 'nat']);
  assert.deepEqual(judges.map((j) => [j.tableFamily, j.table, j.chain, j.priority]), [
    ['ip6', 'filter', 'INPUT', 0],
    ['ip6', 'filter', 'FORWARD', 0],
    ['ip6', 'filter', 'OUTPUT', 0],
    ['ip6', 'nat', 'PREROUTING', -100],
    ['ip6', 'nat', 'INPUT', 100],
    ['ip6', 'nat', 'OUTPUT', -100],
    ['ip6', 'nat', 'POSTROUTING', 100],
  ]);
  assert.ok(judges.every((j) => j.backend === 'iptables-legacy' && j.pfs[0] === 10));
});

test('checkpoints: one at the entry, one after each distinct priority, per family and hook', () => {
  const judges = [
    ...judgesFromLegacy(2, ['filter', 'mangle']),
    ...judgesFromChains([{ family: 1, table: 'fw', name: 'fwd', hooknum: 2, priority: 0 }]),
  ];
  const plans = planCheckpoints(judges, 16);
  const forward4 = plans.find((p) => p.pf === 2 && p.hooknum === 2)!;
  assert.deepEqual(forward4.priorities, [-150, 0]);
  assert.deepEqual(forward4.checkpointPriorities, [-2147483646, -149, 1], 'entry just after our own trace chain');
  assert.deepEqual(judgesInBand(judges, forward4, 2).map((j) => `${j.backend} ${j.table}`), ['iptables-legacy filter', 'nftables fw']);
  const forward6 = plans.find((p) => p.pf === 10 && p.hooknum === 2)!;
  assert.deepEqual(forward6.priorities, [0], 'IPv6 sees only the inet chain');
  assert.deepEqual(plans.map((p) => `${p.pf}/${p.hooknum}`), ['2/0', '2/1', '2/2', '2/3', '2/4', '10/2']);
});

test('more priorities than checkpoint programs: the plan keeps the first ones', () => {
  const chains = Array.from({ length: 20 }, (_, i) => ({ family: 2, table: `t${i}`, name: 'c', hooknum: 1, priority: i * 10 }));
  const [plan] = planCheckpoints(judgesFromChains(chains), 16);
  assert.equal(plan.priorities.length, 15);
  assert.equal(plan.checkpointPriorities.length, 16);
});
