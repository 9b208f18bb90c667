/**
 * The BPF programs attached to the interfaces the probe crossed (XDP, tc,
 * tcx), as `bpftool net` finds them: asked of the kernel in each namespace
 * after the run (native/programs.c), each program named by its id.
 */
import type { BpfProgramOnPath, ProgramReturnEvent, TraceEvent } from '../events';
import type { Native } from '../native';

/** enum bpf_prog_type values a program on an interface has. */
const PROG_TYPES: Record<number, string> = { 3: 'sched_cls', 4: 'sched_act', 6: 'xdp' };

/**
 * Every program on an interface a hop, drop or program return of the probe names, per
 * namespace; `pathOf` gives the namespace's path (null: our own; undefined:
 * not known, then its interfaces are not asked and `unknown` lists it).
 */
export function programsOnPath(native: Native, events: readonly (TraceEvent | ProgramReturnEvent)[], pathOf: (netns: number) => string | null | undefined): { programs: BpfProgramOnPath[]; unasked: number[] } {
  const interfaces = new Map<number, Map<number, { ifname: string; netnsName: string | null }>>();
  for (const e of events) {
    if ((e.kind !== 'hop' && e.kind !== 'drop' && e.kind !== 'program-return') || e.ifindex <= 0) continue;
    const ns = interfaces.get(e.netns) ?? interfaces.set(e.netns, new Map()).get(e.netns)!;
    if (!ns.has(e.ifindex)) ns.set(e.ifindex, { ifname: e.ifname, netnsName: e.netns_name });
  }
  const programs: BpfProgramOnPath[] = [];
  const unasked: number[] = [];
  for (const [netns, ifaces] of interfaces) {
    const path = pathOf(netns);
    if (path === undefined) {
      unasked.push(netns);
      continue;
    }
    try {
      if (path !== null) native.enterNetns(path);
    } catch {
      unasked.push(netns); // the namespace is gone
      continue;
    }
    try {
      for (const [ifindex, { ifname, netnsName }] of ifaces) {
        for (const p of native.interfacePrograms(ifindex)) {
          const info = native.programInfo(p.id);
          programs.push({
            netns,
            netns_name: netnsName,
            ifindex,
            ifname,
            hook: p.hook,
            direction: p.direction,
            mode: p.mode,
            id: p.id,
            name: info?.name ?? null,
            tag: info?.tag ?? null,
            type: info ? (PROG_TYPES[info.type] ?? String(info.type)) : null,
            priority: p.hook === 'xdp' ? null : p.priority,
            has_btf: info ? info.btfId !== 0 : null,
            traced: false,
            returned: [],
          });
        }
      }
    } finally {
      if (path !== null) native.leaveNetns();
    }
  }
  return { programs, unasked };
}

/** "tc egress", "xdp generic", "tcx ingress". */
export function programPlace(p: BpfProgramOnPath): string {
  return p.hook === 'xdp' ? `xdp ${p.mode}` : `${p.hook} ${p.direction}`;
}

/** "drop_icmp_tc (tc egress direct-action, id 23083, tag c99a8cb2c62e5b3f)". */
export function describeProgram(p: BpfProgramOnPath): string {
  const mode = p.hook === 'tc' ? ` ${p.mode}` : '';
  return `${p.name || 'a program without a name'} (${programPlace(p)}${mode}, id ${p.id}${p.tag ? `, tag ${p.tag}` : ''})`;
}

/**
 * What a traced program did with the probe, e.g. "returned XDP_PASS for the
 * request, XDP_DROP for the reply"; "traced: no return for the probe recorded"; empty
 * for programs not traced (the kernel, or the program, did not allow it).
 */
export function describeReturns(p: BpfProgramOnPath): string {
  if (!p.traced) return '';
  if (p.returned.length === 0) return 'traced: no return for the probe recorded';
  const said: string[] = [];
  for (const r of p.returned) {
    const one = `${r.action} for the ${r.dir}`;
    if (said[said.length - 1] !== one) said.push(one);
  }
  return `returned ${said.join(', ')}`;
}
