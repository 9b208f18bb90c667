#!/usr/bin/env node
// SPDX-License-Identifier: MIT
/*
 * Generates the TypeScript view of a built BPF object from the object itself:
 * the layout of every `tp_*` struct (offsets and sizes as clang laid them out,
 * read from the object's BTF), every `tp_*` enum, and the names of its
 * programs (with their ELF sections), maps and globals. The C header stays the
 * only contract: adding a field is one edit there, and the next build carries it
 * here. The output is not edited by hand (the Makefile writes it into
 * src/bpf/generated/ before tsc runs).
 *
 *   node tools/gen-bindings.js OBJECT.bpf.o > src/bpf/generated/NAME.ts
 *
 * Plain JavaScript, no dependency: it runs before the TypeScript is compiled.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/* ---- ELF (64-bit little-endian, as clang -target bpf writes it) ---- */

function readElf(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    sections.push({
      nameOff: buf.readUInt32LE(at),
      type: buf.readUInt32LE(at + 4),
      offset: Number(buf.readBigUInt64LE(at + 0x18)),
      size: Number(buf.readBigUInt64LE(at + 0x20)),
      link: buf.readUInt32LE(at + 0x28),
      entsize: Number(buf.readBigUInt64LE(at + 0x38)),
    });
  }
  const strtab = sections[shstrndx];
  const cstr = (off, base) => buf.toString('latin1', base + off, buf.indexOf(0, base + off));
  for (const s of sections) s.name = cstr(s.nameOff, strtab.offset);
  const symtab = sections.find((s) => s.type === 2 /* SHT_SYMTAB */);
  const symbols = [];
  if (symtab) {
    const names = sections[symtab.link];
    for (let at = symtab.offset; at + 24 <= symtab.offset + symtab.size; at += 24) {
      const info = buf[at + 4];
      symbols.push({ name: cstr(buf.readUInt32LE(at), names.offset), type: info & 0xf, bind: info >> 4, section: buf.readUInt16LE(at + 6) });
    }
  }
  return { sections, symbols, data: (name) => { const s = sections.find((x) => x.name === name); return s ? buf.subarray(s.offset, s.offset + s.size) : null; } };
}

/* ---- BTF (Documentation/bpf/btf.rst) ---- */

const KIND = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 };

function readBtf(btf) {
  if (btf.readUInt16LE(0) !== 0xeb9f) throw new Error('not BTF');
  const hdrLen = btf.readUInt32LE(4);
  const typeOff = hdrLen + btf.readUInt32LE(8);
  const typeEnd = typeOff + btf.readUInt32LE(12);
  const strOff = hdrLen + btf.readUInt32LE(16);
  const str = (off) => btf.toString('latin1', strOff + off, btf.indexOf(0, strOff + off));
  const types = [null]; // id 0: void
  for (let off = typeOff; off < typeEnd; ) {
    const name = str(btf.readUInt32LE(off));
    const info = btf.readUInt32LE(off + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const sizeOrType = btf.readUInt32LE(off + 8);
    const t = { name, kind, vlen, sizeOrType, kflag: info >>> 31 };
    let body = off + 12;
    switch (kind) {
      case KIND.INT: t.bits = btf.readUInt32LE(body) & 0xff; t.bitOffset = (btf.readUInt32LE(body) >>> 16) & 0xff; body += 4; break;
      case KIND.ARRAY: t.elem = btf.readUInt32LE(body); t.nelems = btf.readUInt32LE(body + 8); body += 12; break;
      case KIND.STRUCT:
      case KIND.UNION:
        t.members = [];
        for (let i = 0; i < vlen; i++, body += 12) {
          const offset = btf.readUInt32LE(body + 8);
          t.members.push({ name: str(btf.readUInt32LE(body)), type: btf.readUInt32LE(body + 4), bitOffset: t.kflag ? offset & 0xffffff : offset, bitSize: t.kflag ? offset >>> 24 : 0 });
        }
        break;
      case KIND.ENUM:
        t.values = [];
        for (let i = 0; i < vlen; i++, body += 8) t.values.push({ name: str(btf.readUInt32LE(body)), value: btf.readInt32LE(body + 4) });
        break;
      case KIND.ENUM64:
        t.values = [];
        for (let i = 0; i < vlen; i++, body += 12) t.values.push({ name: str(btf.readUInt32LE(body)), value: btf.readUInt32LE(body + 4) + btf.readUInt32LE(body + 8) * 2 ** 32 });
        break;
      case KIND.FUNC_PROTO: body += 8 * vlen; break;
      case KIND.VAR: body += 4; break;
      case KIND.DATASEC:
        t.vars = [];
        for (let i = 0; i < vlen; i++, body += 12) t.vars.push({ type: btf.readUInt32LE(body), offset: btf.readUInt32LE(body + 4), size: btf.readUInt32LE(body + 8) });
        break;
      case KIND.DECL_TAG: body += 4; break;
      case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
      case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: break;
      default: throw new Error(`unknown BTF kind ${kind}: this generator cannot read past it`);
    }
    types.push(t);
    off = body;
  }
  return types;
}

function sizeOf(types, id) {
  const t = types[id];
  if (!t) return 0;
  switch (t.kind) {
    case KIND.INT: case KIND.STRUCT: case KIND.UNION: case KIND.ENUM: case KIND.ENUM64: case KIND.FLOAT: case KIND.DATASEC: return t.sizeOrType;
    case KIND.PTR: return 8;
    case KIND.ARRAY: return t.nelems * sizeOf(types, t.elem);
    case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT: case KIND.TYPE_TAG: case KIND.VAR: return sizeOf(types, t.sizeOrType);
    default: throw new Error(`no size for BTF kind ${t.kind}`);
  }
}

/* Through typedefs and qualifiers to the type itself. */
function resolve(types, id) {
  let t = types[id];
  while (t && [KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG].includes(t.kind)) t = types[t.sizeOrType];
  return t;
}

/*
 * A struct's fields at absolute offsets: nested structs become objects;
 * anonymous unions and structs are flattened in. Bit fields are refused:
 * JavaScript reads whole bytes, and the contract has none.
 */
function layout(types, t, base) {
  const out = { $offset: base, $size: t.sizeOrType };
  for (const m of t.members) {
    const mt = resolve(types, m.type);
    const intBits = mt.kind === KIND.INT && (mt.bitOffset !== 0 || mt.bits !== mt.sizeOrType * 8);
    if (m.bitOffset % 8 || m.bitSize || intBits) throw new Error(`bit field ${t.name}.${m.name} is not supported`);
    const at = base + m.bitOffset / 8;
    if ((mt.kind === KIND.STRUCT || mt.kind === KIND.UNION) && m.name === '') {
      const { $offset, $size, ...fields } = layout(types, mt, at); // the members, not the anonymous one's own place
      Object.assign(out, fields);
    }
    else if (mt.kind === KIND.STRUCT && mt.name !== '') out[m.name] = layout(types, mt, at);
    else out[m.name] = [at, sizeOf(types, m.type)];
  }
  return out;
}

function emit(value, indent) {
  if (Array.isArray(value)) return `[${value.join(', ')}]`;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  const pad = '  '.repeat(indent + 1);
  const entries = Object.entries(value).map(([k, v]) => `${pad}${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${emit(v, indent + 1)},`);
  return `{\n${entries.join('\n')}\n${'  '.repeat(indent)}}`;
}

function generate(file) {
  const elf = readElf(fs.readFileSync(file));
  const btfData = elf.data('.BTF');
  if (!btfData) throw new Error(`${file} has no BTF (build it with clang -g)`);
  const types = readBtf(btfData);

  const structs = {};
  const enums = {};
  for (const t of types.slice(1)) {
    if (!t.name.startsWith('tp_')) continue;
    if (t.kind === KIND.STRUCT && !structs[t.name]) structs[t.name] = layout(types, t, 0);
    if ((t.kind === KIND.ENUM || t.kind === KIND.ENUM64) && !enums[t.name]) enums[t.name] = Object.fromEntries(t.values.map((v) => [v.name, v.value]));
  }

  // Programs: global functions in sections of their own (a global subprogram lives in .text).
  const programs = {};
  const maps = {};
  for (const s of elf.symbols) {
    const section = elf.sections[s.section];
    if (!section || s.bind !== 1 /* STB_GLOBAL */) continue;
    if (s.type === 2 /* STT_FUNC */ && section.name !== '.text') programs[s.name] = section.name;
    if (section.name === '.maps') maps[s.name] = s.name;
  }
  // Globals: the variables of the object's data sections, with their struct type where they have one.
  const globals = {};
  for (const t of types.slice(1)) {
    if (t.kind !== KIND.DATASEC || !/^\.(rodata|bss|data)/.test(t.name)) continue;
    for (const v of t.vars) {
      const vt = types[v.type];
      const st = resolve(types, vt.sizeOrType);
      if (!vt.name.endsWith('_btf_anchor')) globals[vt.name] = { section: t.name, type: st && st.name ? st.name : '', size: v.size };
    }
  }

  const name = path.basename(file).replace(/\.bpf\.o$/, '');
  const lines = [
    `// Generated by tools/gen-bindings.js from ${name}.bpf.o (its BTF and ELF symbols): do not edit.`,
    '// The contract is the C header; change it there and rebuild.',
    '/* eslint-disable */',
    '',
    '/** [offset, size] in bytes; nested structs carry their own $offset and $size. */',
    'export type Field = readonly [offset: number, size: number];',
    '',
  ];
  for (const [k, v] of Object.entries(structs)) lines.push(`export const ${k} = ${emit(v, 0)} as const;`, '');
  for (const [k, v] of Object.entries(enums)) lines.push(`export const ${k} = ${emit(v, 0)} as const;`, '');
  lines.push(`/** The object's programs and their ELF sections. */`, `export const programs = ${emit(programs, 0)} as const;`, '');
  lines.push(`export type ProgramName = keyof typeof programs;`, '');
  lines.push(`/** The object's maps. */`, `export const maps = ${emit(maps, 0)} as const;`, '');
  lines.push(`/** The object's global variables: data section, struct type, size. */`, `export const globals = ${emit(globals, 0)} as const;`, '');
  return lines.join('\n');
}

module.exports = { generate, readElf, readBtf };

if (require.main === module) {
  const [file] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: gen-bindings.js OBJECT.bpf.o\n');
    process.exit(2);
  }
  try {
    process.stdout.write(generate(file));
  } catch (err) {
    process.stderr.write(`gen-bindings: ${file}: ${err.message}\n`);
    process.exit(1);
  }
}
