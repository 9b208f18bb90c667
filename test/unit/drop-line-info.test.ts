/** The build takes the line info out of the objects' .BTF.ext (tools/drop-line-info.js): the rest must stay byte for byte. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { dropLineInfo } = require(path.join(__dirname, '../../../tools/drop-line-info.js')) as { dropLineInfo: (ext: Buffer) => Buffer };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { readElf } = require(path.join(__dirname, '../../../tools/gen-bindings.js')) as {
  readElf: (buf: Buffer) => { sections: { name: string }[]; data: (name: string) => Buffer | null };
};

/** A .BTF.ext section as clang writes it: header, then func_info, line_info and core_relo, each a record size and records. */
function section(func: Buffer, line: Buffer, core: Buffer | null): Buffer {
  const hdrLen = core ? 32 : 24;
  const h = Buffer.alloc(hdrLen);
  h.writeUInt16LE(0xeb9f, 0);
  h[2] = 1;
  h.writeUInt32LE(hdrLen, 4);
  h.writeUInt32LE(0, 8);
  h.writeUInt32LE(func.length, 12);
  h.writeUInt32LE(func.length, 16);
  h.writeUInt32LE(line.length, 20);
  if (core) {
    h.writeUInt32LE(func.length + line.length, 24);
    h.writeUInt32LE(core.length, 28);
  }
  return Buffer.concat([h, func, line, core ?? Buffer.alloc(0)]);
}

const parts = (ext: Buffer) => {
  const hdrLen = ext.readUInt32LE(4);
  const at = (f: number) => ext.subarray(hdrLen + ext.readUInt32LE(f), hdrLen + ext.readUInt32LE(f) + ext.readUInt32LE(f + 4));
  return { hdrLen, func: at(8), line: at(16), core: hdrLen >= 32 ? at(24) : null };
};

test('line info taken out of .BTF.ext: function info and CO-RE relocations kept as they were, the header pointing at them', () => {
  const func = Buffer.from('08000000' + 'aa'.repeat(20), 'hex');
  const line = Buffer.from('10000000' + 'bb'.repeat(400), 'hex');
  const core = Buffer.from('10000000' + 'cc'.repeat(36), 'hex');
  const out = dropLineInfo(section(func, line, core));
  const p = parts(out);
  assert.equal(p.hdrLen, 32);
  assert.deepEqual(p.func, func);
  assert.equal(p.line.length, 0);
  assert.deepEqual(p.core, core);
  assert.equal(out.length, 32 + func.length + core.length);
  assert.ok(!out.includes(Buffer.from('bbbbbbbb', 'hex')), 'no line record left');
  // An older header without CO-RE relocations.
  const old = parts(dropLineInfo(section(func, line, null)));
  assert.deepEqual([old.hdrLen, old.func, old.line.length, old.core], [24, func, 0, null]);
});

test('what is not a .BTF.ext section, or points past its end, is refused: the build stops', () => {
  assert.throws(() => dropLineInfo(Buffer.alloc(40)), /not a \.BTF\.ext section/);
  const bad = section(Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8));
  bad.writeUInt32LE(1000, 28);
  assert.throws(() => dropLineInfo(bad), /past the end/);
  const longer = Buffer.concat([section(Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8)), Buffer.alloc(8)]);
  longer.writeUInt32LE(40, 4); // a header with fields this tool does not know
  assert.throws(() => dropLineInfo(longer), /only 24 and 32 are known/);
});

test('the objects built carry no line info (unless built with LINE_INFO=1), and keep their function info and CO-RE relocations', () => {
  const bpfDir = path.join(__dirname, '../../bpf');
  const kept = fs.existsSync(path.join(bpfDir, '.line-info-kept'));
  for (const name of fs.readdirSync(bpfDir).filter((n) => n.endsWith('.bpf.o'))) {
    // The section, by name, as the bindings generator reads the object.
    const elf = readElf(fs.readFileSync(path.join(bpfDir, name)));
    const ext = elf.data('.BTF.ext');
    assert.ok(ext, `${name} has .BTF.ext`);
    const p = parts(ext);
    if (kept) {
      assert.ok(p.line.length > 4, `${name}: built with LINE_INFO=1`);
      continue;
    }
    assert.ok(!elf.sections.some((s) => s.name === '.rel.BTF.ext'), `${name}: relocations of the removed records removed too`);
    assert.equal(p.line.length, 0, name);
    if (name.startsWith('tracepkt')) assert.ok(p.func.length > 4 && p.core!.length > 4, `${name} keeps function info and CO-RE relocations`);
  }
});
