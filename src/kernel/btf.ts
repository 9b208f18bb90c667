/**
 * Just enough of a BTF reader (Documentation/bpf/btf.rst) to read an enum
 * out of the running kernel's type information: drop reasons are numbered
 * differently from one kernel version to the next, so their names come from
 * /sys/kernel/btf/vmlinux, never from a table built in.
 */
import * as fs from 'node:fs';
import { readBootFact, writeBootFact } from './boot-facts';

const BTF_MAGIC = 0xeb9f;
const KIND = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 };

/** Bytes that follow struct btf_type (12 bytes) for each kind, given vlen. */
function trailer(kind: number, vlen: number): number {
  switch (kind) {
    case KIND.INT:
    case KIND.VAR:
    case KIND.DECL_TAG:
      return 4;
    case KIND.ARRAY:
      return 12;
    case KIND.STRUCT:
    case KIND.UNION:
    case KIND.DATASEC:
    case KIND.ENUM64:
      return 12 * vlen;
    case KIND.ENUM:
    case KIND.FUNC_PROTO:
      return 8 * vlen;
    default:
      return 0;
  }
}

/** value → name of every enumerator of the enum named `name`; empty if there is none. */
export function readEnum(btf: Buffer, name: string): Map<number, string> {
  const out = new Map<number, string>();
  if (btf.length < 24 || btf.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not BTF');
  const hdrLen = btf.readUInt32LE(4);
  const typeOff = hdrLen + btf.readUInt32LE(8);
  const typeEnd = typeOff + btf.readUInt32LE(12);
  const strOff = hdrLen + btf.readUInt32LE(16);
  const strEnd = strOff + btf.readUInt32LE(20);
  // Every section inside the file: a reader never follows an offset out of it.
  if (typeEnd > btf.length || strEnd > btf.length || hdrLen < 24) throw new Error('malformed BTF: a section lies past the end');
  const bounded = (off: number, size: number) => {
    if (off + size > typeEnd) throw new Error('malformed BTF: a type runs past its section');
    return off;
  };
  const str = (off: number) => btf.toString('latin1', strOff + off, btf.indexOf(0, strOff + off));
  for (let off = typeOff; off + 12 <= typeEnd; ) {
    const info = btf.readUInt32LE(off + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const body = off + 12;
    if (kind === KIND.ENUM && str(btf.readUInt32LE(off)) === name) {
      const signed = (info >>> 31) === 1;
      for (let i = 0; i < vlen; i++) {
        const e = bounded(body + i * 8, 8);
        out.set(signed ? btf.readInt32LE(e + 4) : btf.readUInt32LE(e + 4), str(btf.readUInt32LE(e)));
      }
      return out;
    }
    off = body + trailer(kind, vlen);
  }
  return out;
}

let dropReasons: Map<number, string> | undefined;

const VMLINUX = '/sys/kernel/btf/vmlinux';
/** The running kernel's reasons, kept for the boot (src/kernel/boot-facts.ts): 5 MB of BTF read once per boot. */
const DROP_REASONS_FACT = 'drop-reasons';

/**
 * kernelDropReasons for callers that may not block for long: a turn of the
 * event loop first lets what is already waiting go on. Not read with
 * promises: sysfs hands out BTF a page per read, and 1,300 trips through
 * libuv's thread pool took ~100 ms where the reads alone take ~25.
 */
export async function kernelDropReasonsAsync(file = VMLINUX): Promise<Map<number, string>> {
  if (!dropReasons) await new Promise((resolve) => setImmediate(resolve));
  return kernelDropReasons(file);
}

let btfUnread = false;

/** Whether the kernel's drop reasons are known, as names or as none (an answer), rather than unread (no BTF file to read). */
export function dropReasonsAnswered(): boolean {
  return dropReasons !== undefined && !btfUnread;
}

/** The drop reason names if they were read already; undefined if not yet. */
export function cachedDropReasons(): Map<number, string> | undefined {
  return dropReasons;
}

/** The running kernel's drop reasons, value → name without SKB_DROP_REASON_; none where its BTF has no enum skb_drop_reason. */
export function kernelDropReasons(file = VMLINUX): Map<number, string> {
  if (dropReasons) return dropReasons;
  const kept = file === VMLINUX ? readBootFact<[number, string][]>(DROP_REASONS_FACT) : null;
  if (Array.isArray(kept) && kept.every((e) => Array.isArray(e) && typeof e[0] === 'number' && typeof e[1] === 'string')) {
    dropReasons = new Map(kept);
    return dropReasons;
  }
  dropReasons = new Map();
  try {
    for (const [value, name] of readEnum(fs.readFileSync(file), 'skb_drop_reason')) dropReasons.set(value, name.replace(/^SKB_DROP_REASON_/, ''));
  } catch {
    btfUnread = true;
    return dropReasons; // no BTF: reasons stay numbers, and it is looked for again next time
  }
  if (file === VMLINUX) writeBootFact(DROP_REASONS_FACT, [...dropReasons]);
  return dropReasons;
}
