/**
 * A parsed filter → the postfix program the kernel evaluates
 * (struct tp_filter_insn in bpf/tracepkt.h): tests push a bit, and/or pop
 * two and push one, not flips the top. At most TP_FILTER_MAX instructions
 * and a stack of 32.
 */
import { addressBytes } from '../addr';
import { FilterDir, FilterField, FilterOp, Limits } from '../bpf/layout';
import { TracepktError } from '../errors';
import type { FilterNode } from './parse';
import { hasPorts } from '../ip';

export const FILTER_MAX = Limits.FILTER_MAX;

/** enum tp_filter_op, enum tp_filter_field, direction bits: bpf/tracepkt.h. */
export const OP = FilterOp;
export const FIELD = FilterField;
export const DIR = { src: FilterDir.SRC, dst: FilterDir.DST, either: FilterDir.SRC | FilterDir.DST } as const;
const PROTO = { icmp: 1, icmp6: 58, tcp: 6, udp: 17 } as const;

export interface FilterInsn {
  op: number;
  field: number;
  dir: number;
  /** PROTO: IP protocol; FAMILY: 4 or 6; ADDR: prefix length. */
  value: number;
  port: number;
  /** ADDR: the address's family and its bytes (16, IPv4 in the first 4). */
  family: number;
  addr: Buffer;
}

const test = (x: Partial<FilterInsn>): FilterInsn => ({ op: OP.TEST, field: 0, dir: 0, value: 0, port: 0, family: 0, addr: Buffer.alloc(16), ...x });

function emit(node: FilterNode, out: FilterInsn[]): void {
  switch (node.kind) {
    case 'and':
    case 'or':
      emit(node.left, out);
      emit(node.right, out);
      out.push(test({ op: node.kind === 'and' ? OP.AND : OP.OR }));
      return;
    case 'not':
      emit(node.operand, out);
      out.push(test({ op: OP.NOT }));
      return;
    case 'proto':
      out.push(test({ field: FIELD.PROTO, value: PROTO[node.proto] }));
      return;
    case 'family':
      out.push(test({ field: FIELD.FAMILY, value: node.family }));
      return;
    case 'net': {
      const addr = Buffer.alloc(16);
      addressBytes(node.address).copy(addr);
      out.push(test({ field: FIELD.ADDR, dir: DIR[node.dir], value: node.prefix, family: node.family, addr }));
      return;
    }
    case 'port':
      out.push(test({ field: FIELD.PORT, dir: DIR[node.dir], port: node.port }));
      return;
  }
}

/** Deepest stack the program needs: the kernel's stack is 32 bits. */
function depth(prog: FilterInsn[]): number {
  let d = 0;
  let max = 0;
  for (const i of prog) {
    d += i.op === OP.TEST ? 1 : i.op === OP.NOT ? 0 : -1;
    max = Math.max(max, d);
  }
  return max;
}

export function compileFilter(tree: FilterNode): FilterInsn[] {
  const prog: FilterInsn[] = [];
  emit(tree, prog);
  if (prog.length > FILTER_MAX || depth(prog) > 32) {
    throw new TracepktError(`filter too long: ${prog.length} steps, the kernel evaluates at most ${FILTER_MAX}`);
  }
  return prog;
}

/** Evaluates a program the way the kernel does: the tests' reference for the C interpreter. */
export function evaluate(prog: readonly FilterInsn[], p: { family: 4 | 6; proto: number; src: Buffer; dst: Buffer; sport: number; dport: number }): boolean {
  const stack: boolean[] = [];
  const inPrefix = (a: Buffer, b: Buffer, bits: number) => {
    for (let i = 0; i < bits; i++) if (((a[i >> 3] >> (7 - (i & 7))) & 1) !== ((b[i >> 3] >> (7 - (i & 7))) & 1)) return false;
    return true;
  };
  const either = (dir: number, s: boolean, d: boolean) => ((dir & 1) !== 0 && s) || ((dir & 2) !== 0 && d);
  for (const i of prog) {
    if (i.op === OP.AND || i.op === OP.OR) {
      const b = stack.pop()!;
      const a = stack.pop()!;
      stack.push(i.op === OP.AND ? a && b : a || b);
    } else if (i.op === OP.NOT) stack.push(!stack.pop());
    else if (i.field === FIELD.PROTO) stack.push(p.proto === i.value);
    else if (i.field === FIELD.FAMILY) stack.push(p.family === i.value);
    else if (i.field === FIELD.ADDR) stack.push(p.family === i.family && either(i.dir, inPrefix(p.src, i.addr, i.value), inPrefix(p.dst, i.addr, i.value)));
    else if (i.field === FIELD.PORT) stack.push(hasPorts(p.proto) && either(i.dir, p.sport === i.port, p.dport === i.port));
  }
  return stack.pop() ?? false;
}
