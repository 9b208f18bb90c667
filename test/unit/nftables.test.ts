import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseAttrs, parseMessages } from '../../src/netfilter/netlink';
import { batch, decodeChain, msgType, newBaseChain, newRule, newTable, NFT_MSG, traceMarkerExpressions, TRACE_TYPE } from '../../src/netfilter/nftables';
import { tracedPacket } from '../../src/netfilter/verdicts';
import { NamespaceWatch } from '../../src/netfilter/watch';
import { ROUTER } from '../fixtures/netfilter';

test('a batch: BATCH_BEGIN, requests with ACK and consecutive sequence numbers, BATCH_END', () => {
  const b = batch(40, [newTable(1, 'tracepkt_x', 2), newBaseChain(1, 'tracepkt_x', 'pre', 0, -5), newRule(1, 'tracepkt_x', 'pre', [])]);
  const msgs = parseMessages(b);
  assert.deepEqual(msgs.map((m) => m.type), [16, msgType(NFT_MSG.NEWTABLE), msgType(NFT_MSG.NEWCHAIN), msgType(NFT_MSG.NEWRULE), 17]);
  assert.deepEqual(msgs.map((m) => m.seq), [40, 41, 42, 43, 44]);
  for (const m of msgs.slice(1, 4)) assert.ok(m.flags & 4, 'each request is acknowledged');
  // The batch is addressed to nf_tables (subsystem 10) in nfgenmsg's resource id.
  assert.equal(msgs[0].payload.readUInt16BE(2), 10);
  // The table asks for the owner flag; the chain sits at prerouting, priority -5.
  const table = parseAttrs(msgs[1].payload, 4);
  assert.equal(table.get(2)!.readUInt32BE(0), 2);
  const chain = decodeChain(msgs[2]);
  assert.deepEqual(chain, { family: 1, table: 'tracepkt_x', name: 'pre', hooknum: 0, priority: -5 });
});

test('the trace rule: l4proto, the marker at its transport-header offset, nftrace set to 1', () => {
  const marker = Buffer.from('0102030405060708', 'hex');
  const exprs = traceMarkerExpressions(58, 24, marker).map((e) => {
    const a = parseAttrs(e);
    return { name: a.get(1)!.toString('utf8', 0, a.get(1)!.length - 1), data: parseAttrs(a.get(2)!) };
  });
  assert.deepEqual(exprs.map((e) => e.name), ['meta', 'cmp', 'payload', 'cmp', 'immediate', 'meta']);
  assert.equal(exprs[0].data.get(2)!.readUInt32BE(0), 16, 'meta key l4proto');
  assert.deepEqual(parseAttrs(exprs[1].data.get(3)!).get(1), Buffer.from([58]));
  assert.deepEqual([2, 3, 4].map((k) => exprs[2].data.get(k)!.readUInt32BE(0)), [2, 24, 8], 'transport header + 24, 8 bytes');
  assert.deepEqual(parseAttrs(exprs[3].data.get(3)!).get(1), marker);
  assert.deepEqual(parseAttrs(exprs[4].data.get(2)!).get(1), Buffer.from([1]));
  assert.equal(exprs[5].data.get(2)!.readUInt32BE(0), 12, 'meta key nftrace');
  assert.equal(exprs[5].data.get(3)!.readUInt32BE(0), 1, 'from register 1');
});

test('recorded trace messages decode: our chains, the user’s rules, verdicts and packet headers', () => {
  const router = ROUTER.namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  const watch = new NamespaceWatch({ inode: router.netns, name: router.netnsName, path: null });
  for (const d of router.datagrams) watch.acceptDatagram(Buffer.from(d, 'base64'));
  const traces = watch.traces;
  const ours = traces.filter((t) => t.table.startsWith('tracepkt_'));
  const theirs = traces.filter((t) => !t.table.startsWith('tracepkt_'));
  assert.ok(ours.every((t) => t.family === 1 && t.chain === 'pre'), 'forwarded packets meet our prerouting chain only');
  assert.deepEqual(
    theirs.filter((t) => t.type === TRACE_TYPE.RULE && t.verdict === 1).map((t) => `${t.table} ${t.chain}`),
    ['raw PREROUTING', 'mangle FORWARD', 'filter FORWARD', 'nat POSTROUTING', 'raw PREROUTING', 'mangle FORWARD', 'filter FORWARD'],
  );
  for (const t of theirs) assert.equal(t.family, 2);
  // Headers come with the first message of each chain's evaluation, not with every message.
  const firstOfEachChain = traces.filter((t, i) => i === 0 || traces[i - 1].id !== t.id || traces[i - 1].chain !== t.chain);
  assert.ok(firstOfEachChain.every((t) => tracedPacket(t) !== null));
  const packets = traces.map(tracedPacket).filter((p) => p !== null);
  assert.deepEqual(new Set(packets.map((p) => `${p!.dir} ${p!.src} ${p!.dst} seq ${p!.icmp_seq}`)), new Set(['request 10.0.1.2 10.0.2.2 seq 1', 'reply 10.0.2.2 10.0.1.2 seq 1']));
  // One trace id per packet in this namespace: the request and the reply.
  assert.equal(new Set(traces.map((t) => t.id)).size, 2);
});

test('set-up answers are set apart from traces', () => {
  const router = ROUTER.namespaces.find((n) => n.netnsName === ROUTER.roles.r)!;
  const watch = new NamespaceWatch({ inode: router.netns, name: router.netnsName, path: null });
  const others = router.datagrams.flatMap((d) => watch.acceptDatagram(Buffer.from(d, 'base64')));
  assert.ok(others.some((m) => m.type === msgType(NFT_MSG.NEWCHAIN)), 'the chain dump');
  assert.ok(others.some((m) => m.type === 2), 'acknowledgements');
  assert.ok(others.every((m) => m.type !== msgType(NFT_MSG.TRACE)));
  // Lost trace messages (ENOBUFS) arrive as empty records and are counted.
  watch.accept(Buffer.from([0, 0, 0, 0]));
  assert.equal(watch.lostTraces, 1);
});
