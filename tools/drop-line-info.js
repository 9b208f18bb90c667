#!/usr/bin/env node
// SPDX-License-Identifier: MIT
/*
 * Takes the line info out of a BPF object's .BTF.ext section, keeping its
 * function info and CO-RE relocations. Line info maps each instruction to a
 * line of C: it is only for reading verifier logs, yet it was 0.9 MB of the
 * 3.3 MB tracing object, libbpf parsed it at every open (~9 ms) and the kernel
 * checked it at every load (about a fifth of the verification time). The
 * Makefile dumps the section, runs this on it and puts it back
 * (llvm-objcopy --dump-section / --update-section). Build with
 * `make LINE_INFO=1` to keep it while reading a verifier log.
 *
 *   node tools/drop-line-info.js BTF_EXT_SECTION_FILE   (rewritten in place)
 *
 * Plain JavaScript, no dependency: it runs before the TypeScript is compiled.
 */
'use strict';
const fs = require('node:fs');

const BTF_MAGIC = 0xeb9f;

/**
 * struct btf_ext_header: magic u16, version u8, flags u8, hdr_len u32, then
 * (off, len) u32 pairs for func_info, line_info and, when hdr_len reaches
 * 32, core_relo; offsets count from the end of the header. The result: the
 * same header with line_info empty, func_info and core_relo copied as they
 * are, one after the other.
 */
function dropLineInfo(ext) {
  if (ext.length < 24 || ext.readUInt16LE(0) !== BTF_MAGIC || ext[2] !== 1) throw new Error('not a .BTF.ext section (version 1)');
  const hdrLen = ext.readUInt32LE(4);
  // 24 (no CO-RE relocations) or 32: a longer header would describe parts this does not copy.
  if ((hdrLen !== 24 && hdrLen !== 32) || hdrLen > ext.length) throw new Error(`.BTF.ext header length ${hdrLen}: only 24 and 32 are known`);
  const part = (field) => {
    const off = ext.readUInt32LE(field);
    const len = ext.readUInt32LE(field + 4);
    if (hdrLen + off + len > ext.length) throw new Error('.BTF.ext part past the end of the section');
    return ext.subarray(hdrLen + off, hdrLen + off + len);
  };
  const funcInfo = part(8);
  const coreRelo = hdrLen >= 32 ? part(24) : Buffer.alloc(0);
  const out = Buffer.alloc(hdrLen + funcInfo.length + coreRelo.length);
  ext.copy(out, 0, 0, hdrLen);
  funcInfo.copy(out, hdrLen);
  out.writeUInt32LE(0, 8);
  out.writeUInt32LE(funcInfo.length, 12);
  out.writeUInt32LE(funcInfo.length, 16); // line_info: empty, where it would start
  out.writeUInt32LE(0, 20);
  if (hdrLen >= 32) {
    coreRelo.copy(out, hdrLen + funcInfo.length);
    out.writeUInt32LE(funcInfo.length, 24);
    out.writeUInt32LE(coreRelo.length, 28);
  }
  return out;
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: drop-line-info.js BTF_EXT_SECTION_FILE');
    process.exit(2);
  }
  fs.writeFileSync(file, dropLineInfo(fs.readFileSync(file)));
} else {
  module.exports = { dropLineInfo };
}
