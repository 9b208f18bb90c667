/**
 * The pcap filter's way into the kernel: libpcap's classic BPF, translated
 * to eBPF (src/filter/cbpf.ts) and placed in the objects' slot
 * (src/bpf/filter-slot.ts). Recorded frames (fixtures/packets.json) go
 * through three judges that must agree: tcpdump reading them from a file
 * (libpcap's own interpreter, the independent witness), the reference
 * interpreter, and the translation run as the kernel runs eBPF
 * (ebpf-machine.ts, which also checks every access as the verifier would).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkClassic, type ClassicInsn, decodeClassic, FilterProgramError, PACKET_REACH, reach, runClassic, translate } from '../../src/filter/cbpf';
import { blameFilter, compilePcapFilter, FILTER_SLOTS } from '../../src/filter/pcap';
import { findSlot, placeFilter } from '../../src/bpf/filter-slot';
import { BpfError, TracepktError } from '../../src/errors';
import { bpfObjectPath, loadNative } from '../../src/native';
import { FIXTURES } from '../fixtures';
import { checkReachable, runEbpf } from './ebpf-machine';

const native = loadNative();
const { frames } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'packets.json'), 'utf8')) as { frames: { frame: string; wireLen: number }[] };
const FRAMES = frames.map((f) => ({ frame: Buffer.from(f.frame, 'hex'), wireLen: f.wireLen }));
/** The IP packet of a frame: after the Ethernet header and a VLAN tag. */
const ipOf = (frame: Buffer) => frame.subarray(frame.readUInt16BE(12) === 0x8100 ? 18 : 14);

/** What the old hand-written language lacked, and what every filter uses. */
const EXPRESSIONS = [
  'icmp',
  'icmp[icmptype] == icmp-echo',
  'icmp[icmptype] == icmp-echoreply and host 10.9.0.2',
  'icmp[icmptype] == icmp-unreach',
  'tcp[tcpflags] & tcp-syn != 0',
  'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn',
  'tcp[tcpflags] & tcp-rst != 0',
  'tcp dst port 9995',
  'portrange 9990-9999',
  'udp portrange 9990-9999',
  'src port 9995 or dst port 7000',
  'greater 1000',
  'less 80',
  'ip6',
  'ip6 and tcp',
  'ip6 and icmp6',
  'proto 17',
  'ip proto \\icmp',
  'ip[6:2] & 0x1fff != 0',
  'ip[8] == 64 and net 10.9.0.0/24',
  'not ip6 and not icmp',
  'tcp[20:2] > 0',
  '(ip[2:2] - ((ip[0] & 0xf) << 2)) > 100',
  'ip[2:2] / 4 > 300',
  'udp[8:4] = 0x70726f62',
  'icmp and ip[0] & 0xf > 5',
  'ip[0] << ip[1] == 0 and ip[0] >> (ip[9] + 32) == 0',
  'tcp[(tcp[12] & 0xf0) >> 2] == 0x68',
  'len > 100',
];

/** Frames (1-based) that tcpdump itself selects from a capture file of these packets: each is stamped with its number as its time. */
function tcpdumpSelects(file: string, expr: string): number[] {
  const out = execFileSync('tcpdump', ['-r', file, '-tt', '-n', '-q', expr], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((l) => Number(l.split('.')[0]));
}

/** A pcap file of `packets` with link type `linktype` (1 Ethernet, 101 raw IP), 256-byte captures. */
function writePcap(file: string, linktype: number, packets: { bytes: Buffer; wireLen: number }[]): void {
  const head: Buffer = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(linktype, 20);
  const parts = [head];
  for (const [i, p] of packets.entries()) {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(i + 1, 0);
    rec.writeUInt32LE(p.bytes.length, 8);
    rec.writeUInt32LE(p.wireLen, 12);
    parts.push(rec, p.bytes);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

function withCaptures(fn: (raw: string, ethernet: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-cbpf-'));
  try {
    const raw = path.join(dir, 'raw.pcap');
    const ethernet = path.join(dir, 'ethernet.pcap');
    writePcap(raw, 101, FRAMES.map((f) => ({ bytes: ipOf(f.frame), wireLen: f.wireLen - (f.frame.length - ipOf(f.frame).length) })));
    writePcap(ethernet, 1, FRAMES.map((f) => ({ bytes: f.frame, wireLen: f.wireLen })));
    fn(raw, ethernet);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const selectedBy = (judge: (i: number) => number) => FRAMES.map((_, i) => i).filter((i) => judge(i) !== 0).map((i) => i + 1);

test('tracing (raw IP): tcpdump, the reference interpreter and the translation select the same recorded packets', () =>
  withCaptures((raw) => {
    for (const expr of EXPRESSIONS) {
      const f = compilePcapFilter(native, expr, 'raw');
      const code = translate(f.classic, 'buffer', FILTER_SLOTS);
      const ip = (i: number) => ipOf(FRAMES[i].frame);
      const wire = (i: number) => FRAMES[i].wireLen - (FRAMES[i].frame.length - ip(i).length);
      const witness = tcpdumpSelects(raw, expr);
      assert.deepEqual(selectedBy((i) => runClassic(f.classic, ip(i), wire(i))), witness, `reference: ${expr}`);
      // As the tracing programs call it: the packet at the start of what was fetched...
      assert.deepEqual(selectedBy((i) => runEbpf(code, { access: 'buffer', bytes: ip(i), n: ip(i).length, at: 0, len: wire(i) })), witness, `translated: ${expr}`);
      // ...and after 40 bytes of something else (an ICMP error's quote, a tunnel's inner packet).
      const at = (i: number) => Buffer.concat([Buffer.alloc(40, 0x45), ip(i)]);
      assert.deepEqual(selectedBy((i) => runEbpf(code, { access: 'buffer', bytes: at(i), n: at(i).length, at: 40, len: wire(i) })), witness, `translated at 40: ${expr}`);
    }
  }));

test('mangling (Ethernet): tcpdump, the reference interpreter and the translation select the same recorded frames, VLAN too', () =>
  withCaptures((_raw, ethernet) => {
    for (const expr of [...EXPRESSIONS, 'vlan 10', 'vlan 10 and icmp', 'not vlan and icmp', 'ether proto 0x86dd', 'ether src 02:00:00:00:00:01']) {
      const f = compilePcapFilter(native, expr, 'ethernet');
      const code = translate(f.classic, 'packet', FILTER_SLOTS);
      const witness = tcpdumpSelects(ethernet, expr);
      assert.deepEqual(selectedBy((i) => runClassic(f.classic, FRAMES[i].frame, FRAMES[i].wireLen)), witness, `reference: ${expr}`);
      assert.deepEqual(selectedBy((i) => runEbpf(code, { access: 'packet', frame: FRAMES[i].frame, len: FRAMES[i].wireLen })), witness, `translated: ${expr}`);
    }
  }));

test('what the judges agree on is what the packets are: SYNs, echo requests, the tagged frame, the range', () =>
  withCaptures((raw, ethernet) => {
    const flags = (i: number) => ipOf(FRAMES[i].frame)[33];
    const proto = (i: number) => ipOf(FRAMES[i].frame)[9];
    const syns = FRAMES.map((_, i) => i).filter((i) => FRAMES[i].frame.readUInt16BE(12) === 0x0800 && proto(i) === 6 && (flags(i) & 2) !== 0).map((i) => i + 1);
    assert.equal(syns.length, 3, 'SYN, SYN-ACK, the SYN to a closed port');
    assert.deepEqual(tcpdumpSelects(raw, 'ip and tcp[tcpflags] & tcp-syn != 0'), syns);
    assert.equal(tcpdumpSelects(raw, 'icmp[icmptype] == icmp-echo').length, 4, 'three echo requests (one fragmented: its first fragment) and the tagged one');
    assert.deepEqual(tcpdumpSelects(ethernet, 'vlan 10'), [FRAMES.length], 'the last frame is the tagged one');
    assert.equal(tcpdumpSelects(raw, 'udp portrange 9990-9999').length, 1, 'the datagram to 9991 (its port unreachable is ICMP)');
  }));

test('a packet whose bytes were not all fetched: what lies past them does not match, as past the end in classic BPF', () => {
  const syn = FRAMES.map((f) => ipOf(f.frame)).find((p) => p[9] === 6 && (p[33] & 2) !== 0 && p[0] === 0x45)!;
  const f = compilePcapFilter(native, 'tcp[tcpflags] & tcp-syn != 0', 'raw');
  const code = translate(f.classic, 'buffer', FILTER_SLOTS);
  assert.notEqual(runEbpf(code, { access: 'buffer', bytes: syn, n: 34, at: 0, len: syn.length }), 0, 'the flags byte fetched');
  assert.equal(runEbpf(code, { access: 'buffer', bytes: syn, n: 33, at: 0, len: syn.length }), 0, 'one byte short');
  assert.equal(runClassic(f.classic, syn.subarray(0, 33), syn.length), 0, 'the reference agrees');
  assert.equal(runEbpf(code, { access: 'buffer', bytes: syn, n: 30, at: 40, len: syn.length }), 0, 'a packet starting past what was fetched');
  assert.equal(runEbpf(code, { access: 'buffer', bytes: syn, n: 300, at: 256, len: syn.length }), 0, 'a start the programs never read from');
});

test('what tracepkt cannot run is refused with one line: far reads, Linux ancillary data, too long, malformed programs', () => {
  assert.throws(() => compilePcapFilter(native, 'ip[300] = 1', 'raw'), (e: Error) => e instanceof TracepktError && /cannot run in tracepkt's programs: the filter reads up to byte 301 of the packet; tracepkt's programs see its first 256$/.test(e.message));
  const many = Array.from({ length: 150 }, (_, i) => `tcp[${i}] = 7`).join(' or ');
  assert.throws(() => compilePcapFilter(native, many, 'raw'), /^TracepktError: filter "tcp\[0\] = 7 or tcp\[1\] = 7 or tcp\[2\] = 7 \.\.\. 7\] = 7 or tcp\[148\] = 7 or tcp\[149\] = 7" cannot run in tracepkt's programs: the filter takes \d+ kernel instructions; tracepkt's programs hold 1024$/);
  const hosts = Array.from({ length: 200 }, (_, i) => `host 10.0.${i >> 8}.${i & 255}`).join(' or ');
  assert.ok(compilePcapFilter(native, hosts, 'raw'), '200 hosts fit');
  assert.throws(() => compilePcapFilter(native, `${hosts} or ${hosts}`, 'raw'), /^TracepktError: bad filter ".{38} \.\.\. .{38}": bad filter expression \(at most 4095 bytes\)$/);
  assert.throws(() => compilePcapFilter(native, 'tcp and', 'raw'), /^TracepktError: bad filter "tcp and": can't parse filter expression: syntax error$/);
  assert.throws(() => compilePcapFilter(native, 'vlan 10', 'raw'), /^TracepktError: bad filter "vlan 10": no VLAN support for Raw IP$/);
  assert.throws(() => compilePcapFilter(native, 'ip6 protochain 17', 'raw'), /^TracepktError: filter "ip6 protochain 17" cannot run in tracepkt's programs: the filter loops \(as protochain does\), which the kernel cannot verify$/);
  assert.throws(() => compilePcapFilter(native, 'port 99999', 'raw'), /bad filter "port 99999": illegal port number 99999 > 65535/);
  const prog = (...insns: [number, number, number, number][]): ClassicInsn[] => insns.map(([code, jt, jf, k]) => ({ code, jt, jf, k }));
  const refused = (p: ClassicInsn[], why: RegExp) => assert.throws(() => translate(p, 'buffer', FILTER_SLOTS), (e: Error) => e instanceof FilterProgramError && why.test(e.message));
  refused(prog([0x20, 0, 0, 0xfffff000], [0x16, 0, 0, 0]), /Linux ancillary data/); // ld [SKF_AD_OFF]
  refused(prog([0x15, 5, 0, 1], [0x06, 0, 0, 0]), /jumps past the end/);
  refused(prog([0x02, 0, 0, 16], [0x06, 0, 0, 0]), /memory word 16/);
  refused(prog([0x34, 0, 0, 0], [0x06, 0, 0, 0]), /divides by zero/);
  refused(prog([0x64, 0, 0, 32], [0x06, 0, 0, 0]), /shifts by 32/);
  refused(prog([0x00, 0, 0, 1]), /does not end with a return/);
  refused([], /empty/);
  assert.throws(() => decodeClassic(Buffer.alloc(12)), /whole 8-byte instructions/);
});

test('arithmetic the kernel would end: division by X = 0 returns 0, as classic BPF does; scratch memory starts at 0', () => {
  const prog = (...insns: [number, number, number, number][]): ClassicInsn[] => insns.map(([code, jt, jf, k]) => ({ code, jt, jf, k }));
  // A = 10; X = 0; A /= X; ret #1
  const div = prog([0x00, 0, 0, 10], [0x01, 0, 0, 0], [0x3c, 0, 0, 0], [0x06, 0, 0, 1]);
  assert.equal(runClassic(div, Buffer.alloc(20)), 0);
  assert.equal(runEbpf(translate(div, 'buffer', FILTER_SLOTS), { access: 'buffer', bytes: Buffer.alloc(20), n: 20, at: 0, len: 20 }), 0);
  // M[3] = 7; A = M[3] + M[5]; ret A (M[5] never written: 0)
  const mem = prog([0x00, 0, 0, 7], [0x02, 0, 0, 3], [0x60, 0, 0, 5], [0x07, 0, 0, 0], [0x60, 0, 0, 3], [0x0c, 0, 0, 0], [0x16, 0, 0, 0]);
  assert.equal(runClassic(mem, Buffer.alloc(20)), 7);
  assert.equal(runEbpf(translate(mem, 'packet', FILTER_SLOTS), { access: 'packet', frame: Buffer.alloc(20), len: 20 }), 7);
  // Unreachable instructions are not translated (the verifier refuses unreachable code): ja +1 skips one.
  const skip = prog([0x05, 0, 0, 1], [0x06, 0, 0, 5], [0x06, 0, 0, 9]);
  assert.deepEqual(checkClassic(skip), [true, false, true]);
  assert.equal(runEbpf(translate(skip, 'buffer', FILTER_SLOTS), { access: 'buffer', bytes: Buffer.alloc(4), n: 4, at: 0, len: 4 }), 9);
  assert.equal(reach(compilePcapFilter(native, 'tcp[13] = 2', 'raw').classic), 60 + 13 + 1, 'an indirect load counts the longest IPv4 header');
  assert.equal(reach(compilePcapFilter(native, 'tcp[(tcp[12] & 0xf0) >> 2] = 0x68', 'raw').classic), PACKET_REACH, 'an offset computed from the packet: anywhere');
  assert.equal(reach(compilePcapFilter(native, 'greater 1000', 'ethernet').classic), 0, 'no byte read');
  // A shift by X of 32 or more is 0, as in classic BPF and tcpdump (not X & 31, as eBPF shifts).
  const shift = prog([0x00, 0, 0, 5], [0x01, 0, 0, 33], [0x6c, 0, 0, 0], [0x16, 0, 0, 0]);
  assert.equal(runClassic(shift, Buffer.alloc(4)), 0);
  assert.equal(runEbpf(translate(shift, 'buffer', FILTER_SLOTS), { access: 'buffer', bytes: Buffer.alloc(4), n: 4, at: 0, len: 4 }), 0);
  // A filter that reads nothing of the packet has no "past the end" to fail to: no instruction is left unreachable.
  for (const expr of ['greater 1000', 'less 80', 'len > 100']) {
    checkReachable(translate(compilePcapFilter(native, expr, 'ethernet').classic, 'packet', FILTER_SLOTS));
  }
  assert.ok(PACKET_REACH >= 60 + 20 + 40, 'a TCP header behind the longest IPv4 header fits');
});

test('the slot in every object that takes a filter: one, as bpf/pcap.h builds it; placing a filter changes those bytes only', () => {
  for (const name of ['tracepkt', 'tracepkt.compat', 'mangle', 'mangle.compat']) {
    const file = bpfObjectPath(name);
    const image = fs.readFileSync(file);
    const at = findSlot(image, FILTER_SLOTS, file);
    const f = compilePcapFilter(native, 'tcp[tcpflags] & tcp-syn != 0', name.startsWith('mangle') ? 'ethernet' : 'raw');
    const placed = placeFilter(Buffer.from(image), f.code, FILTER_SLOTS, file);
    assert.equal(placed.length, image.length);
    assert.deepEqual(placed.subarray(0, at), image.subarray(0, at), `${name}: before the slot`);
    assert.deepEqual(placed.subarray(at + FILTER_SLOTS * 8), image.subarray(at + FILTER_SLOTS * 8), `${name}: after it`);
    assert.deepEqual(placed.subarray(at, at + FILTER_SLOTS * 8), f.code, `${name}: the filter in it`);
    assert.throws(() => findSlot(placed, FILTER_SLOTS, file), /no single filter slot/, 'a placed filter is not a slot any more');
  }
  const damaged = Buffer.from(fs.readFileSync(bpfObjectPath('tracepkt')));
  const at = findSlot(damaged, FILTER_SLOTS, 'x');
  damaged[at + 100 * 8] = 0xb7;
  assert.throws(() => findSlot(damaged, FILTER_SLOTS, 'x.o'), /^TracepktError: x\.o: the filter slot is not as bpf\/pcap\.h builds it \(rebuild it: make\)$/);
  assert.throws(() => findSlot(Buffer.alloc(64), FILTER_SLOTS, 'y.o'), /y\.o: no single filter slot/);
});

test('a filter the verifier refuses is named, with its last word, only when the programs load without it', async () => {
  const pcap = compilePcapFilter(native, 'icmp', 'ethernet');
  const log = [
    'libbpf: prog \'mangle_xdp\': BPF program load failed: Permission denied',
    '-- BEGIN PROG LOAD LOG --',
    '1193: (69) r6 = *(u16 *)(r1 +12)',
    "R1 invalid mem access 'scalar'",
    'processed 1066 insns (limit 1000000) max_states_per_insn 1 total_states 130 peak_states 130 mark_read 0',
    '-- END PROG LOAD LOG --',
    "libbpf: prog 'mangle_xdp': failed to load: -13",
  ].join('\n');
  const refused = new BpfError('bpf_object__load', 13, log, 'cannot load mangle.bpf.o');
  const blamed = await blameFilter(refused, pcap, async () => {});
  assert.ok(blamed instanceof TracepktError);
  assert.equal(blamed.message, 'the kernel\'s verifier refused filter "icmp": R1 invalid mem access \'scalar\'');
  assert.equal(await blameFilter(refused, pcap, async () => Promise.reject(new Error('refused too'))), refused, 'refused without the filter too: not the filter\'s fault');
  const denied = new BpfError('bpf_object__load', 1, '', 'cannot load mangle.bpf.o');
  assert.equal(await blameFilter(denied, pcap, async () => assert.fail('not asked: EPERM is no verdict on the filter')), denied);
});
