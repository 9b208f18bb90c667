/** Conntrack entries: decoded from recorded and edited records, named, shortened and said in verdicts. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeBatch } from '../../src/decode';
import { CtPresence, HOP } from '../../src/bpf/layout';
import { conntrackShort, describeConntrack, natOf, stateOf, statusNames } from '../../src/conntrack';
import type { DropEvent, HopEvent, KernelEvent, NetfilterEvent } from '../../src/events';
import { dropSentence, verdictLine } from '../../src/verdict';
import { fixture } from '../fixtures';

/** The recorded ping's first hop (docker0, the demo host's transmit: its nat table makes conntrack run there), with its length. */
const firstHop = () => Buffer.from(fixture('demo-ipv4.batch').subarray(0, 4 + HOP.$size));
const decodeOne = (rec: Buffer) => {
  const events: KernelEvent[] = [];
  decodeBatch(rec, (e) => events.push(e));
  return events[0] as HopEvent;
};
const C = HOP.ct;

test('the recorded ping’s entry where it left the demo host: new, original direction, the echo identifier as its port, no NAT', () => {
  const ev = decodeOne(firstHop());
  assert.equal(ev.ifname, 'docker0');
  assert.deepEqual(ev.conntrack, {
    state: 'new',
    direction: 'original',
    zone: 0,
    mark: 0,
    proto: 1,
    original: { src: '172.17.0.1', dst: '172.17.0.2', sport: ev.icmp_id, dport: 0x0800 },
    reply: { src: '172.17.0.2', dst: '172.17.0.1', sport: ev.icmp_id, dport: 0 },
    status: ['confirmed', 'src_nat_done', 'dst_nat_done'],
    nat: null,
  });
  assert.equal(conntrackShort(ev.conntrack!), 'ct new');
});

test('an edited record: a reply through a DNAT entry in zone 5 with a mark; untracked; unreadable; none', () => {
  const rec = firstHop();
  const at = (f: readonly number[]) => 4 + f[0];
  rec[at(C.ctinfo)] = 3; // IP_CT_ESTABLISHED_REPLY
  rec.writeUInt32LE((1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8), at(C.status)); // seen_reply assured confirmed dst_nat dst_nat_done
  rec.writeUInt16LE(5, at(C.zone));
  rec.writeUInt32LE(0x10, at(C.mark));
  rec[at(C.proto)] = 6;
  rec.writeUInt16LE(40000, at(C.orig_sport));
  rec.writeUInt16LE(8080, at(C.orig_dport));
  Buffer.from([10, 0, 0, 9]).copy(rec, at(C.reply_saddr));
  rec.writeUInt16LE(80, at(C.reply_sport));
  rec.writeUInt16LE(40000, at(C.reply_dport));
  const ev = decodeOne(rec);
  assert.equal(ev.conntrack?.nat, 'dnat 172.17.0.2:8080->10.0.0.9:80');
  assert.deepEqual(ev.conntrack?.status, ['seen_reply', 'assured', 'confirmed', 'dst_nat', 'dst_nat_done']);
  assert.equal(conntrackShort(ev.conntrack!), 'ct est reply dnat 172.17.0.2:8080->10.0.0.9:80 zone 5 mark 0x10');
  assert.equal(describeConntrack(ev.conntrack!), 'established (reply direction), dnat 172.17.0.2:8080->10.0.0.9:80, zone 5, mark 0x10');

  rec[at(C.presence)] = CtPresence.UNTRACKED;
  assert.deepEqual(decodeOne(rec).conntrack, { state: 'untracked', direction: null, zone: 0, mark: 0, proto: 0, original: null, reply: null, status: [], nat: null });
  rec[at(C.presence)] = CtPresence.UNREADABLE;
  assert.equal(decodeOne(rec).conntrack?.state, 'unreadable');
  rec[at(C.presence)] = CtPresence.NONE;
  assert.equal(decodeOne(rec).conntrack, null);
});

test('states, status bits and mappings by the kernel’s numbers', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map(stateOf), [
    { state: 'established', direction: 'original' },
    { state: 'related', direction: 'original' },
    { state: 'new', direction: 'original' },
    { state: 'established', direction: 'reply' },
    { state: 'related', direction: 'reply' },
  ]);
  assert.deepEqual(statusNames(0x7fff), ['expected', 'seen_reply', 'assured', 'confirmed', 'src_nat', 'dst_nat', 'seq_adjust', 'src_nat_done', 'dst_nat_done', 'dying', 'fixed_timeout', 'template', 'nat_clash', 'helper', 'offload']);
  const o = { src: '10.0.1.2', dst: '192.0.2.1', sport: 40000, dport: 443 };
  // Masquerade: the reply comes back to the router's own address and port.
  assert.equal(natOf(1 << 4, 6, o, { src: '192.0.2.1', dst: '198.51.100.7', sport: 443, dport: 61000 }), 'snat 10.0.1.2:40000->198.51.100.7:61000');
  // The bit without a change (NAT that kept the tuple) is no mapping; ICMP shows addresses only.
  assert.equal(natOf(1 << 4, 6, o, { src: '192.0.2.1', dst: '10.0.1.2', sport: 443, dport: 40000 }), null);
  assert.equal(natOf(1 << 5, 1, { src: 'fd00::1', dst: 'fd00::2', sport: 7, dport: 0x8000 }, { src: 'fd00::9', dst: 'fd00::1', sport: 7, dport: 0 }), 'dnat fd00::2->fd00::9');
});

const base = { time_ns: 10, skb: 'a1', lost_so_far: 0, netns: 7, netns_name: 'r', ifindex: 2, ifname: 'ra', dir: 'request' as const, family: 4 as const, src: '10.0.1.2', dst: '10.0.2.2', icmp_id: 0, icmp_seq: 1, icmp_type: 0, icmp_code: 0, quotes: null, mtu: null, proto: 6, sport: 40777, dport: 7777, tcp_flags: '.', tcp_seq: 1000, ttl: 63, len: 40, quoted_src: null, quoted_dst: null, fragment: null, tunnel: null, conntrack: null };
const drop: DropEvent = { kind: 'drop', reason: 'NETFILTER_DROP', reason_code: 6, location: 'nft_do_chain+0x4e1', ...base, time_ns: 12 };
const stop = (rule: string): NetfilterEvent => ({ kind: 'netfilter', time_ns: 11, netns: 7, netns_name: 'r', dir: 'request', family: 4, src: base.src, dst: base.dst, icmp_id: 0, icmp_seq: 1, proto: 6, sport: base.sport, dport: base.dport, tcp_flags: '.', tcp_seq: 1000, tunnel: null, hook: 'FORWARD', table_family: 'inet', table: 't', chain: 'forward', priority: 0, backend: 'nftables', verdict: 'DROP', rule, handle: 3, decided_by: 'rule' });

test('a rule that matched on conntrack state: its words, with the entry the dropped packet had, or had not', () => {
  const hop: HopEvent = { kind: 'hop', hook: 'netif_receive_skb', vlan: null, ...base };
  assert.equal(verdictLine([hop, stop('ct state invalid drop'), drop], false), 'dropped in namespace r by inet t forward (hook FORWARD): rule `ct state invalid drop`; conntrack held no valid entry for it there (ct state invalid: it belongs to no connection conntrack knows)');
  const entry = { state: 'new' as const, direction: 'original' as const, zone: 0, mark: 0, proto: 6, original: null, reply: null, status: [], nat: null };
  assert.match(verdictLine([hop, stop('tcp dport 7777 ct state new drop'), { ...drop, conntrack: entry }], false), /rule `tcp dport 7777 ct state new drop`; its conntrack entry there: new \(original direction\)$/);
  // A rule that does not look at conntrack: nothing said of it.
  assert.match(verdictLine([hop, stop('tcp dport 7777 drop'), drop], false), /rule `tcp dport 7777 drop`$/);
  // Passive journeys: the drop alone.
  assert.equal(dropSentence(drop), 'request dropped in namespace r at nft_do_chain: netfilter drop; it had no conntrack entry there (conntrack does not run there, or found it invalid)');
  // Freed inside conntrack itself.
  assert.equal(dropSentence({ ...drop, reason: 'NOT_SPECIFIED', location: '__nf_conntrack_confirm+0x1a0', conntrack: entry }), 'request dropped in namespace r at __nf_conntrack_confirm: conntrack dropped it (the kernel gives no reason); its conntrack entry there: new (original direction)');
});
