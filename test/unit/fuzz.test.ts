/**
 * The parsers of outside data, fed random and mutated input (fast-check,
 * fixed seed: the same inputs on every run). What they must never do:
 * crash with anything but their own one-line error, hang, or let a stack
 * trace reach the user. Outside data: the command line and the filter
 * language (the user's), nf_tables netlink messages, BTF, kallsyms, /proc
 * and container runtimes' records, ring-buffer batches (the kernel's and
 * other people's).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseCommand } from '../../src/cli';
import { TracepktError } from '../../src/errors';
import { compilePcapFilter } from '../../src/filter/pcap';
import { loadNative } from '../../src/native';
import { parseAttrs, parseMessages } from '../../src/netfilter/netlink';
import { decodeChain, decodeTrace } from '../../src/netfilter/nftables';
import { readEnum } from '../../src/kernel/btf';
import { NamespaceWatch } from '../../src/netfilter/watch';
import { parseRuleHandles } from '../../src/netfilter/rule-text';
import { parsePortRange, parseReservedPorts } from '../../src/probe/flow';
import { parseRtTables } from '../../src/kernel/names';
import { parsePingOutput } from '../../src/probe/ping';
import { Kallsyms } from '../../src/kernel/kallsyms';
import { parseNsLink } from '../../src/names/netns';
import { containerName, containerRef } from '../../src/names/containers';
import { decodeBatch } from '../../src/decode';
import { fixture } from '../fixtures';

const SEED = 20261205;
/** A fixed seed, and a time bound: a parser that loops is a failure, not a hung CI. */
const runs = (numRuns: number) => ({ seed: SEED, numRuns, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true });
/** node:test's own bound on each test, for what fast-check cannot interrupt (a synchronous loop). */
const BOUND = { timeout: 60_000 };

/** Either a value, or the tool's own error: one line, no stack for the user. */
function refusedCleanly(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TracepktError, `not a TracepktError: ${(err as Error)?.stack ?? err}`);
    assert.ok(!err.message.includes('\n'), `one line: ${JSON.stringify(err.message)}`);
    assert.ok(err.message.length > 0 && err.message.length < 400, `a short line: ${err.message}`);
  }
}

/** Mutations of a valid text: characters replaced, inserted, deleted, parts repeated. */
const mutated = (valid: readonly string[]) =>
  fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 3 }), fc.string({ maxLength: 3 })), { maxLength: 4 })).map(([text, edits]) => {
    let s = text;
    for (const [at, op, piece] of edits) {
      const i = s.length ? at % (s.length + 1) : 0;
      s = op === 0 ? s.slice(0, i) + piece + s.slice(i + 1) : op === 1 ? s.slice(0, i) + piece + s.slice(i) : op === 2 ? s.slice(0, i) + s.slice(i + 1) : s + s.slice(i);
    }
    return s;
  });

const FILTERS = ['icmp and host 10.0.0.1', 'tcp port 80 or udp dst port 53', 'not (ip6 and net fd00::/8)', 'src host 172.17.0.2 and tcp', 'udp and port 4789 and host 192.168.77.2',
  'tcp[tcpflags] & tcp-syn != 0', 'icmp[icmptype] == icmp-echo', 'portrange 9990-9999', 'greater 1000 and ip[8] < 5', 'ip[2:2] / 4 > 300'];

// libpcap looks host names up (as tcpdump does): a mutated address may become one. Fewer runs than
// the parsers' below, so that a slow resolver cannot make this the slowest test.
test('fuzz: a filter libpcap or tracepkt cannot take is refused with one line, whatever the text', BOUND, () => {
  const native = loadNative();
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 40 }), mutated(FILTERS)), (text) => {
      refusedCleanly(() => compilePcapFilter(native, text, 'raw'));
      refusedCleanly(() => compilePcapFilter(native, text, 'ethernet'));
    }),
    runs(1000),
  );
});

const WORDS = ['-c', '--count', '3', '-1', '0', '--timeout', '0.5', '--from', 'ns', '--ttl', '300', '--tcp', '80', '--udp', '--size', '20000', '--json', '-q', '--pcap', 'f', '--html',
  '--filter', 'icmp', '-4', '-6', '--help', '--version', '--nope', 'demo', 'doctor', 'cleanup', '10.0.0.1', 'fd00::1', 'mangle', 'eth0', '--netns', '--ttl=random', '--drop', '--ratio', '1.5',
  '--set-tcp-flags', 'PSH', '--egress', '--', '-', '=', '\x1b[2J'];

test('fuzz: the command line is read without running anything, and refused with one line', BOUND, () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constantFrom(...WORDS), fc.string({ maxLength: 8 })), { maxLength: 8 }), (argv) => {
      refusedCleanly(() => parseCommand(argv));
    }),
    runs(3000),
  );
});

/** A netlink datagram: well-framed messages with random attributes, or random bytes. */
const attribute = fc.tuple(fc.integer({ min: 0, max: 20 }), fc.uint8Array({ maxLength: 24 })).map(([type, payload]) => {
  const b = Buffer.alloc(4 + payload.length + ((4 - (payload.length % 4)) % 4));
  b.writeUInt16LE(4 + payload.length, 0);
  b.writeUInt16LE(type, 2);
  Buffer.from(payload).copy(b, 4);
  return b;
});
const nlMessage = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 4 }), fc.array(attribute, { maxLength: 8 })).map(([type, head, attrs]) => {
  const payload = Buffer.concat([Buffer.from(head), ...attrs]);
  const b = Buffer.alloc(16 + payload.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  payload.copy(b, 16);
  return b;
});

test('fuzz: nf_tables messages from the kernel (or anyone on the group) decode or are dropped, never crash', BOUND, () => {
  fc.assert(
    fc.property(fc.oneof(fc.array(nlMessage, { maxLength: 4 }).map((m) => Buffer.concat(m)), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a))), (datagram) => {
      for (const m of parseMessages(datagram)) {
        decodeTrace(m);
        decodeChain(m);
        parseAttrs(m.payload);
      }
    }),
    runs(3000),
  );
});

/**
 * A small BTF built by hand: an int, a struct with one member, and the enum
 * skb_drop_reason with three values. Its reading is known by construction;
 * mutated anywhere (header, types, strings), it is read or refused.
 */
function handBuiltBtf(): Buffer {
  const strings = Buffer.from('\0int\0sk_buff\0len\0skb_drop_reason\0SKB_DROP_REASON_NOT_SPECIFIED\0SKB_DROP_REASON_NO_SOCKET\0SKB_DROP_REASON_TCP_CSUM\0', 'latin1');
  const at = (name: string) => strings.indexOf(`\0${name}\0`) + 1;
  const words: number[] = [
    at('int'), (1 << 24) | 0, 4, (1 << 24) | 32, // INT, 32 bits
    at('sk_buff'), (4 << 24) | 1, 8, at('len'), 1, 0, // STRUCT, one member at bit 0
    at('skb_drop_reason'), (6 << 24) | 3, 4, at('SKB_DROP_REASON_NOT_SPECIFIED'), 2, at('SKB_DROP_REASON_NO_SOCKET'), 3, at('SKB_DROP_REASON_TCP_CSUM'), 5,
  ];
  const types = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => types.writeUInt32LE(w >>> 0, i * 4));
  const header = Buffer.alloc(24);
  header.writeUInt16LE(0xeb9f, 0);
  header.writeUInt8(1, 2);
  header.writeUInt32LE(24, 4);
  header.writeUInt32LE(0, 8);
  header.writeUInt32LE(types.length, 12);
  header.writeUInt32LE(types.length, 16);
  header.writeUInt32LE(strings.length, 20);
  return Buffer.concat([header, types, strings]);
}

test('fuzz: BTF that is not quite BTF is read as far as it holds, or refused with an error that says so', BOUND, () => {
  const btf = handBuiltBtf();
  assert.deepEqual([...readEnum(btf, 'skb_drop_reason')], [[2, 'SKB_DROP_REASON_NOT_SPECIFIED'], [3, 'SKB_DROP_REASON_NO_SOCKET'], [5, 'SKB_DROP_REASON_TCP_CSUM']]);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
        fc.tuple(fc.array(fc.tuple(fc.nat(btf.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(btf.length)).map(([flips, cut]) => {
          const b = Buffer.from(btf);
          for (const [i, v] of flips) b[i] = v;
          return b.subarray(0, Math.max(cut, 24));
        }),
      ),
      (mutant) => {
        try {
          const values = readEnum(mutant, 'skb_drop_reason');
          for (const [value, name] of values) assert.ok(Number.isInteger(value) && typeof name === 'string');
        } catch (err) {
          assert.match((err as Error).message, /BTF/, String(err));
        }
      },
    ),
    runs(3000),
  );
});

test('fuzz: nft listings, /proc/sys port ranges, rt_tables and ping\'s output are read or ignored, never crash', BOUND, () => {
  const listing = fc.array(fc.oneof(fc.constantFrom('table inet t { # handle 1', '\tchain c { # handle 2', '\t\ttcp dport 22 drop comment "x" # handle 7', '\t\tudp dport 53 accept # handle 8', '}'), fc.string({ maxLength: 40 })), { maxLength: 10 }).map((l) => l.join('\n'));
  fc.assert(
    fc.property(listing, fc.string({ maxLength: 40 }), (text, other) => {
      for (const [handle, rule] of parseRuleHandles(text)) assert.ok(Number.isSafeInteger(handle) && rule.length > 0);
      parsePortRange(other);
      parseReservedPorts(other);
      parseRtTables(text + other);
      parsePingOutput(text, other);
    }),
    runs(2000),
  );
  // A comment that forges another rule's line makes that handle's text unknown, never the forged one.
  const forged = parseRuleHandles('\t\tudp dport 53 accept # handle 8\n\t\tip saddr 10.0.0.1 comment "a # handle 8\n\t\tfake" # handle 9');
  assert.equal(forged.get(8), undefined);
});

test('fuzz: a namespace\'s netlink socket takes any batch, whole or not, and counts what it cannot read', BOUND, () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.array(nlMessage, { maxLength: 3 }).map((m) => Buffer.concat(m)), fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a))), { maxLength: 4 }), (datagrams) => {
      const batch = Buffer.concat(datagrams.map((d) => {
        const rec = Buffer.alloc(4 + d.length + ((4 - (d.length % 4)) % 4));
        rec.writeUInt32LE(d.length, 0);
        d.copy(rec, 4);
        return rec;
      }));
      const ns = new NamespaceWatch({ inode: 1, name: 'fuzz', path: null });
      ns.accept(batch);
      assert.ok(ns.lostTraces >= 0 && ns.lostTraces <= datagrams.length);
    }),
    runs(2000),
  );
});

test('fuzz: kallsyms text of any shape gives a name or the address, never a crash', BOUND, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.constantFrom('ffffffff81000000 T _stext', 'ffffffff81a00000 t ip_forward', '0000000000000000 A fixed_percpu_data', 'garbage', ''), fc.string({ maxLength: 30 })), { maxLength: 12 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), async (lines, address) => {
      const k = Kallsyms.fromText(lines.join('\n'));
      assert.equal(typeof k.symbolize(address), 'string');
      await k.symbolizeAll([address, address + 1n]);
    }),
    runs(500),
  );
});

test('fuzz: /proc links, cgroup paths and container runtimes\' records of any shape name something or nothing', BOUND, () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), fc.oneof(fc.string({ maxLength: 120 }), fc.json(), fc.constant(null)), (cgroupish, record) => {
      const n = parseNsLink(cgroupish);
      assert.ok(n === null || Number.isSafeInteger(n));
      for (const cgroup of [cgroupish, `/docker/${'a'.repeat(64)}${cgroupish}`, `libpod-${'b'.repeat(64)}.scope`, `/kubepods/${cgroupish}`]) {
        const ref = containerRef(cgroup);
        if (!ref) continue;
        const name = containerName(ref, record);
        assert.ok(name === null || typeof name === 'string', String(name));
      }
    }),
    runs(2000),
  );
});

test('fuzz: ring-buffer batches, truncated or corrupted, decode to what is whole and skip the rest', BOUND, () => {
  const real = fixture('demo-ipv4.batch');
  fc.assert(
    fc.property(fc.nat(real.length), fc.array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (cut, flips) => {
      const b = Buffer.from(real.subarray(0, cut));
      for (const [at, value] of flips) if (at < b.length) b[at] = value;
      decodeBatch(b, () => {});
    }),
    runs(2000),
  );
});
