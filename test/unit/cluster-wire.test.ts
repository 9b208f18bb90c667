/**
 * What agents and coordinators exchange (src/cluster): frames, messages and
 * events as checked on receipt, the clock offset, the token file.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { FrameReader, WireError, frame } from '../../src/cluster/wire';
import { agentMessage, coordinatorMessage, COORDINATOR_FRAME_MAX } from '../../src/cluster/messages';
import { checkSighting } from '../../src/cluster/event-check';
import { describeOffset, estimateOffset } from '../../src/cluster/clock';
import { pskOf, readTokenFile } from '../../src/cluster/token';
import { decodeBatch, exampleBatch } from '../../src/decode';
import { EventKind, HEADER, HOP, Hook, NEIGH } from '../../src/bpf/layout';
import type { KernelEvent } from '../../src/events';
import { Sightings } from '../../src/sightings';
import { TracepktError } from '../../src/errors';
import { fixture } from '../fixtures';

test('frames: whole messages out of bytes however they are cut, in order', () => {
  const messages = [{ type: 'hello', version: 1, lease_ms: 5000 }, { type: 'renew' }, { type: 'clock', t: 123456789012345 }, { type: 'error', message: 'ünïcode ✓' }];
  const bytes = Buffer.concat(messages.map(frame));
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: bytes.length }), { maxLength: 12 }), (cuts) => {
      const reader = new FrameReader(1024);
      const at = [...new Set(cuts)].sort((a, b) => a - b);
      const got: unknown[] = [];
      let from = 0;
      for (const to of [...at, bytes.length]) {
        got.push(...reader.push(bytes.subarray(from, to)));
        from = to;
      }
      assert.deepEqual(got, messages);
      assert.equal(reader.pending, 0);
    }),
  );
});

test('frames: a length beyond the bound is refused from its 4 bytes, before the body is awaited', () => {
  const reader = new FrameReader(COORDINATOR_FRAME_MAX);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(COORDINATOR_FRAME_MAX + 1);
  assert.throws(() => reader.push(head), (e: Error) => e instanceof WireError && /65537 bytes, more than the 65536 allowed/.test(e.message));
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(0xffffffff);
  assert.throws(() => new FrameReader(16).push(huge), WireError);
});

test('frames: what is not a JSON object is refused', () => {
  const raw = (text: string) => {
    const body = Buffer.from(text);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    return Buffer.concat([head, body]);
  };
  for (const text of ['{"type":', '[1,2]', '"hello"', '42', 'null', '\u0000\u0001']) {
    assert.throws(() => new FrameReader(1024).push(raw(text)), WireError, text);
  }
});

/** A ping probe's identity as a coordinator sends it. */
const PROBE = { marker: '0011223344556677', marker_offset: 8, family: 4, target: '10.200.0.2' };

test('messages: each side takes only what the protocol says, each field checked', () => {
  assert.deepEqual(coordinatorMessage({ type: 'trace', id: 1, filter: 'icmp', seconds: 10, max_events: 1000 }), { type: 'trace', id: 1, filter: 'icmp', seconds: 10, max_events: 1000 });
  assert.equal(coordinatorMessage({ type: 'trace', id: 1, probe: PROBE, seconds: 10, max_events: 1000 }).type, 'trace');
  const tcp = { ...PROBE, family: 6, target: 'fd99::2', flow: { proto: 6, src: 'fd99::1', dst: 'fd99::2', sport: 20345, dport: 80 } };
  assert.equal(coordinatorMessage({ type: 'trace', id: 1, probe: tcp, seconds: 10, max_events: 1000 }).type, 'trace');
  assert.equal(agentMessage({ type: 'done', id: 2, reason: 'stopped', lost_events: 0, lost_in_user_space: 0, lost_in_transit: 0, notes: ['c2: 1 nftables trace message(s) lost'] }).type, 'done');
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ type: 'exec', command: 'rm -rf /' }, /unknown type "exec"/],
    [{ type: 'trace', id: 1, filter: 'icmp', seconds: 10, max_events: 1000, path: '/etc/shadow' }, /unknown field "path"/],
    [{ type: 'trace', id: 1, filter: 'icmp', seconds: 0, max_events: 1000 }, /seconds out of range/],
    [{ type: 'trace', id: 1, filter: 'icmp', seconds: 86_401, max_events: 1000 }, /seconds out of range/],
    [{ type: 'trace', id: 1, filter: 'x'.repeat(1025), seconds: 1, max_events: 1 }, /filter out of range/],
    [{ type: 'trace', id: 1, filter: 'icmp', seconds: 1, max_events: 1e9 }, /max_events out of range/],
    [{ type: 'trace', id: -1, filter: 'icmp', seconds: 1, max_events: 1 }, /id out of range/],
    [{ type: 'trace', id: 1, seconds: 1, max_events: 1 }, /neither a filter nor a probe/],
    [{ type: 'trace', id: 1, filter: 'icmp', probe: PROBE, seconds: 1, max_events: 1 }, /both a filter and a probe/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, marker: '00112233445566' }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, marker: '0011223344556677; rm' }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, target: 'fd00::2' }, seconds: 1, max_events: 1 }, /probe out of range/], // an IPv6 target for family 4
    [{ type: 'trace', id: 1, probe: { ...PROBE, target: '10.0.0.256' }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, path: '/etc' }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, flow: { proto: 1, src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 } }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, flow: { proto: 6, src: '10.0.0.1', dst: '10.0.0.2', sport: 0, dport: 2 } }, seconds: 1, max_events: 1 }, /probe out of range/],
    // A witness follows netfilter for the flow's source port: never a well-known one (ours start at 10000).
    [{ type: 'trace', id: 1, probe: { ...PROBE, flow: { proto: 6, src: '10.0.0.1', dst: '10.0.0.2', sport: 22, dport: 2 } }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, family: 6, target: ':' }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, family: 6, target: '::::' }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'trace', id: 1, probe: { ...PROBE, family: 6, target: 'fd99::2', flow: { proto: 6, src: '10.0.0.1', dst: '10.0.0.2', sport: 20000, dport: 80 } }, seconds: 1, max_events: 1 }, /probe out of range/],
    [{ type: 'hello', version: 1, lease_ms: 10 }, /lease_ms out of range/],
    [{ type: 'hello', version: '1', lease_ms: 5000 }, /version out of range or of the wrong type/],
    [{ type: 'clock', t: 1.5 }, /t out of range/],
    [{ type: '__proto__' }, /unknown type/],
    [{ type: 'toString' }, /unknown type/],
    [{}, /unknown type/],
  ];
  for (const [m, why] of refused) assert.throws(() => coordinatorMessage(m), (e: Error) => e instanceof WireError && why.test(e.message), JSON.stringify(m).slice(0, 80));
  assert.deepEqual(agentMessage({ type: 'done', id: 2, reason: 'lease', lost_events: 0, lost_in_user_space: 0, lost_in_transit: 3 }).type, 'done');
  assert.equal(agentMessage({ type: 'events', id: 2, events: [], upto_ns: 5 }).type, 'events');
  assert.equal(agentMessage({ type: 'events', id: 2, events: [] }).type, 'events', 'upto_ns may be left out');
  // Hosts up for more than 104 days: nanoseconds since boot past 2^53, as doubles hold them.
  const longUp = 2 ** 53 * 1.5;
  assert.equal(coordinatorMessage({ type: 'clock', t: longUp }).type, 'clock');
  assert.equal(agentMessage({ type: 'clock', t: longUp, node_ns: longUp * 2 }).type, 'clock');
  assert.equal(agentMessage({ type: 'loss', id: 1, from_ns: longUp, to_ns: longUp + 4096 }).type, 'loss');
  assert.throws(() => agentMessage({ type: 'events', id: 2, events: [1, 2] }), /events out of range or of the wrong type/);
  assert.throws(() => agentMessage({ type: 'done', id: 2, reason: 'exploded', lost_events: 0, lost_in_user_space: 0, lost_in_transit: 0 }), /reason/);
  assert.throws(() => agentMessage({ type: 'trace', id: 1, filter: 'icmp', seconds: 1, max_events: 1 }), /the agent sent a message of unknown type "trace"/);
});

/** Events of every kind an agent sends, as the decoder makes them and as they cross the wire (JSON). */
function sentEvents(): Record<string, unknown>[] {
  const events: KernelEvent[] = [];
  decodeBatch(exampleBatch(100), (e) => events.push(e));
  decodeBatch(fixture('demo-ipv4.batch'), (e) => events.push(e)); // hops with conntrack entries
  decodeBatch(fixture('demo-ipv6.batch'), (e) => events.push(e));
  // A neighbour record, made from a recorded hop's prefix (as test/unit/decode.test.ts does).
  const rec = Buffer.alloc(4 + NEIGH.$size);
  rec.writeUInt32LE(NEIGH.$size, 0);
  fixture('demo-ipv4.batch').subarray(4, 4 + HOP.o.$offset + HOP.o.$size).copy(rec, 4);
  rec[4 + HEADER.kind[0]] = EventKind.NEIGH;
  rec[4 + HEADER.hook[0]] = Hook.NEIGH;
  Buffer.from([172, 17, 0, 9]).copy(rec, 4 + NEIGH.next_hop[0]);
  rec[4 + NEIGH.family[0]] = 4;
  rec[4 + NEIGH.nud_state[0]] = 0x01;
  decodeBatch(rec, (e) => events.push(e));
  const hop = events.find((e) => e.kind === 'hop')!;
  const tunnelled = { ...hop, tunnel: { type: 'vxlan', id: 42, family: 4, src: '192.168.77.1', dst: '192.168.77.2', proto: 17, sport: 41000, dport: 4789, ttl: 64, len: 134 }, fragment: { id: 7, offset: 1480, more: true } };
  return [...events, tunnelled].map((e) => JSON.parse(JSON.stringify(e)));
}

test('events: every kind an agent sends passes the check as the decoder made it, also after the hop chain', () => {
  const sent = sentEvents();
  assert.deepEqual([...new Set(sent.map((e) => e.kind))].sort(), ['drop', 'hop', 'neighbour']);
  assert.ok(sent.some((e) => e.conntrack !== null), 'conntrack entries are among them');
  for (const e of sent) assert.equal(typeof checkSighting(structuredClone(e)), 'object', JSON.stringify(checkSighting(structuredClone(e))));
  // Hops the coordinator's chain has seen carry latency, rewrites and alterations: still well-formed.
  const chained = sent.map((e) => structuredClone(e)) as unknown as KernelEvent[];
  new Sightings(null).take(chained);
  for (const e of chained) assert.equal(typeof checkSighting(e as unknown as Record<string, unknown>), "object", String(checkSighting(e as unknown as Record<string, unknown>)));
});

test('events: a field missing, unknown, of another type or out of bounds is refused, and said which', () => {
  const hop = sentEvents().find((e) => e.kind === 'hop')!;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...hop, kind: 'exec' }, /unknown kind "exec"/],
    [{ ...hop, __proto__: null, kind: 'route' }, /unknown kind "route"/],
    [{ ...hop, command: 'reboot' }, /unknown field "command"/],
    [{ ...hop, ifname: 7 }, /ifname is out of range or of the wrong type/],
    [{ ...hop, ifname: 'x'.repeat(257) }, /ifname/],
    [{ ...hop, netns_name: { toString: 1 } }, /netns_name/],
    [{ ...hop, src: '10.0.0.1; rm -rf /' }, /src/],
    [{ ...hop, time_ns: -1 }, /time_ns/],
    [{ ...hop, time_ns: 2 ** 64 }, /time_ns/],
    [{ ...hop, time_ns: 1.5 }, /time_ns/],
    [{ ...hop, ttl: 256 }, /ttl/],
    [{ ...hop, dir: 'sideways' }, /dir/],
    [{ ...hop, tunnel: { type: 'vxlan' } }, /tunnel/],
    [{ ...hop, conntrack: { ...(hop.conntrack as object), status: 'x' } }, /conntrack/],
    [{ ...hop, skb: 'not hex' }, /skb/],
  ];
  for (const [e, why] of cases) {
    const verdict = checkSighting(e);
    assert.equal(typeof verdict, 'string', `${why}: accepted`);
    assert.match(verdict as string, why);
  }
  const { vlan: _vlan, ...withoutVlan } = hop;
  assert.match(checkSighting(withoutVlan) as string, /vlan is missing/);
});

test('events: made-up objects never pass unless they are an event (no crash on any JSON)', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return;
      const verdict = checkSighting(v as Record<string, unknown>);
      assert.equal(typeof verdict, 'string');
    }),
    { numRuns: 2000 },
  );
});

test('clock: the offset from the exchange with the shortest round trip, within half of it', () => {
  // The node's clock runs 1 s ahead of ours; its answers are read in the middle of the round trip but for one.
  const samples = [
    { sentNs: 1_000_000, receivedNs: 3_000_000, nodeNs: 1_000_000_000 + 2_600_000 },
    { sentNs: 5_000_000, receivedNs: 5_200_000, nodeNs: 1_000_000_000 + 5_100_000 },
    { sentNs: 9_000_000, receivedNs: 9_900_000, nodeNs: 1_000_000_000 + 9_450_000 },
  ];
  assert.deepEqual(estimateOffset(samples), { offsetNs: 1_000_000_000, uncertaintyNs: 100_000 });
  assert.equal(describeOffset({ offsetNs: 1_000_000_000, uncertaintyNs: 100_000 }), '+1.000000 s ± 0.100 ms');
  assert.equal(describeOffset({ offsetNs: -12_345, uncertaintyNs: 50_000 }), '-0.012 ms ± 0.050 ms');
  // Whatever moment in the round trip the node read its clock, the truth is within the bound.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1e9 }), fc.integer({ min: 1, max: 1e7 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: -1e15, max: 1e15 }), (sent, rtt, where, truth) => {
      const nodeNs = truth + sent + where * rtt;
      const o = estimateOffset([{ sentNs: sent, receivedNs: sent + rtt, nodeNs }]);
      assert.ok(Math.abs(o.offsetNs - truth) <= o.uncertaintyNs + 1); // + 1: doubles near 1e15 are 0.125 apart
    }),
  );
  assert.throws(() => estimateOffset([]));
});

test('token file: what ssh asks of a private key, and a token worth the name', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-token-'));
  try {
    const file = path.join(dir, 'token');
    const write = (text: string, mode = 0o600) => {
      fs.writeFileSync(file, text);
      fs.chmodSync(file, mode);
    };
    const uid = process.getuid!();
    write('s3cret-token-0123456789\n');
    assert.equal(readTokenFile(file, uid), 's3cret-token-0123456789');
    const refused = (why: RegExp, u = uid, f = file) => assert.throws(() => readTokenFile(f, u), (e: Error) => e instanceof TracepktError && why.test(e.message) && !/s3cret/.test(e.message));
    write('s3cret-token-0123456789\n', 0o644);
    refused(/others can read or write it \(mode 644\): chmod 600 it/);
    write('s3cret-token-0123456789\n', 0o620);
    refused(/mode 620/);
    write('s3cret-token-0123456789\n');
    refused(/owned by uid \d+, not by this user \(4242\)/, 4242);
    write('s3cret\n');
    refused(/at least 22 characters/);
    write('s3cret-token-01234567\n'); // 21
    refused(/at least 22 characters/);
    write('s3cret-token-0123456789\nsecond line\n');
    refused(/more than one line/);
    write(' s3cret-token-0123456789 \n');
    refused(/begins or ends with spaces/);
    refused(/no such file/, uid, path.join(dir, 'missing'));
    fs.symlinkSync(file, path.join(dir, 'link'));
    refused(/symbolic link/, uid, path.join(dir, 'link'));
    refused(/not a regular file/, uid, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(pskOf('token-a-0123456789abcdef'), pskOf('token-a-0123456789abcdef'));
  assert.notDeepEqual(pskOf('token-a-0123456789abcdef'), pskOf('token-b-0123456789abcdef'));
  assert.equal(pskOf('token-a-0123456789abcdef').length, 32);
});
