/**
 * A mangling program attached to one interface for as long as the process
 * holds it: XDP on receive, tc on transmit, both as links owned by file
 * descriptors, so nothing remains after exit, Ctrl-C or SIGKILL. Before
 * tcx (6.6) the transmit path takes a tc filter instead (legacy-tc.ts).
 */
import * as fs from 'node:fs';
import { placeFilter } from '../bpf/filter-slot';
import { blameFilter, FILTER_SLOTS } from '../filter/pcap';
import { BPF_TCX_EGRESS, BPF_XDP, MANGLE_NAMES, MANGLE_STATS } from '../bpf/layout';
import { BpfObject } from '../bpf/object';
import { BpfError, TracepktError } from '../errors';
import { loadNative, type Native } from '../native';
import { bpfSupportOnce, objectFor } from '../kernel/bpf-support';
import { attachLegacyEgress, removeLegacyEgress, type LegacyFilter } from './legacy-tc';
import { encodeMangleConfig, type MangleSpec } from './spec';

export interface MangleCounters {
  seen: number;
  selected: number;
  altered: number;
  dropped: number;
}

export interface MangleTarget {
  dev: string;
  /** The namespace's path (netnsPath), or undefined for ours. */
  netns?: string;
}

export class Mangler {
  private constructor(
    private readonly obj: BpfObject,
    readonly hook: 'xdp' | 'tcx egress' | 'tc egress',
    private readonly legacy?: LegacyFilter,
  ) {}

  /** The program for `spec`, loaded and attached nowhere yet (closed again if the kernel refuses it). */
  static async load(spec: MangleSpec, native: Native = loadNative()): Promise<BpfObject> {
    const file = objectFor(MANGLE_NAMES.object, await bpfSupportOnce(native));
    const obj = new BpfObject(native, file, spec.pcap ? placeFilter(fs.readFileSync(file), spec.pcap.code, FILTER_SLOTS, file) : undefined);
    try {
      obj.setGlobal(MANGLE_NAMES.config, encodeMangleConfig(spec));
      obj.selectPrograms([spec.egress ? MANGLE_NAMES.tc : MANGLE_NAMES.xdp]);
      await obj.loadAsync();
      return obj;
    } catch (err) {
      obj.close();
      // A filter the verifier refuses is said as such: the same program without it is loaded to know.
      throw spec.pcap ? await blameFilter(err, spec.pcap, async () => (await Mangler.load({ ...spec, pcap: undefined }, native)).close()) : err;
    }
  }

  static async attach(target: MangleTarget, spec: MangleSpec, native: Native = loadNative()): Promise<Mangler> {
    const obj = await Mangler.load(spec, native);
    const prog = spec.egress ? MANGLE_NAMES.tc : MANGLE_NAMES.xdp;
    try {
      // Interface indexes and links belong to the namespace the thread is in.
      if (target.netns) native.enterNetns(target.netns);
      let tcxRefused = false;
      try {
        let ifindex: number;
        try {
          ifindex = native.ifIndex(target.dev);
        } catch {
          throw new TracepktError(`no interface "${target.dev}"${target.netns ? ` in namespace ${target.netns}` : ''}`);
        }
        try {
          obj.attachLink(prog, ifindex, spec.egress ? BPF_TCX_EGRESS : BPF_XDP);
        } catch (err) {
          if (spec.egress && err instanceof BpfError && err.errno === 22) tcxRefused = true; // no tcx: before 6.6
          else if (!spec.egress && err instanceof BpfError && err.errno === 16) {
            throw new TracepktError(`${target.dev} already has an XDP program: tracepkt leaves it alone`);
          } else throw err;
        }
      } finally {
        if (target.netns) native.leaveNetns();
      }
      if (tcxRefused) return new Mangler(obj, 'tc egress', attachLegacyEgress(obj, prog, target.netns ?? null, target.dev));
      return new Mangler(obj, spec.egress ? 'tcx egress' : 'xdp');
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** Summed over CPUs. */
  counters(): MangleCounters {
    const values = this.obj.lookup(MANGLE_NAMES.counters, Buffer.alloc(4));
    const sum: MangleCounters = { seen: 0, selected: 0, altered: 0, dropped: 0 };
    if (!values) return sum;
    // Per-CPU values come 8-byte aligned, one struct each.
    const size = (MANGLE_STATS.$size + 7) & ~7;
    for (let cpu = 0; cpu + size <= values.length; cpu += size) {
      for (const key of Object.keys(sum) as (keyof MangleCounters)[]) sum[key] += Number(values.readBigUInt64LE(cpu + MANGLE_STATS[key][0]));
    }
    return sum;
  }

  /** Detaches (closing the links, removing a tc filter) and frees the program. Safe to call twice. */
  close(): void {
    if (this.legacy) removeLegacyEgress(this.legacy);
    this.obj.close();
  }
}
