/**
 * Runs the eBPF that src/filter/cbpf.ts emits, instruction by instruction,
 * the way the kernel would, for the translation's unit tests. Only what the
 * translation emits is known; anything else throws. Every memory access is
 * checked as the verifier would prove it: inside the buffer (768 bytes, a
 * struct pkt_bytes), inside the packet (before data_end), or a stack word
 * written before it is read. A failed check is an error, not a result: the
 * translation must never need one.
 */
import { EBPF as E, type EbpfInsn } from '../../src/filter/cbpf';

/** A pointer: which memory and where in it. */
interface Ptr {
  region: 'buf' | 'pkt' | 'pktEnd' | 'stack';
  off: number;
}
type Value = bigint | Ptr;

const BUF_SIZE = 768; // struct pkt_bytes
const M64 = (1n << 64n) - 1n;
const M32 = (1n << 32n) - 1n;

const isPtr = (v: Value): v is Ptr => typeof v === 'object';

export interface BufferCall {
  access: 'buffer';
  /** The fetched bytes (placed at the start of a 768-byte buffer). */
  bytes: Buffer;
  /** How many of them were fetched. */
  n: number;
  /** Where the packet starts in them. */
  at: number;
  /** The packet's length from `at`. */
  len: number;
}

export interface PacketCall {
  access: 'packet';
  /** The frame as XDP or tc reads it: [data, data_end). */
  frame: Buffer;
  len: number;
}

/**
 * Throws unless every instruction can be reached from the first and every jump lands inside the
 * slot or on its exit: the kernel's check_cfg refuses unreachable instructions.
 */
export function checkReachable(prog: readonly EbpfInsn[]): void {
  const seen = new Array<boolean>(prog.length).fill(false);
  const todo = [0];
  while (todo.length) {
    const pc = todo.pop()!;
    if (pc === prog.length) continue; // the exit
    if (pc < 0 || pc > prog.length) throw new Error(`a jump to ${pc}, outside the slot`);
    if (seen[pc]) continue;
    seen[pc] = true;
    const i = prog[pc];
    const cls = i.code & 0x07;
    const isJump = cls === E.JMP || cls === E.JMP32;
    if (isJump && (i.code & 0xf0) === 0x00) todo.push(pc + 1 + i.off);
    else if (isJump) todo.push(pc + 1 + i.off, pc + 1);
    else todo.push(pc + 1);
  }
  const unreached = seen.indexOf(false);
  if (unreached >= 0) throw new Error(`instruction ${unreached} cannot be reached: the verifier would refuse the program`);
}

/** Runs `prog` (the slot's instructions; index prog.length is the placeholder's exit). Returns r0. */
export function runEbpf(prog: readonly EbpfInsn[], call: BufferCall | PacketCall): number {
  checkReachable(prog);
  const r: Value[] = new Array(11).fill(0n);
  const stack = new Map<number, number>(); // 32-bit words by offset from r10
  let memory: Buffer;
  if (call.access === 'buffer') {
    memory = Buffer.alloc(BUF_SIZE);
    call.bytes.copy(memory, 0, 0, Math.min(call.bytes.length, BUF_SIZE));
    r[1] = { region: 'buf', off: 0 };
    r[2] = BigInt(call.n);
    r[3] = BigInt(call.at);
  } else {
    memory = call.frame;
    r[1] = { region: 'pkt', off: 0 };
    r[2] = { region: 'pktEnd', off: call.frame.length };
    r[3] = 0n;
  }
  r[4] = BigInt(call.len);
  r[10] = { region: 'stack', off: 0 };

  const scalar = (v: Value, what: string): bigint => {
    if (isPtr(v)) throw new Error(`${what}: a pointer where a number was expected`);
    return v;
  };
  const load = (base: Value, off: number, size: number): bigint => {
    if (!isPtr(base)) throw new Error('load through a number');
    const at = base.off + off;
    if (base.region === 'stack') {
      if (size !== 4 || !stack.has(at)) throw new Error(`read of stack ${at} before it was written`);
      return BigInt(stack.get(at)!);
    }
    if (base.region === 'buf' && (at < 0 || at + size > BUF_SIZE)) throw new Error(`buffer read at ${at} outside ${BUF_SIZE} bytes`);
    if (base.region === 'pkt' && (at < 0 || at + size > checkedEnd)) throw new Error(`packet read at ${at}+${size} not proven below data_end (${checkedEnd})`);
    if (base.region === 'pktEnd') throw new Error('read through data_end');
    return BigInt(memory.readUIntLE(at, size));
  };
  // How far the packet was proven readable (a compare with data_end), as the verifier tracks it.
  let checkedEnd = 0;

  for (let pc = 0; pc <= prog.length; ) {
    if (pc === prog.length) return Number(scalar(r[0], 'r0') & M32);
    const i = prog[pc];
    const cls = i.code & 0x07;
    const op = i.code & 0xf0;
    const useX = (i.code & 0x08) !== 0;
    pc++;
    if (cls === E.ALU || cls === E.ALU64) {
      if (op === E.END) {
        const v = scalar(r[i.dst], 'end') & (i.imm === 16 ? 0xffffn : M32);
        const bytes = Buffer.alloc(8);
        bytes.writeBigUInt64LE(v);
        r[i.dst] = i.imm === 16 ? BigInt(bytes.readUInt16BE(0)) : BigInt(bytes.readUInt32BE(0));
        continue;
      }
      const src: Value = useX ? r[i.src] : BigInt(i.imm); // imm sign-extends
      const dst = r[i.dst];
      if (cls === E.ALU64 && (isPtr(dst) || isPtr(src))) {
        if (op === E.MOV) r[i.dst] = src;
        else if (op === 0x00 && isPtr(dst) && !isPtr(src)) r[i.dst] = { ...dst, off: dst.off + Number(src) };
        else throw new Error(`pointer arithmetic 0x${i.code.toString(16)} not supported`);
        continue;
      }
      const mask = cls === E.ALU ? M32 : M64;
      const a = (op === E.MOV ? 0n : scalar(dst, 'alu')) & mask;
      const b = scalar(src, 'alu') & mask;
      let v: bigint;
      switch (op) {
        case E.MOV: v = b; break;
        case 0x00: v = a + b; break;
        case 0x10: v = a - b; break;
        case 0x20: v = a * b; break;
        case 0x30: v = b === 0n ? 0n : a / b; break;
        case 0x90: v = b === 0n ? a : a % b; break;
        case 0x40: v = a | b; break;
        case 0x50: v = a & b; break;
        case 0xa0: v = a ^ b; break;
        case 0x60: v = a << (b & (cls === E.ALU ? 31n : 63n)); break;
        case 0x70: v = a >> (b & (cls === E.ALU ? 31n : 63n)); break;
        case 0x80: v = -a; break;
        default: throw new Error(`ALU op 0x${op.toString(16)} not supported`);
      }
      r[i.dst] = v & mask;
      continue;
    }
    if (cls === E.LDX) {
      const size = (i.code & 0x18) === E.W ? 4 : (i.code & 0x18) === E.H ? 2 : 1;
      r[i.dst] = load(r[i.src], i.off, size);
      continue;
    }
    if (cls === E.ST || cls === E.STX) {
      const base = r[i.dst];
      if (!isPtr(base) || base.region !== 'stack' || (i.code & 0x18) !== E.W) throw new Error('store other than a stack word');
      const at = base.off + i.off;
      if (at >= 0 || at < -512) throw new Error(`stack store at ${at}`);
      stack.set(at, Number((cls === E.ST ? BigInt(i.imm) : scalar(r[i.src], 'stx')) & M32));
      continue;
    }
    if (cls === E.JMP || cls === E.JMP32) {
      if (op === 0x00) {
        pc += i.off;
        continue;
      }
      if (op === E.EXIT) throw new Error('exit inside the slot');
      const left = r[i.dst];
      const right: Value = useX ? r[i.src] : BigInt(i.imm);
      let a: bigint, b: bigint;
      if (isPtr(left) || isPtr(right)) {
        if (!isPtr(left) || !isPtr(right) || cls !== E.JMP) throw new Error('pointer compared with a number');
        a = BigInt(left.off);
        b = BigInt(right.off);
        // `if ptr + k > data_end goto fail`: on the way on, k bytes from the start are proven readable.
        if (left.region === 'pkt' && right.region === 'pktEnd' && op === 0x20 && left.off <= right.off) checkedEnd = Math.max(checkedEnd, left.off);
      } else {
        const mask = cls === E.JMP32 ? M32 : M64;
        a = left & mask;
        b = right & mask;
      }
      let taken: boolean;
      switch (op) {
        case 0x10: taken = a === b; break;
        case 0x20: taken = a > b; break;
        case 0x30: taken = a >= b; break;
        case 0x40: taken = (a & b) !== 0n; break;
        case E.JLT: taken = a < b; break;
        default: throw new Error(`jump op 0x${op.toString(16)} not supported`);
      }
      if (taken) pc += i.off;
      continue;
    }
    throw new Error(`instruction class ${cls} not supported`);
  }
  throw new Error('ran off the slot');
}
