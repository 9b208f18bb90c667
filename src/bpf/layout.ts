/**
 * The kernel contract as TypeScript sees it: the records, configs, enums and
 * names of the BPF objects, generated at build time from each object's BTF
 * and ELF symbols (tools/gen-bindings.js → src/bpf/generated/), named here
 * for use. Nothing below restates a layout: C (bpf/tracepkt.h, bpf/mangle.h)
 * is the only contract. What is here and not generated is the kernel's own
 * UAPI numbers that Debian 12's headers and libbpf 1.1.2 predate.
 */
import * as mangle from './generated/mangle';
import * as probes from './generated/probes';
import * as tracepkt from './generated/tracepkt';

export type { Field } from './generated/tracepkt';

/** The enum's members without their common prefix: tp_event_kind.TP_EVENT_HOP → EventKind.HOP. */
type Stripped<T, P extends string> = { readonly [K in keyof T as K extends `${P}${infer R}` ? R : never]: T[K] };

function strip<T extends Record<string, number>, P extends string>(e: T, prefix: P): Stripped<T, P> {
  return Object.fromEntries(Object.entries(e).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v])) as Stripped<T, P>;
}

// ---- records (bpf/tracepkt.h) ----
export const HEADER = tracepkt.tp_header;
export const HOP = tracepkt.tp_hop;
export const DROP = tracepkt.tp_drop;
export const CHECKPOINT = tracepkt.tp_checkpoint;
export const TABLE_VERDICT = tracepkt.tp_table_verdict;
export const ROUTE = tracepkt.tp_route;
export const NEIGH = tracepkt.tp_neigh;
export const PROG_RETURN = tracepkt.tp_prog_return;
export const SNAPSHOT = tracepkt.tp_snapshot;
export const STATS = tracepkt.tp_stats;
export const OUTER = tracepkt.tp_outer;

// ---- config ----
export const CONFIG = tracepkt.tp_config;
export const TUPLE = tracepkt.tp_tuple;
export const UDP_TUNNEL = tracepkt.tp_udp_tunnel;

// ---- enums ----
export const Limits = strip(tracepkt.tp_limits, 'TP_');
export const EventKind = strip(tracepkt.tp_event_kind, 'TP_EVENT_');
export const Hook = strip(tracepkt.tp_hook, 'TP_HOOK_');
export const Frag = strip(tracepkt.tp_frag_flags, 'TP_');
export const Match = strip(tracepkt.tp_match, 'TP_MATCH_');
export const Reader = strip(tracepkt.tp_reader, 'TP_READER_');
export const Tunnel = strip(tracepkt.tp_tunnel, 'TP_TUNNEL_');
export const CtPresence = strip(tracepkt.tp_ct_presence, 'TP_CT_');

export const SNAP_MAX = Limits.SNAP_MAX;
export const NF_CHECKPOINTS = Limits.NF_CHECKPOINTS;
export const STACK_DEPTH = Limits.STACK_DEPTH;
export const UDP_TUNNELS = Limits.UDP_TUNNELS;
export const PROG_COPIES = Limits.PROG_COPIES;

/** enum tp_hook by value → the name users see: the tracepoint's (TP_HOOK_NET_DEV_QUEUE → net_dev_queue). */
export const HOOK_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Hook).map(([name, value]) => [value, name.toLowerCase()]));

// ---- the tracing object's programs, maps and globals ----
type TracingProgram = tracepkt.ProgramName;
const program = <N extends TracingProgram>(name: N): N => name;

export const BPF_NAMES = {
  object: 'tracepkt',
  config: 'CFG' satisfies keyof typeof tracepkt.globals,
  events: tracepkt.maps.tp_events,
  stats: tracepkt.maps.tp_stats,
  stacks: tracepkt.maps.tp_stacks,
  senders: tracepkt.maps.tp_senders,
  /** Hops, drops and packets waiting for a neighbour: always loaded. */
  programs: [program('tp_net_dev_queue'), program('tp_netif_receive_skb'), program('tp_neigh_event_send_done')],
  /** Drops: with the kernel's reason (5.17+), or with the place alone. */
  drops: { reason: program('tp_kfree_skb'), placeOnly: program('tp_kfree_skb_no_reason') },
  /** Route lookups: only when they can be tied to a journey (a probe's). */
  routes: [program('tp_fib_table_lookup'), program('tp_fib6_table_lookup')],
  /** iptables-legacy verdicts where netfilter links are missing (before 6.4), per family's module. */
  tableVerdicts: { 4: program('tp_ipt_do_table'), 6: program('tp_ip6t_do_table') },
  /** The same before 5.16, when the table was the functions' last argument. */
  tableVerdictsTableLast: { 4: program('tp_ipt_do_table_table_last'), 6: program('tp_ip6t_do_table_table_last') },
  /** Freed packets forgotten: filtered and flow tracing (remembered addresses), route ties. */
  forgetFreed: program('tp_consume_skb'),
  checkpoint: (i: number) => program(`tp_nf_checkpoint_${i}` as TracingProgram),
  /** fexit on the XDP or tc program on the path copy i is aimed at (a second instance of the object). */
  programReturn: (hook: 'xdp' | 'tc', i: number) => program(`tp_${hook}_return_${i}` as TracingProgram),
} as const;

// ---- tracepkt mangle (bpf/mangle.h) ----
export const MANGLE_CONFIG = mangle.tp_mangle_config;
export const MANGLE_STATS = mangle.tp_mangle_stats;
export const MangleAction = strip(mangle.tp_mangle_action, 'TP_MANGLE_');
export const MangleSelect = strip(mangle.tp_mangle_select, 'TP_SELECT_');

export const MANGLE_NAMES = {
  object: 'mangle',
  config: 'CFG' satisfies keyof typeof mangle.globals,
  counters: mangle.maps.tp_mangle_counters,
  xdp: 'mangle_xdp' satisfies mangle.ProgramName,
  tc: 'mangle_tc' satisfies mangle.ProgramName,
} as const;

// ---- doctor's probes ----
export const PROBE_PROGRAMS = probes.programs;

// ---- kernel UAPI numbers newer than Debian 12's headers and libbpf 1.1.2 ----
/** BPF_PROG_TYPE_NETFILTER and BPF_NETFILTER (6.4). */
export const BPF_PROG_TYPE_NETFILTER = 32;
export const BPF_NETFILTER = 45;
/** enum bpf_attach_type numbers for device links: BPF_XDP (5.9+), BPF_TCX_* (6.6+). */
export const BPF_XDP = 37;
export const BPF_TCX_INGRESS = 46;
export const BPF_TCX_EGRESS = 47;
