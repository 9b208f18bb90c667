import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readBootFact, writeBootFact } from '../../src/kernel/boot-facts';
import { readEnum } from '../../src/kernel/btf';
import { Kallsyms } from '../../src/kernel/kallsyms';
import { parseRtTables } from '../../src/kernel/names';

/** A BTF blob built by hand (Documentation/bpf/btf.rst): header, types, strings. */
function btf(types: Buffer[], strings: string[]): Buffer {
  const str = Buffer.from(`\0${strings.join('\0')}\0`);
  const typeSec = Buffer.concat(types);
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(0xeb9f, 0);
  hdr[2] = 1; // version
  hdr.writeUInt32LE(24, 4); // hdr_len
  hdr.writeUInt32LE(0, 8); // type_off
  hdr.writeUInt32LE(typeSec.length, 12);
  hdr.writeUInt32LE(typeSec.length, 16); // str_off
  hdr.writeUInt32LE(str.length, 20);
  return Buffer.concat([hdr, typeSec, str]);
}

/** Offset of a string in the blob's string section. */
function off(strings: string[], s: string): number {
  return 1 + strings.slice(0, strings.indexOf(s)).reduce((n, x) => n + x.length + 1, 0);
}

function type(nameOff: number, kind: number, vlen: number, sizeOrType: number, kflag = 0, trailer: number[] = []): Buffer {
  const b = Buffer.alloc(12 + trailer.length * 4);
  b.writeUInt32LE(nameOff, 0);
  b.writeUInt32LE(((kflag << 31) | (kind << 24) | vlen) >>> 0, 4);
  b.writeUInt32LE(sizeOrType, 8);
  trailer.forEach((v, i) => b.writeInt32LE(v | 0, 12 + i * 4));
  return b;
}

test('BTF: finds an enum by name past other kinds, values to names', () => {
  const s = ['int', 'sk_buff', 'len', 'other', 'A', 'skb_drop_reason', 'SKB_NOT_DROPPED_YET', 'SKB_CONSUMED', 'SKB_DROP_REASON_NO_SOCKET', 'f'];
  const o = (x: string) => off(s, x);
  const blob = btf(
    [
      type(o('int'), 1, 0, 4, 0, [32]), // INT, 4 trailing bytes
      type(o('sk_buff'), 4, 1, 8, 0, [o('len'), 1, 0]), // STRUCT with one member
      type(o('other'), 6, 1, 4, 0, [o('A'), 7]), // an enum of another name
      type(o('f'), 13, 2, 1, 0, [0, 1, 0, 1]), // FUNC_PROTO with two params
      type(o('skb_drop_reason'), 6, 3, 4, 0, [o('SKB_NOT_DROPPED_YET'), 0, o('SKB_CONSUMED'), 1, o('SKB_DROP_REASON_NO_SOCKET'), 3]),
    ],
    s,
  );
  assert.deepEqual([...readEnum(blob, 'skb_drop_reason')], [
    [0, 'SKB_NOT_DROPPED_YET'],
    [1, 'SKB_CONSUMED'],
    [3, 'SKB_DROP_REASON_NO_SOCKET'],
  ]);
  assert.deepEqual([...readEnum(blob, 'other')], [[7, 'A']]);
  assert.equal(readEnum(blob, 'missing').size, 0);
  assert.throws(() => readEnum(Buffer.alloc(24), 'x'), /not BTF/);
});

test('BTF: signed enums (kflag) keep their sign', () => {
  const s = ['e', 'NEG'];
  const blob = btf([type(off(s, 'e'), 6, 1, 4, 1, [off(s, 'NEG'), -5])], s);
  assert.deepEqual([...readEnum(blob, 'e')], [[-5, 'NEG']]);
});

test('kallsyms: the function covering an address, with its offset; data symbols ignored', () => {
  const k = Kallsyms.fromText(['ffffffff81000000 T _stext', 'ffffffff81234500 t ip_forward', 'ffffffff81234900 D some_data', 'ffffffff81235000 T ip_error', '0000000000000000 T hidden', 'ffffffffc0a01000 t mod_fn\t[mymod]', ''].join('\n'));
  assert.equal(k.symbolize(0xffffffff812345c0n), 'ip_forward+0xc0');
  assert.equal(k.symbolize(0xffffffff81234a00n), 'ip_forward+0x500', 'the data symbol between does not count');
  assert.equal(k.symbolize(0xffffffff81235000n), 'ip_error');
  assert.equal(k.symbolize(0x1000n), '0x1000', 'below every symbol: the address itself');
  assert.equal(k.symbolize(0xffffffffc0a01010n), 'mod_fn+0x10', 'a module symbol, without its module');
  assert.equal(Kallsyms.fromText('').symbolize(0xffffffff81000010n), '0xffffffff81000010');
});

test('kallsyms: lines split across reads; each address looked up once', () => {
  let passes = 0;
  const text = 'ffffffff81000000 T _stext\nffffffff81234500 t ip_forward\nffffffff81235000 T ip_error\n';
  const k = new Kallsyms(() => {
    passes++;
    return [text.slice(0, 30), text.slice(30, 40), text.slice(40, 61), text.slice(61)].map((t) => Buffer.from(t, 'latin1'));
  });
  assert.equal(k.symbolize(0xffffffff812345c0n), 'ip_forward+0xc0');
  assert.equal(k.symbolize(0xffffffff812345c0n), 'ip_forward+0xc0');
  assert.equal(passes, 1);
  assert.equal(k.symbolize(0xffffffff81235001n), 'ip_error+0x1');
});

test("kallsyms: only the core kernel's names are offered for keeping (modules, BPF programs and trampolines come and go); seeded names need no pass", () => {
  const text = ['ffffffff81000000 T _stext', 'ffffffff81234500 t ip_forward', 'ffffffffc0032000 t bpf_prog_6deef7357e7b4530_tp_x\t[bpf]', 'ffffffffc0a01000 t mod_fn\t[mymod]', ''].join('\n');
  const kept: [bigint, string][][] = [];
  const k = Kallsyms.fromText(text);
  k.onLasting = (names) => kept.push([...names]);
  assert.equal(k.symbolize(0xffffffffc0032010n), 'bpf_prog_6deef7357e7b4530_tp_x+0x10');
  assert.equal(k.symbolize(0xffffffffc0a01010n), 'mod_fn+0x10');
  assert.equal(k.symbolize(0x1000n), '0x1000');
  assert.deepEqual(kept, [], 'nothing of the core kernel named yet');
  assert.equal(k.symbolize(0xffffffff812345c0n), 'ip_forward+0xc0');
  assert.deepEqual(kept, [[[0xffffffff812345c0n, 'ip_forward+0xc0']]]);
  let passes = 0;
  const later = new Kallsyms(() => {
    passes++;
    return [Buffer.from(text, 'latin1')];
  });
  later.seed(kept[0]);
  assert.equal(later.symbolize(0xffffffff812345c0n), 'ip_forward+0xc0');
  assert.equal(passes, 0, 'known from the boot before: kallsyms not read');
  const far = Kallsyms.fromText(text);
  const farKept: unknown[] = [];
  far.onLasting = (names) => farKept.push([...names]);
  assert.equal(far.symbolize(0xffffffffb0000000n), 'ip_forward+0x2edcbb00');
  assert.deepEqual(farKept, [], "far past its nearest symbol: outside the kernel's code (a BPF program kallsyms does not list), not kept");
});

test('boot facts: read back within the boot that wrote them, ignored under another boot id', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-facts-'));
  try {
    assert.equal(readBootFact('x', dir, 'boot-a'), null);
    writeBootFact('x', { pointerArgs: true }, dir, 'boot-a');
    assert.deepEqual(readBootFact('x', dir, 'boot-a'), { pointerArgs: true });
    assert.equal(readBootFact('x', dir, 'boot-b'), null, 'a reboot since: measured again');
    assert.deepEqual(fs.readdirSync(dir), ['kernel-x.json'], 'written whole, then renamed: no partial file left');
    fs.writeFileSync(path.join(dir, 'kernel-x.json'), '{"boot":"boot-a","fa');
    assert.equal(readBootFact('x', dir, 'boot-a'), null, 'unreadable: measured again');
    assert.equal(readBootFact('x', dir, ''), null, 'no boot id: nothing trusted');
    writeBootFact('x', { pointerArgs: false }, dir, 'boot-a');
    const raw = JSON.parse(fs.readFileSync(path.join(dir, 'kernel-x.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'kernel-x.json'), JSON.stringify({ ...raw, version: '0.0.0-older' }));
    assert.equal(readBootFact('x', dir, 'boot-a'), null, 'written by another version of tracepkt: measured again');
    writeBootFact('x', { pointerArgs: false }, dir, 'boot-a');
    fs.chmodSync(path.join(dir, 'kernel-x.json'), 0o666);
    assert.equal(readBootFact('x', dir, 'boot-a'), null, 'a file others could have written: not trusted');
    fs.chmodSync(path.join(dir, 'kernel-x.json'), 0o644);
    assert.deepEqual(readBootFact('x', dir, 'boot-a'), { pointerArgs: false });
    fs.chmodSync(dir, 0o777);
    assert.equal(readBootFact('x', dir, 'boot-a'), null, 'in a directory others could write: not trusted');
    fs.chmodSync(dir, 0o700);
    // A link left at the partial file's name is replaced, not written through.
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'untouched');
    fs.symlinkSync(victim, path.join(dir, `kernel-y.json.${process.pid}`));
    writeBootFact('y', { pointerArgs: true }, dir, 'boot-a');
    assert.equal(fs.readFileSync(victim, 'utf8'), 'untouched');
    assert.deepEqual(readBootFact('y', dir, 'boot-a'), { pointerArgs: true });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('rt_tables: numbers to names, comments ignored', () => {
  const t = parseRtTables('#\n# reserved values\n255\tlocal\n254 main\n100 vpn # office\n');
  assert.deepEqual([...t], [[255, 'local'], [254, 'main'], [100, 'vpn']]);
});
