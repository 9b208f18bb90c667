/**
 * What the XDP and tc programs on the path did with the probe. Before the
 * probe is sent, fexit on every such program attached to an interface of a
 * namespace tracepkt knows (at most PROG_COPIES XDP and as many tc/tcx ones),
 * in a second instance of the tracing object that shares the first one's
 * maps and ring: the same recognition of the probe, its records in the same
 * stream. After the run, each return the copies recorded is tied to its
 * program on the path. Tracing a program does not change it; the links are
 * ours, gone when tracepkt is (the kernel closes them with the process).
 * Where the kernel refuses fexit on BPF programs, the programs are listed
 * only (attached-programs.ts) and a drop names those that could have done it.
 */
import { BPF_NAMES, PROG_COPIES } from '../bpf/layout';
import { BpfObject } from '../bpf/object';
import { describeError } from '../errors';
import type { BpfProgramOnPath, ProgramReturn, ProgramReturnEvent } from '../events';
import { probeSeq } from '../journey';
import type { KnownNetns } from '../names/netns';
import type { Native } from '../native';

/** A program on an interface that a copy of the fexit program was aimed at. */
export interface ProgramTarget {
  id: number;
  name: string;
  /** Which copies: XDP programs get tp_xdp_return_N, tc and tcx ones tp_tc_return_N. */
  hook: 'xdp' | 'tc';
  copy: number;
  /** Its main function in its BTF: what fexit attaches to. */
  func: string;
}

/** fexit on the programs of the namespaces given: the objects holding the links, and what could not be traced. */
export interface ProgramTracing {
  objs: BpfObject[];
  targets: ProgramTarget[];
  notes: string[];
}

/**
 * The programs attached to the interfaces of these namespaces that fexit
 * can trace, each kind up to PROG_COPIES, in the namespaces' order (the
 * caller puts the likeliest first: the sender's).
 */
export function programTargets(native: Native, namespaces: readonly KnownNetns[]): { targets: ProgramTarget[]; notes: string[] } {
  const targets: ProgramTarget[] = [];
  const notes: string[] = [];
  const seen = new Set<number>();
  const over = { xdp: 0, tc: 0 };
  const withoutBtf: string[] = [];
  for (const ns of namespaces) {
    let attached;
    try {
      if (ns.path !== null) native.enterNetns(ns.path);
    } catch {
      continue; // gone since it was listed
    }
    try {
      attached = native.interfacePrograms(0);
    } finally {
      if (ns.path !== null) native.leaveNetns();
    }
    for (const a of attached) {
      if (seen.has(a.id)) continue;
      seen.add(a.id);
      if (a.mode === 'offload') continue; // runs on the NIC: no trampoline reaches it
      const info = native.programInfo(a.id);
      if (!info) continue;
      if (!info.funcName) {
        withoutBtf.push(`${info.name || 'a program'} (id ${a.id})`);
        continue;
      }
      const hook = a.hook === 'xdp' ? 'xdp' : 'tc';
      const copy = targets.filter((t) => t.hook === hook).length;
      if (copy >= PROG_COPIES) {
        over[hook]++;
        continue;
      }
      targets.push({ id: a.id, name: info.name, hook, copy, func: info.funcName });
    }
  }
  if (withoutBtf.length) notes.push(`BPF program${withoutBtf.length > 1 ? 's' : ''} ${withoutBtf.join(', ')} carr${withoutBtf.length > 1 ? 'y' : 'ies'} no BTF (or it could not be read): what ${withoutBtf.length > 1 ? 'they' : 'it'} returned cannot be traced`);
  for (const hook of ['xdp', 'tc'] as const) {
    if (over[hook]) notes.push(`${over[hook]} more ${hook === 'xdp' ? 'XDP' : 'tc/tcx'} program(s) attached than tracepkt traces (${PROG_COPIES}): what they returned is not known`);
  }
  return { targets, notes };
}

/**
 * Loads fexit copies aimed at the programs attached in these namespaces,
 * sharing `shared`'s maps (the tracing object, loaded), and attaches them.
 * One load for all; where the kernel refuses it, one per program, so that a
 * program fexit cannot reach (bound to a device, an unusual context) costs
 * only its own tracing. Never throws: what is refused is in the notes.
 */
export async function traceProgramReturns(native: Native, shared: BpfObject, namespaces: readonly KnownNetns[]): Promise<ProgramTracing> {
  let found: { targets: ProgramTarget[]; notes: string[] };
  try {
    found = programTargets(native, namespaces);
  } catch (err) {
    return { objs: [], targets: [], notes: [`what the BPF programs on the path returned is not traced (they could not be listed: ${describeError(err)})`] };
  }
  const { targets, notes } = found;
  if (targets.length === 0) return { objs: [], targets, notes };
  try {
    return { objs: [await loadCopies(native, shared, targets)], targets, notes };
  } catch (err) {
    if (targets.length === 1) {
      notes.push(`what the BPF programs on the path returned is not traced (fexit on BPF programs: ${describeError(err)}): a drop names the programs that could have made it`);
      return { objs: [], targets: [], notes };
    }
  }
  const objs: BpfObject[] = [];
  const traced: ProgramTarget[] = [];
  for (const t of targets) {
    try {
      objs.push(await loadCopies(native, shared, [t]));
      traced.push(t);
    } catch (err) {
      notes.push(`what ${t.name || 'the program'} (id ${t.id}) returned is not traced (fexit on it: ${describeError(err)})`);
    }
  }
  return { objs, targets: traced, notes };
}

/** A second instance of the tracing object with the copies for these targets, loaded and attached. */
async function loadCopies(native: Native, shared: BpfObject, targets: readonly ProgramTarget[]): Promise<BpfObject> {
  const obj = new BpfObject(native, shared.file, shared.image);
  try {
    const progs = targets.map((t) => BPF_NAMES.programReturn(t.hook, t.copy));
    obj.selectPrograms(progs);
    obj.reuseMaps(shared);
    targets.forEach((t, i) => obj.setAttachTarget(progs[i], t.id, t.func));
    await obj.loadAsync();
    for (const prog of progs) obj.attach(prog);
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

const XDP_ACTIONS = ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'];
const TC_ACTIONS: Record<number, string> = {
  [-1]: 'TC_ACT_UNSPEC', 0: 'TC_ACT_OK', 1: 'TC_ACT_RECLASSIFY', 2: 'TC_ACT_SHOT', 3: 'TC_ACT_PIPE',
  4: 'TC_ACT_STOLEN', 5: 'TC_ACT_QUEUED', 6: 'TC_ACT_REPEAT', 7: 'TC_ACT_REDIRECT', 8: 'TC_ACT_TRAP',
};
const TCX_ACTIONS: Record<number, string> = { [-1]: 'TCX_NEXT', 0: 'TCX_PASS', 2: 'TCX_DROP', 7: 'TCX_REDIRECT' };

/**
 * A return code in the words of the program's hook, and whether it ends the
 * packet there. A tc classifier (not direct-action) returns a class, not an
 * action: the filter's actions decide, so nothing ends by its code alone.
 */
export function describeReturn(p: Pick<BpfProgramOnPath, 'hook' | 'mode'>, code: number): Pick<ProgramReturn, 'action' | 'ends'> {
  if (p.hook === 'xdp') {
    // The kernel takes an unknown action for XDP_ABORTED: dropped.
    const action = XDP_ACTIONS[code] ?? `unknown XDP action ${code}`;
    return { action, ends: code === 2 || code === 3 || code === 4 ? null : 'drop' };
  }
  if (p.hook === 'tcx') return { action: TCX_ACTIONS[code] ?? `tcx code ${code}`, ends: code === 2 ? 'drop' : null };
  if (p.mode === 'classifier') {
    const action = code === 0 ? 'no match' : code === -1 ? "match (the filter's class)" : `class ${((code >>> 16) & 0xffff).toString(16)}:${(code & 0xffff).toString(16)}`;
    return { action, ends: null };
  }
  // cls_bpf passes on OK, SHOT, STOLEN, TRAP and REDIRECT; other codes count as TC_ACT_UNSPEC (the next filter runs).
  const known = [-1, 0, 2, 4, 7, 8].includes(code);
  const action = TC_ACTIONS[code] ? `${TC_ACTIONS[code]}${known ? '' : ' (taken as TC_ACT_UNSPEC)'}` : `tc code ${code} (taken as TC_ACT_UNSPEC)`;
  return { action, ends: code === 2 ? 'drop' : code === 4 || code === 8 ? 'stolen' : null };
}

/**
 * Ties each recorded return to the program on the path it came from (the
 * copy's target, on the interface and side it ran for), and marks the
 * programs that were traced.
 */
export function tieReturns(programs: BpfProgramOnPath[], returns: readonly ProgramReturnEvent[], targets: readonly ProgramTarget[]): void {
  for (const p of programs) p.traced = targets.some((t) => t.id === p.id);
  for (const ev of returns) {
    const target = targets.find((t) => t.hook === ev.hook && t.copy === ev.copy);
    if (!target) continue;
    const p = programs.find((q) => q.id === target.id && q.netns === ev.netns && q.ifindex === ev.ifindex && (q.hook === 'xdp' || q.direction === ev.direction));
    if (p) p.returned.push({ time_ns: ev.time_ns, dir: ev.dir, seq: probeSeq(ev), skb: ev.skb, code: ev.code, ...describeReturn(p, ev.code) });
  }
}
