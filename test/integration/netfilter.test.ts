/**
 * Netfilter on the journey, in real namespaces with real rules: which
 * tables judged the probe, in which order, with which verdict and rule; and
 * the user's rulesets exactly as they were, after the run and after SIGKILL.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { NetfilterEvent } from '../../src/events';
import type { Lab } from '../../src/lab/lab';
import { bridgeLab, eventually, finished, hops, kernelAtLeast, routerLab, runCli, startCli, withLab, type CliRun } from './helpers';
import { NO_REASON_GIVEN } from '../../src/events';

/** Every namespace's ruleset without counters (the probe itself moves those). */
function rulesets(lab: Lab, namespaces: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ns of namespaces) out[ns] = lab.exec(ns, 'nft', '-s', 'list', 'ruleset');
  out.host = execFileSync('nft', ['-s', 'list', 'ruleset'], { encoding: 'utf8' });
  return out;
}

function verdicts(run: CliRun): NetfilterEvent[] {
  const lines = run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return lines.filter((l) => l.kind === 'netfilter');
}

/** [namespace, hook, family table chain, verdict, decided_by, rule] per verdict. */
/** Whether this kernel has BPF netfilter links (6.4+): the run says so in its start line when not. */
function checkpointsRan(run: CliRun): boolean {
  const start = run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.kind === 'start');
  return !start.notes.some((n: string) => /no BPF netfilter links/.test(n));
}

function judged(events: NetfilterEvent[]): (string | null)[][] {
  return events.map((e) => [e.netns_name, e.hook, `${e.table_family} ${e.table} ${e.chain}`, e.verdict, e.decided_by, e.rule]);
}

/** How nft prints a rule of a chain, asked of nft: the test's own source of truth. */
function ruleText(lab: Lab, ns: string, family: string, table: string, chain: string, matching: RegExp): string {
  const listing = lab.exec(ns, 'nft', '-s', 'list', 'chain', family, table, chain);
  const line = listing.split('\n').map((l) => l.trim()).find((l) => matching.test(l));
  assert.ok(line, `a rule matching ${matching} in ${family} ${table} ${chain}:\n${listing}`);
  return line;
}

/** Runs a test body in a router lab, checking the rulesets come out as they went in. */
function routerTest(name: string, body: (lab: Lab, topo: ReturnType<typeof routerLab>) => Promise<void>) {
  test(name, () =>
    withLab(async (lab) => {
      const topo = routerLab(lab);
      await body(lab, topo);
    }),
  );
}

async function traced(lab: Lab, topo: { a: string; r: string; b: string }, args: string[]): Promise<CliRun> {
  const before = rulesets(lab, [topo.a, topo.r, topo.b]);
  const run = await runCli(['--json', '--timeout', '1', '--from', topo.a, ...args]);
  assert.deepEqual(rulesets(lab, [topo.a, topo.r, topo.b]), before, 'every ruleset as it was');
  return run;
}

routerTest('iptables (nft backend) DROP in the router’s FORWARD chain: the journey ends there, the rule is named', async (lab, topo) => {
  lab.exec(topo.r, 'iptables', '-A', 'FORWARD', '-p', 'icmp', '-j', 'DROP');
  const rule = ruleText(lab, topo.r, 'ip', 'filter', 'FORWARD', /drop$/);
  const run = await traced(lab, topo, [topo.v4]);
  assert.equal(run.status, 1, run.stderr);
  assert.deepEqual(hops(run.events), [
    [topo.a, 'eth0', 'request', 'net_dev_queue'],
    [topo.r, 'ra', 'request', 'netif_receive_skb'],
  ]);
  assert.deepEqual(judged(verdicts(run)), [[topo.r, 'FORWARD', 'ip filter FORWARD', 'DROP', 'rule', rule]]);
  // After the verdict, only the kernel freeing the packet, as netfilter's drop (before 5.17 the
  // kernel names no reason: the place, netfilter's hook loop, says it).
  const [verdict, freed] = run.stdout.trim().split('\n').slice(-3, -1).map((l) => JSON.parse(l));
  assert.equal(verdict.kind, 'netfilter');
  // The place: nft_do_chain on recent kernels (6.12, the build machines'); on 6.1 nf_hook_slow frees it on the
  // verdict (bpftrace's ksym(args->location) on kfree_skb says the same there).
  const place = freed.location.replace(/\+0x[0-9a-f]+$/, '');
  assert.deepEqual([freed.kind, freed.netns_name, freed.reason], ['drop', topo.r, kernelAtLeast(5, 17) ? 'NETFILTER_DROP' : NO_REASON_GIVEN]);
  assert.ok(kernelAtLeast(5, 17) ? ['nft_do_chain', 'nf_hook_slow'].includes(place) : place === 'nf_hook_slow', freed.location);
  assert.equal(verdicts(run)[0].backend, 'nftables');
  assert.equal(typeof verdicts(run)[0].handle, 'number');
  assert.deepEqual(run.summary?.stopped_by, {
    netns: verdicts(run)[0].netns,
    netns_name: topo.r,
    hook: 'FORWARD',
    table_family: 'ip',
    table: 'filter',
    chain: 'FORWARD',
    verdict: 'DROP',
    rule,
    handle: verdicts(run)[0].handle,
    decided_by: 'rule',
  });

  const text = await runCli(['--timeout', '1', '--from', topo.a, topo.v4]);
  assert.equal(text.status, 1);
  assert.match(text.stdout, new RegExp(`^Dropped by ip filter FORWARD in namespace ${topo.r}: rule \`${rule.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\`\\.$`, 'm'));
});

routerTest('ip6tables DROP in the router’s FORWARD chain (IPv6)', async (lab, topo) => {
  lab.exec(topo.r, 'ip6tables', '-A', 'FORWARD', '-p', 'ipv6-icmp', '--icmpv6-type', 'echo-request', '-j', 'DROP');
  const rule = ruleText(lab, topo.r, 'ip6', 'filter', 'FORWARD', /drop$/);
  const run = await traced(lab, topo, [topo.v6]);
  assert.equal(run.status, 1, run.stderr);
  assert.deepEqual(judged(verdicts(run)), [[topo.r, 'FORWARD', 'ip6 filter FORWARD', 'DROP', 'rule', rule]]);
  assert.equal(verdicts(run)[0].family, 6);
});

routerTest('native nftables: a drop rule in an input chain of the target namespace', async (lab, topo) => {
  lab.exec(topo.b, 'nft', 'add table inet fw');
  lab.exec(topo.b, 'nft', 'add chain inet fw input { type filter hook input priority 0; policy accept; }');
  lab.exec(topo.b, 'nft', 'add rule inet fw input meta l4proto icmp drop');
  const run = await traced(lab, topo, [topo.v4]);
  assert.equal(run.status, 1, run.stderr);
  assert.deepEqual(hops(run.events).at(-1), [topo.b, 'eth0', 'request', 'netif_receive_skb']);
  assert.deepEqual(judged(verdicts(run)), [[topo.b, 'INPUT', 'inet fw input', 'DROP', 'rule', 'meta l4proto icmp drop']]);
});

routerTest('a chain policy drop is told apart from a rule drop', async (lab, topo) => {
  lab.exec(topo.b, 'nft', 'add table inet fw');
  lab.exec(topo.b, 'nft', 'add chain inet fw input { type filter hook input priority 0; policy drop; }');
  lab.exec(topo.b, 'nft', 'add rule inet fw input tcp dport 22 accept'); // does not match the probe
  const run = await traced(lab, topo, [topo.v4]);
  assert.equal(run.status, 1, run.stderr);
  assert.deepEqual(judged(verdicts(run)), [[topo.b, 'INPUT', 'inet fw input', 'DROP', 'policy', null]]);
  const text = await runCli(['--timeout', '1', '--from', topo.a, topo.v4]);
  assert.match(text.stdout, new RegExp(`^Dropped by inet fw input \\(hook INPUT\\) in namespace ${topo.b}: chain policy drop\\.$`, 'm'));
});

routerTest('iptables policy DROP on FORWARD (iptables-nft) is a policy drop of ip filter FORWARD', async (lab, topo) => {
  lab.exec(topo.r, 'iptables', '-P', 'FORWARD', 'DROP');
  const run = await traced(lab, topo, [topo.v4]);
  assert.equal(run.status, 1, run.stderr);
  assert.deepEqual(judged(verdicts(run)), [[topo.r, 'FORWARD', 'ip filter FORWARD', 'DROP', 'policy', null]]);
});

routerTest('iptables-legacy DROP: the table that stopped the probe is found by the checkpoints, or before 6.4 by its own verdict (fexit)', async (lab, topo) => {
  lab.exec(topo.r, 'iptables-legacy', '-A', 'FORWARD', '-p', 'icmp', '-j', 'DROP');
  try {
    const run = await traced(lab, topo, [topo.v4]);
    assert.equal(run.status, 1, run.stderr);
    if (!kernelAtLeast(5, 11)) {
      // Before 5.11 modules carry no BTF: fexit cannot attach to ipt_do_table, and nothing names the table.
      // The run says so, and the drop is the kernel's own word: freed by netfilter's hook loop in the router.
      assert.deepEqual(verdicts(run), []);
      const start = run.lines.find((l) => l.kind === 'start');
      assert.ok(start?.notes.some((n: string) => /iptables-legacy tables are not seen/.test(n)), JSON.stringify(start?.notes));
      const drop = run.lines.find((l) => l.kind === 'drop');
      assert.deepEqual([drop?.netns_name, drop?.location.replace(/\+0x[0-9a-f]+$/, '')], [topo.r, 'nf_hook_slow']);
      return;
    }
    const how = checkpointsRan(run) ? 'passage' : 'table';
    assert.deepEqual(judged(verdicts(run)), [[topo.r, 'FORWARD', 'ip filter FORWARD', 'DROP', how, null]]);
    assert.equal(verdicts(run)[0].backend, 'iptables-legacy');
  } finally {
    lab.exec(topo.r, 'iptables-legacy', '-F'); // legacy tables live in the namespace; it goes anyway
  }
});

routerTest('an ACCEPT path shows every table it crossed, in order: raw, mangle, nat, filter', async (lab, topo) => {
  lab.exec(topo.r, 'iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'icmp', '-j', 'ACCEPT');
  lab.exec(topo.r, 'iptables', '-t', 'mangle', '-A', 'FORWARD', '-p', 'icmp', '-j', 'ACCEPT');
  lab.exec(topo.r, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-p', 'icmp', '-j', 'ACCEPT');
  // A conntrack match turns connection tracking on, without which nat chains never run.
  lab.exec(topo.r, 'iptables', '-A', 'FORWARD', '-p', 'icmp', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED', '-j', 'ACCEPT');
  const accept = (table: string, chain: string) => ruleText(lab, topo.r, 'ip', table, chain, /accept$/);
  const run = await traced(lab, topo, [topo.v4]);
  assert.equal(run.status, 0, run.stderr);
  const r = topo.r;
  assert.deepEqual(judged(verdicts(run).filter((e) => e.dir === 'request')), [
    [r, 'PREROUTING', 'ip raw PREROUTING', 'ACCEPT', 'rule', accept('raw', 'PREROUTING')],
    [r, 'FORWARD', 'ip mangle FORWARD', 'ACCEPT', 'rule', accept('mangle', 'FORWARD')],
    [r, 'FORWARD', 'ip filter FORWARD', 'ACCEPT', 'rule', accept('filter', 'FORWARD')],
    [r, 'POSTROUTING', 'ip nat POSTROUTING', 'ACCEPT', 'rule', accept('nat', 'POSTROUTING')],
  ]);
  // The reply belongs to the connection: nat chains do not run for it. Only checkpoints (6.4+)
  // see it pass the nat chain's place; without them that line is missing, and the notes say why.
  assert.deepEqual(judged(verdicts(run).filter((e) => e.dir === 'reply')), [
    [r, 'PREROUTING', 'ip raw PREROUTING', 'ACCEPT', 'rule', accept('raw', 'PREROUTING')],
    [r, 'FORWARD', 'ip mangle FORWARD', 'ACCEPT', 'rule', accept('mangle', 'FORWARD')],
    [r, 'FORWARD', 'ip filter FORWARD', 'ACCEPT', 'rule', accept('filter', 'FORWARD')],
    ...(checkpointsRan(run) ? [[r, 'POSTROUTING', 'ip nat POSTROUTING', 'ACCEPT', 'passage', null]] : []),
  ]);
  // Verdicts sit between the router's receive and transmit hops.
  const times = (pred: (e: { kind: string; dir: string; netns_name: string | null; hook: string }) => boolean) =>
    run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter(pred).map((e) => e.time_ns as number);
  const [rx] = times((e) => e.kind === 'hop' && e.dir === 'request' && e.netns_name === r && e.hook === 'netif_receive_skb');
  const [tx] = times((e) => e.kind === 'hop' && e.dir === 'request' && e.netns_name === r && e.hook === 'net_dev_queue');
  for (const t of times((e) => e.kind === 'netfilter' && e.dir === 'request')) assert.ok(rx < t && t < tx);
});

test('SIGKILL mid-trace: our tables vanish with us, every ruleset is as it was', () =>
  withLab(async (lab) => {
    const topo = bridgeLab(lab);
    lab.exec(topo.ctr, 'nft', 'add table inet mine');
    lab.exec(topo.ctr, 'nft', 'add chain inet mine input { type filter hook input priority 0; policy accept; }');
    lab.exec(topo.ctr, 'nft', 'add rule inet mine input meta l4proto icmp counter accept');
    const namespaces = [topo.host, topo.ctr];
    const before = rulesets(lab, namespaces);
    const child = startCli(['--json', '-c', '500', '--from', topo.host, topo.v4]);
    const done = finished(child);
    const start = await new Promise<Record<string, unknown>>((resolve) => child.stdout!.once('data', (s: Buffer) => resolve(JSON.parse(s.toString().split('\n')[0]))));
    assert.equal(start.kind, 'start');
    const ours = (ns: string) => lab.exec(ns, 'nft', 'list', 'tables').split('\n').filter((l) => /tracepkt_/.test(l));
    for (const ns of namespaces) assert.equal(ours(ns).length, 1, `our table is in ${ns} while tracing`);
    // What we encoded by hand, as nft reads it back from the kernel.
    const table = lab.exec(topo.host, 'nft', 'list', ...ours(topo.host)[0].trim().split(' '));
    // The owner flag (5.12+) makes the table the kernel's to remove when we die.
    if (kernelAtLeast(5, 12)) assert.match(table, /flags owner/);
    else assert.doesNotMatch(table, /flags owner/);
    for (const chain of ['pre', 'out']) {
      assert.match(table, new RegExp(`chain ${chain} \\{\\s+type filter hook ${chain === 'pre' ? 'prerouting' : 'output'} priority -2147483647; policy accept;\\s+meta l4proto icmp @th,192,64 0x[0-9a-f]{1,16} meta nftrace set 1\\s+meta l4proto ipv6-icmp @th,192,64 0x[0-9a-f]{1,16} meta nftrace set 1(\\s+meta l4proto (udp|gre|ipencap|ipv6) @th,\\d+,64 0x[0-9a-f]{1,16} meta nftrace set 1){12}\\s+\\}`));
      // The marker in tunnels too: behind VXLAN/Geneve (UDP), GRE with and without key and Ethernet, IP in IP.
    }
    child.kill('SIGKILL');
    assert.equal((await done).signal, 'SIGKILL');
    if (!kernelAtLeast(5, 12)) {
      // Without the owner flag the tables outlive a SIGKILL: `tracepkt cleanup` removes them, and only them.
      assert.ok(namespaces.every((ns) => ours(ns).length === 1), 'left behind by the kill');
      const cleanup = await runCli(['cleanup']);
      assert.equal(cleanup.status, 0, cleanup.stderr);
    }
    assert.ok(await eventually(() => namespaces.every((ns) => ours(ns).length === 0)), 'our tables are gone');
    assert.deepEqual(rulesets(lab, namespaces), before);
  }));
