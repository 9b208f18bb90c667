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
import * as fs from 'node:fs';
import { parseCommand } from '../../src/cli';
import { TracepktError } from '../../src/errors';
import { parseFilter } from '../../src/filter/parse';
import { compileFilter } from '../../src/filter/compile';
import { parseAttrs, parseMessages } from '../../src/netfilter/netlink';
import { decodeChain, decodeTrace } from '../../src/netfilter/nftables';
import { readEnum } from '../../src/kernel/btf';
import { Kallsyms } from '../../src/kernel/kallsyms';
import { parseNsLink } from '../../src/names/netns';
import { containerName, containerRef } from '../../src/names/containers';
import { decodeBatch } from '../../src/decode';
import { fixture } from '../fixtures';

const SEED = 20261205;
const runs = (numRuns: number) => ({ seed: SEED, numRuns });

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

const FILTERS = ['icmp and host 10.0.0.1', 'tcp port 80 or udp dst port 53', 'not (ip6 and net fd00::/8)', 'src host 172.17.0.2 and tcp', 'udp and port 4789 and host 192.168.77.2'];

test('fuzz: the filter language refuses what it cannot read with one line, whatever the text', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 40 }), mutated(FILTERS)), (text) => {
      refusedCleanly(() => compileFilter(parseFilter(text)));
    }),
    runs(3000),
  );
});

const WORDS = ['-c', '--count', '3', '-1', '0', '--timeout', '0.5', '--from', 'ns', '--ttl', '300', '--tcp', '80', '--udp', '--size', '20000', '--json', '-q', '--pcap', 'f', '--html',
  '--filter', 'icmp', '-4', '-6', '--help', '--version', '--nope', 'demo', 'doctor', 'cleanup', '10.0.0.1', 'fd00::1', 'mangle', 'eth0', '--netns', '--ttl=random', '--drop', '--ratio', '1.5',
  '--set-tcp-flags', 'PSH', '--egress', '--', '-', '=', '\x1b[2J'];

test('fuzz: the command line is read without running anything, and refused with one line', () => {
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

test('fuzz: nf_tables messages from the kernel (or anyone on the group) decode or are dropped, never crash', () => {
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

test('fuzz: BTF that is not quite BTF is refused with an error that says so', () => {
  const real = fs.readFileSync('/sys/kernel/btf/vmlinux').subarray(0, 1 << 16);
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), fc.tuple(fc.nat(real.length - 1), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, bytes]) => {
      const b = Buffer.from(real);
      Buffer.from(bytes).copy(b, at);
      return b.subarray(0, Math.max(24, at + 64));
    })), (btf) => {
      try {
        readEnum(btf, 'skb_drop_reason');
      } catch (err) {
        assert.match((err as Error).message, /BTF/, String(err));
      }
    }),
    runs(1000),
  );
});

test('fuzz: kallsyms text of any shape gives a name or the address, never a crash', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.constantFrom('ffffffff81000000 T _stext', 'ffffffff81a00000 t ip_forward', '0000000000000000 A fixed_percpu_data', 'garbage', ''), fc.string({ maxLength: 30 })), { maxLength: 12 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), async (lines, address) => {
      const k = Kallsyms.fromText(lines.join('\n'));
      assert.equal(typeof k.symbolize(address), 'string');
      await k.symbolizeAll([address, address + 1n]);
    }),
    runs(500),
  );
});

test('fuzz: /proc links, cgroup paths and container runtimes\' records of any shape name something or nothing', () => {
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

test('fuzz: ring-buffer batches, truncated or corrupted, decode to what is whole and skip the rest', () => {
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
