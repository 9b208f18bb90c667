/**
 * Places a translated filter in an object file's bytes: over the body of
 * bpf/pcap.h's placeholder, found by its two marker instructions and
 * checked instruction by instruction, so that nothing else of the object is
 * ever overwritten. The placeholder and the filter have the same length, so
 * no offset, relocation or BTF line moves; libbpf then opens the bytes.
 */
import { TracepktError } from '../errors';

const INSN = 8;
const MOV_R0 = 0xb7; // r0 = imm32
const JA = 0x05;
const EXIT = 0x95;
/** "tpkt", "filt": the placeholder's two loads of r0 (bpf/pcap.h). */
const MARKERS = [0x74706b74, 0x66696c74];

function markerBytes(): Buffer {
  const b = Buffer.alloc(2 * INSN);
  MARKERS.forEach((m, i) => {
    b[i * INSN] = MOV_R0;
    b.writeUInt32LE(m, i * INSN + 4);
  });
  return b;
}

/** The instruction at `at` is `code` with no registers, offset or immediate. */
const isInsn = (image: Buffer, at: number, code: number) => image[at] === code && image.subarray(at + 1, at + INSN).every((b) => b === 0);

const SHF_EXECINSTR = 0x4;

/** The file ranges [start, end) of an ELF64 object's code sections; none if it is no such object. */
function codeSections(image: Buffer): [number, number][] {
  if (image.length < 64 || image.readUInt32BE(0) !== 0x7f454c46 || image[4] !== 2 || image[5] !== 1) return [];
  const shoff = Number(image.readBigUInt64LE(0x28));
  const shentsize = image.readUInt16LE(0x3a);
  const shnum = image.readUInt16LE(0x3c);
  const sections: [number, number][] = [];
  for (let i = 0; i < shnum && shoff + (i + 1) * shentsize <= image.length; i++) {
    const sh = shoff + i * shentsize;
    if ((Number(image.readBigUInt64LE(sh + 8)) & SHF_EXECINSTR) === 0) continue;
    const start = Number(image.readBigUInt64LE(sh + 24));
    sections.push([start, Math.min(image.length, start + Number(image.readBigUInt64LE(sh + 32)))]);
  }
  return sections;
}

/**
 * Where the placeholder starts in the object file: the marker, once in all
 * its code (searched there only: the file is megabytes of BTF and DWARF),
 * on an instruction boundary; throws when it is missing, ambiguous or not
 * as built.
 */
export function findSlot(image: Buffer, slots: number, file: string): number {
  const marker = markerBytes();
  const found: number[] = [];
  for (const [start, end] of codeSections(image)) {
    const code = image.subarray(start, end);
    for (let at = code.indexOf(marker); at >= 0; at = code.indexOf(marker, at + 1)) if (at % INSN === 0) found.push(start + at);
  }
  if (found.length !== 1) throw new TracepktError(`${file}: no single filter slot in the object (rebuild it: make)`);
  const [at] = found;
  for (let i = 2; i < slots; i++) {
    if (!isInsn(image, at + i * INSN, JA)) throw new TracepktError(`${file}: the filter slot is not as bpf/pcap.h builds it (rebuild it: make)`);
  }
  if (!isInsn(image, at + slots * INSN, EXIT)) throw new TracepktError(`${file}: the filter slot does not end with its exit (rebuild it: make)`);
  return at;
}

/** The object file's bytes `image` with `code` (exactly `slots` eBPF instructions) in the filter slot: changed in place. */
export function placeFilter(image: Buffer, code: Buffer, slots: number, file: string): Buffer {
  if (code.length !== slots * INSN) throw new RangeError(`the filter must be ${slots} instructions, not ${code.length / INSN}`);
  code.copy(image, findSlot(image, slots, file));
  return image;
}
