/**
 * Classic BPF, as libpcap compiles a pcap-filter expression: decoding, a
 * reference interpreter (the semantics the kernel gives classic programs),
 * and the translation to eBPF that runs in tracepkt's programs, in the slot
 * bpf/pcap.h reserves.
 *
 * The translation keeps classic BPF's meaning exactly, with one difference
 * it cannot avoid: tracepkt's programs see the first bytes of a packet (what
 * was fetched), not all of it. A load past them ends the program with 0 (no
 * match), as a load past the end of the packet does in classic BPF. How far
 * a filter may read is checked before anything loads (`reach`).
 *
 * Two calling conventions, for the two ways a hook holds its packet:
 *   'buffer'  r1 = the fetched bytes (a map value or a global function's
 *             memory argument), r2 = how many were fetched, r3 = where the
 *             packet starts in them, r4 = the packet's length from there
 *             (the tracing programs: the packet, the packet an ICMP error
 *             quotes, the packet inside a tunnel)
 *   'packet'  r1 = data, r2 = data_end (direct packet access: XDP and tc),
 *             r4 = the frame's length (mangle)
 * Registers: A in r6, X in r7, M[] on the stack (32-bit words below r10),
 * r0 the result, r5/r8/r9 scratch.
 */

/** One classic instruction (struct bpf_insn of libpcap's bpf.h). */
export interface ClassicInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export type Access = 'buffer' | 'packet';

/** A classic program tracepkt cannot run as asked: one line for the user. */
export class FilterProgramError extends Error {}

// Classic BPF's encoding (linux/filter.h, pcap/bpf.h).
const cls = (code: number) => code & 0x07;
const size = (code: number) => code & 0x18;
const mode = (code: number) => code & 0xe0;
const op = (code: number) => code & 0xf0;
const src = (code: number) => code & 0x08;
const LD = 0x00, LDX = 0x01, ST = 0x02, STX = 0x03, ALU = 0x04, JMP = 0x05, RET = 0x06, MISC = 0x07;
const W = 0x00, H = 0x08, B = 0x10;
const IMM = 0x00, ABS = 0x20, IND = 0x40, MEM = 0x60, LEN = 0x80, MSH = 0xa0;
const ADD = 0x00, SUB = 0x10, MUL = 0x20, DIV = 0x30, OR = 0x40, AND = 0x50, LSH = 0x60, RSH = 0x70, NEG = 0x80, MOD = 0x90, XOR = 0xa0;
const JA = 0x00, JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40;
const K = 0x00, X = 0x08;
const RVAL_A = 0x10;
const TAX = 0x00, TXA = 0x80;
/** Scratch memory words (BPF_MEMWORDS). */
export const MEM_WORDS = 16;

/**
 * How far into the packet tracepkt's programs can read: the bytes fetched
 * from the network header (bpf/packet.h: PKT_BYTES), and what the mangling
 * programs read of a frame.
 */
export const PACKET_REACH = 256;
/** X as libpcap sets it before an indirect load: an IPv4 header's length (4 * ihl), at most 60. */
const INDEX_MAX = 60;

export function decodeClassic(buf: Buffer): ClassicInsn[] {
  if (buf.length % 8) throw new FilterProgramError(`a classic BPF program is whole 8-byte instructions, not ${buf.length} bytes`);
  const prog: ClassicInsn[] = [];
  for (let at = 0; at < buf.length; at += 8) {
    prog.push({ code: buf.readUInt16LE(at), jt: buf[at + 2], jf: buf[at + 3], k: buf.readUInt32LE(at + 4) });
  }
  return prog;
}

const bytesOf = (code: number) => (size(code) === W ? 4 : size(code) === H ? 2 : 1);

/** A classic instruction as `tcpdump -d` shows it, for messages. */
function describe(i: ClassicInsn, pc: number): string {
  return `instruction ${pc} (code 0x${i.code.toString(16).padStart(2, '0')}, k ${i.k})`;
}

/**
 * Checks what the kernel's classic BPF checker checks (jumps inside, memory
 * words, no division by a constant 0, shifts below 32, a return at the
 * end), plus what tracepkt's programs lack: Linux's ancillary data (negative
 * offsets, which libpcap uses only on live Linux captures). Returns which
 * instructions can run at all: those are the ones translated.
 */
export function checkClassic(prog: readonly ClassicInsn[]): boolean[] {
  if (prog.length === 0) throw new FilterProgramError('the filter program is empty');
  const reachable = new Array<boolean>(prog.length).fill(false);
  reachable[0] = true;
  prog.forEach((i, pc) => {
    if (!reachable[pc]) return;
    const to = (target: number) => {
      if (target >= prog.length) throw new FilterProgramError(`${describe(i, pc)} jumps past the end`);
      reachable[target] = true;
    };
    switch (cls(i.code)) {
      case LD:
      case LDX: {
        const m = mode(i.code);
        if ((m === ABS || m === IND || m === MSH) && i.k >= 0x80000000) {
          throw new FilterProgramError('the filter reads Linux ancillary data (negative offsets), which tracepkt cannot give it');
        }
        if (m === MEM && i.k >= MEM_WORDS) throw new FilterProgramError(`${describe(i, pc)} uses memory word ${i.k}`);
        const known = cls(i.code) === LD ? [IMM, ABS, IND, MEM, LEN] : [IMM, MEM, LEN, MSH];
        if (!known.includes(m) || (m === MSH && size(i.code) !== B) || (m !== MSH && size(i.code) === 0x18)) {
          throw new FilterProgramError(`${describe(i, pc)} is not a classic BPF load`);
        }
        break;
      }
      case ST:
      case STX:
        if (i.k >= MEM_WORDS) throw new FilterProgramError(`${describe(i, pc)} uses memory word ${i.k}`);
        break;
      case ALU: {
        const o = op(i.code);
        if (![ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR].includes(o)) throw new FilterProgramError(`${describe(i, pc)} is not a classic BPF operation`);
        if (src(i.code) === K && (o === DIV || o === MOD) && i.k === 0) throw new FilterProgramError('the filter divides by zero');
        if (src(i.code) === K && (o === LSH || o === RSH) && i.k >= 32) throw new FilterProgramError(`${describe(i, pc)} shifts by ${i.k}`);
        break;
      }
      case JMP: {
        const o = op(i.code);
        if (o === JA) {
          // libpcap jumps back only for `protochain` (a loop over IPv6 extension headers): the
          // kernel's verifier cannot prove such a loop ends.
          if (i.k >= 0x80000000) throw new FilterProgramError('the filter loops (as protochain does), which the kernel cannot verify');
          to(pc + 1 + i.k);
          return;
        }
        if (![JEQ, JGT, JGE, JSET].includes(o)) throw new FilterProgramError(`${describe(i, pc)} is not a classic BPF jump`);
        to(pc + 1 + i.jt);
        to(pc + 1 + i.jf);
        return;
      }
      case RET:
        return;
      case MISC:
        if (i.code !== (MISC | TAX) && i.code !== (MISC | TXA)) throw new FilterProgramError(`${describe(i, pc)} is not a classic BPF instruction`);
        break;
    }
    if (pc + 1 >= prog.length) throw new FilterProgramError('the filter program does not end with a return');
    reachable[pc + 1] = true;
  });
  return reachable;
}

/**
 * The furthest byte of the packet the filter may read (plus one), so that
 * the programs fetch (tracing) or make readable (mangle's transmit path) that
 * much. Indirect loads count X as an IPv4 header's length (4 * ihl, at most
 * 60) where only that sets X (`ldx 4*([k]&0xf)`); where X comes from
 * anything else (`tax`: an offset computed from the packet, as in
 * `tcp[(tcp[12] & 0xf0) >> 2]`), it could be anywhere: everything the
 * programs can read.
 */
export function reach(prog: readonly ClassicInsn[]): number {
  let far = 0;
  const xFromHeaderLength = prog.every((i) => !(cls(i.code) === LDX && mode(i.code) !== MSH) && i.code !== (MISC | TAX));
  for (const i of prog) {
    const c = cls(i.code);
    const m = mode(i.code);
    if (c === LD && m === ABS) far = Math.max(far, i.k + bytesOf(i.code));
    if (c === LD && m === IND) far = Math.max(far, xFromHeaderLength ? INDEX_MAX + i.k + bytesOf(i.code) : PACKET_REACH);
    if (c === LDX && m === MSH) far = Math.max(far, i.k + 1);
  }
  return far;
}

/**
 * Runs a classic program on a packet as the kernel runs classic BPF: the
 * reference the translation is tested against. `bytes` are the packet's
 * bytes readable (all of it, or its first bytes), `wireLen` its length.
 * Returns the program's result (0: no match).
 */
export function runClassic(prog: readonly ClassicInsn[], bytes: Buffer, wireLen = bytes.length): number {
  checkClassic(prog);
  let A = 0;
  let Xr = 0;
  const M = new Uint32Array(MEM_WORDS);
  const load = (at: number, n: number): number | null => {
    if (at < 0 || at + n > bytes.length) return null;
    return n === 4 ? bytes.readUInt32BE(at) : n === 2 ? bytes.readUInt16BE(at) : bytes[at];
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc];
    const c = cls(i.code);
    if (c === LD || c === LDX) {
      const m = mode(i.code);
      let v: number | null;
      if (m === IMM) v = i.k;
      else if (m === LEN) v = wireLen;
      else if (m === MEM) v = M[i.k];
      else if (m === ABS) v = load(i.k, bytesOf(i.code));
      else if (m === IND) v = load((Xr + i.k) >>> 0, bytesOf(i.code));
      else {
        const b = load(i.k, 1); // MSH
        v = b === null ? null : (b & 0xf) * 4;
      }
      if (v === null) return 0;
      if (c === LD) A = v >>> 0;
      else Xr = v >>> 0;
    } else if (c === ST) M[i.k] = A;
    else if (c === STX) M[i.k] = Xr;
    else if (c === ALU) {
      const o = op(i.code);
      const v = src(i.code) === X ? Xr : i.k;
      if ((o === DIV || o === MOD) && v === 0) return 0;
      switch (o) {
        case ADD: A = (A + v) >>> 0; break;
        case SUB: A = (A - v) >>> 0; break;
        case MUL: A = Math.imul(A, v) >>> 0; break;
        case DIV: A = Math.floor(A / v) >>> 0; break;
        case MOD: A = A % v >>> 0; break;
        case OR: A = (A | v) >>> 0; break;
        case AND: A = (A & v) >>> 0; break;
        case XOR: A = (A ^ v) >>> 0; break;
        case LSH: A = v >= 32 ? 0 : (A << v) >>> 0; break;
        case RSH: A = v >= 32 ? 0 : A >>> v; break;
        case NEG: A = -A >>> 0; break;
      }
    } else if (c === JMP) {
      const o = op(i.code);
      if (o === JA) {
        pc += i.k;
        continue;
      }
      const v = src(i.code) === X ? Xr : i.k;
      const taken = o === JEQ ? A === v : o === JGT ? A > v : o === JGE ? A >= v : (A & v) !== 0;
      pc += taken ? i.jt : i.jf;
    } else if (c === RET) {
      return (src(i.code) === X ? Xr : (i.code & 0x18) === RVAL_A ? A : i.k) >>> 0;
    } else if (c === MISC) {
      if (i.code === (MISC | TAX)) Xr = A;
      else A = Xr;
    }
  }
  return 0;
}

// ---- eBPF ----

/** eBPF's encoding (linux/bpf.h). */
export const EBPF = {
  LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, JMP32: 0x06, ALU64: 0x07,
  W: 0x00, H: 0x08, B: 0x10, MEM: 0x60,
  MOV: 0xb0, END: 0xd0, TO_BE: 0x08,
  JLT: 0xa0, EXIT: 0x90,
} as const;
const E = EBPF;

export interface EbpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const R = { ret: 0, base: 1, avail: 2, at: 3, len: 4, tmp: 5, A: 6, X: 7, off: 8, end: 9, fp: 10, pktEnd: 2 } as const;

const ins = (code: number, dst: number, srcReg: number, off: number, imm: number): EbpfInsn => ({ code, dst, src: srcReg, off, imm: imm | 0 });
const alu32 = (o: number, dst: number, k: number) => ins(E.ALU | o | K, dst, 0, 0, k);
const alu32x = (o: number, dst: number, s: number) => ins(E.ALU | o | X, dst, s, 0, 0);
const alu64 = (o: number, dst: number, k: number) => ins(E.ALU64 | o | K, dst, 0, 0, k);
const alu64x = (o: number, dst: number, s: number) => ins(E.ALU64 | o | X, dst, s, 0, 0);
const ldx = (sz: number, dst: number, s: number, off: number) => ins(E.LDX | E.MEM | sz, dst, s, off, 0);
const stx = (dst: number, s: number, off: number) => ins(E.STX | E.MEM | E.W, dst, s, off, 0);
const memSlot = (k: number) => -4 * (k + 1);

/** An instruction with a jump to a label resolved after layout. */
interface Pending {
  insn: EbpfInsn;
  target?: number | 'fail' | 'end';
}

/**
 * Translates a checked classic program into eBPF for `slots` instructions of
 * bpf/pcap.h's placeholder: the result is exactly `slots` instructions
 * (no-ops first), every path ending with r0 set and a jump to the
 * placeholder's exit, which follows the slots.
 */
export function translate(prog: readonly ClassicInsn[], access: Access, slots: number): EbpfInsn[] {
  const reachable = checkClassic(prog);
  const far = reach(prog);
  if (far > PACKET_REACH) {
    throw new FilterProgramError(`the filter reads up to byte ${far} of the packet; tracepkt's programs see its first ${PACKET_REACH}`);
  }
  const body: Pending[] = [];
  const start = new Array<number>(prog.length).fill(-1);
  const usedWords = new Set<number>();
  for (const i of prog) if ((cls(i.code) === ST || cls(i.code) === STX || ((cls(i.code) === LD || cls(i.code) === LDX) && mode(i.code) === MEM))) usedWords.add(i.k);

  const emit = (insn: EbpfInsn, target?: Pending['target']) => body.push({ insn, target });
  const fail = (insn: EbpfInsn) => emit(insn, 'fail');

  // Prologue: where the packet starts, how many of its bytes are readable; A = X = 0, M[] zeroed
  // (the verifier refuses reads of stack it has not seen written).
  if (access === 'buffer') {
    // The arguments are 32-bit: whatever the caller left in the upper halves goes.
    emit(alu32x(E.MOV, R.at, R.at));
    emit(alu32x(E.MOV, R.avail, R.avail));
    fail(ins(E.JMP | JGT | K, R.at, 0, 0, PACKET_REACH - 1));
    fail(ins(E.JMP | JGT | X, R.at, R.avail, 0, 0));
    emit(alu64x(SUB, R.avail, R.at));
    emit(alu64x(ADD, R.base, R.at));
  }
  emit(alu32(E.MOV, R.A, 0));
  emit(alu32(E.MOV, R.X, 0));
  for (const k of [...usedWords].sort((a, b) => a - b)) emit(ins(E.ST | E.MEM | E.W, R.fp, 0, memSlot(k), 0));

  /** Loads `n` bytes at constant offset `k` into `dst`, in host order; fails the filter past the readable bytes. */
  const loadAbs = (dst: number, k: number, n: number) => {
    const sz = n === 4 ? E.W : n === 2 ? E.H : E.B;
    if (access === 'buffer') {
      fail(ins(E.JMP | E.JLT | K, R.avail, 0, 0, k + n));
      emit(ldx(sz, dst, R.base, k));
    } else {
      emit(alu64x(E.MOV, R.tmp, R.base));
      emit(alu64(ADD, R.tmp, k + n));
      fail(ins(E.JMP | JGT | X, R.tmp, R.pktEnd, 0, 0));
      emit(ldx(sz, dst, R.base, k));
    }
    if (n > 1) emit(ins(E.ALU | E.END | E.TO_BE, dst, 0, 0, n * 8));
  };
  /** A = P[X + k : n]. The offset bounded for the verifier, then checked against what is readable. */
  const loadInd = (k: number, n: number) => {
    const sz = n === 4 ? E.W : n === 2 ? E.H : E.B;
    emit(alu32x(E.MOV, R.off, R.X));
    emit(alu32(ADD, R.off, k));
    fail(ins(E.JMP | JGT | K, R.off, 0, 0, PACKET_REACH - n));
    emit(alu64x(E.MOV, R.tmp, R.base));
    emit(alu64x(ADD, R.tmp, R.off));
    if (access === 'buffer') {
      emit(alu64x(E.MOV, R.end, R.off));
      emit(alu64(ADD, R.end, n));
      fail(ins(E.JMP | JGT | X, R.end, R.avail, 0, 0));
    } else {
      emit(alu64x(E.MOV, R.end, R.tmp));
      emit(alu64(ADD, R.end, n));
      fail(ins(E.JMP | JGT | X, R.end, R.pktEnd, 0, 0));
    }
    emit(ldx(sz, R.A, R.tmp, 0));
    if (n > 1) emit(ins(E.ALU | E.END | E.TO_BE, R.A, 0, 0, n * 8));
  };

  prog.forEach((i, pc) => {
    if (!reachable[pc]) return;
    start[pc] = body.length;
    const c = cls(i.code);
    const m = mode(i.code);
    const dst = c === LD ? R.A : R.X;
    switch (c) {
      case LD:
      case LDX:
        if (m === IMM) emit(alu32(E.MOV, dst, i.k));
        else if (m === LEN) emit(alu32x(E.MOV, dst, R.len));
        else if (m === MEM) emit(ldx(E.W, dst, R.fp, memSlot(i.k)));
        else if (m === ABS) loadAbs(R.A, i.k, bytesOf(i.code));
        else if (m === IND) loadInd(i.k, bytesOf(i.code));
        else {
          loadAbs(R.X, i.k, 1); // MSH: X = 4 * (P[k] & 0xf)
          emit(alu32(AND, R.X, 0xf));
          emit(alu32(LSH, R.X, 2));
        }
        return;
      case ST:
      case STX:
        emit(stx(R.fp, c === ST ? R.A : R.X, memSlot(i.k)));
        return;
      case ALU: {
        const o = op(i.code);
        if (o === NEG) emit(ins(E.ALU | NEG, R.A, 0, 0, 0));
        else if (src(i.code) === K) emit(alu32(o, R.A, i.k));
        else if (o === LSH || o === RSH) {
          // Classic BPF shifts by 32 or more to 0; eBPF (and x86) would shift by X & 31.
          emit(ins(E.JMP32 | JGT | K, R.X, 0, 2, 31));
          emit(alu32x(o, R.A, R.X));
          emit(ins(E.JMP | JA, 0, 0, 1, 0));
          emit(alu32(E.MOV, R.A, 0));
        } else {
          // Classic BPF ends the program on a division by 0; eBPF would go on with 0.
          if (o === DIV || o === MOD) fail(ins(E.JMP32 | JEQ | K, R.X, 0, 0, 0));
          emit(alu32x(o, R.A, R.X));
        }
        return;
      }
      case JMP: {
        const o = op(i.code);
        if (o === JA) {
          emit(ins(E.JMP | JA, 0, 0, 0, 0), pc + 1 + i.k);
          return;
        }
        const t = pc + 1 + i.jt;
        const f = pc + 1 + i.jf;
        if (t === f) {
          emit(ins(E.JMP | JA, 0, 0, 0, 0), t);
          return;
        }
        // 32-bit compares: A is 32 bits, and a 64-bit compare would sign-extend k.
        emit(src(i.code) === X ? ins(E.JMP32 | o | X, R.A, R.X, 0, 0) : ins(E.JMP32 | o | K, R.A, 0, 0, i.k), t);
        if (f !== pc + 1) emit(ins(E.JMP | JA, 0, 0, 0, 0), f);
        return;
      }
      case RET: {
        const v = src(i.code) === X ? R.X : (i.code & 0x18) === RVAL_A ? R.A : -1;
        emit(v < 0 ? alu32(E.MOV, R.ret, i.k) : alu32x(E.MOV, R.ret, v));
        emit(ins(E.JMP | JA, 0, 0, 0, 0), 'end');
        return;
      }
      case MISC:
        emit(i.code === (MISC | TAX) ? alu32x(E.MOV, R.X, R.A) : alu32x(E.MOV, R.A, R.X));
        return;
    }
  });
  // The shared "no match" of loads past the readable bytes and divisions by 0, where some instruction
  // goes there: an instruction nothing reaches would make the verifier refuse the program.
  const failAt = body.length;
  if (body.some((p) => p.target === 'fail')) {
    emit(alu32(E.MOV, R.ret, 0));
    emit(ins(E.JMP | JA, 0, 0, 0, 0), 'end');
  }

  if (body.length > slots) {
    throw new FilterProgramError(`the filter takes ${body.length} kernel instructions; tracepkt's programs hold ${slots}`);
  }
  // No-ops first (the verifier removes them): the code ends at the slots' end, so its last jump to the
  // placeholder's exit is a jump by 0, and every instruction is reachable.
  const pad = slots - body.length;
  const out: EbpfInsn[] = Array.from({ length: pad }, () => ins(E.JMP | JA, 0, 0, 0, 0));
  body.forEach((p, n) => {
    const here = pad + n;
    if (p.target !== undefined) {
      const to = p.target === 'end' ? slots : p.target === 'fail' ? pad + failAt : pad + start[p.target];
      out.push({ ...p.insn, off: to - (here + 1) });
    } else out.push(p.insn);
  });
  return out;
}

export function encodeEbpf(prog: readonly EbpfInsn[]): Buffer {
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach((i, n) => {
    buf[n * 8] = i.code;
    buf[n * 8 + 1] = (i.src << 4) | i.dst;
    buf.writeInt16LE(i.off, n * 8 + 2);
    buf.writeInt32LE(i.imm, n * 8 + 4);
  });
  return buf;
}
