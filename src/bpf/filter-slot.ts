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

/** Where the placeholder starts in the object file; throws when it is missing, ambiguous or not as built. */
export function findSlot(image: Buffer, slots: number, file: string): number {
  const marker = markerBytes();
  const at = image.indexOf(marker);
  if (at < 0 || at % INSN !== 0 || image.indexOf(marker, at + 1) >= 0) {
    throw new TracepktError(`${file}: no single filter slot in the object (rebuild it: make)`);
  }
  for (let i = 2; i < slots; i++) {
    if (!isInsn(image, at + i * INSN, JA)) throw new TracepktError(`${file}: the filter slot is not as bpf/pcap.h builds it (rebuild it: make)`);
  }
  if (!isInsn(image, at + slots * INSN, EXIT)) throw new TracepktError(`${file}: the filter slot does not end with its exit (rebuild it: make)`);
  return at;
}

/** A copy of the object file with `code` (exactly `slots` eBPF instructions) in the filter slot. */
export function placeFilter(image: Buffer, code: Buffer, slots: number, file: string): Buffer {
  if (code.length !== slots * INSN) throw new RangeError(`the filter must be ${slots} instructions, not ${code.length / INSN}`);
  const at = findSlot(image, slots, file);
  const out = Buffer.from(image);
  code.copy(out, at);
  return out;
}
