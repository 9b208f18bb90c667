/**
 * TypeScript mirror of bpf/tracepkt.h: byte offsets and sizes of the record
 * the programs emit and of the config written before load.
 * test/unit/layout.test.ts checks every entry against the BTF of the built
 * object, so the two cannot drift apart silently.
 */

/** [offset, size] in bytes, as in the C struct. */
export type Field = readonly [offset: number, size: number];

export const EVENT_SIZE = 144;
export const EVENT_FIELDS = {
  time_ns: [0, 8],
  skb: [8, 8],
  netns: [16, 4],
  ifindex: [20, 4],
  kind: [24, 1],
  hook: [25, 1],
  family: [26, 1],
  ttl: [27, 1],
  icmp_type: [28, 1],
  icmp_code: [29, 1],
  ip_len: [30, 2],
  icmp_id: [32, 2],
  icmp_seq: [34, 2],
  nf_hook: [36, 1],
  nf_pf: [37, 1],
  nf_index: [38, 1],
  route_type: [39, 1],
  saddr: [40, 16],
  daddr: [56, 16],
  ifname: [72, 16],
  location: [88, 8],
  reason: [96, 4],
  table: [100, 4],
  error: [104, 4],
  gw_family: [108, 1],
  inner_type: [109, 1],
  proto: [110, 1],
  pad: [111, 1],
  gateway: [112, 16],
  l4_rest: [128, 4],
  iif: [132, 4],
  sport: [136, 2],
  dport: [138, 2],
  l4proto: [140, 1],
  tcp_flags: [141, 1],
  inner_proto: [142, 1],
  pad3: [143, 1],
} as const satisfies Record<string, Field>;

export const FILTER_INSN_SIZE = 40;
export const CONFIG_SIZE = 1320;
export const CONFIG_FIELDS = {
  marker: [0, 8],
  marker_offset: [8, 2],
  family: [10, 1],
  match: [11, 1],
  current_ns: [12, 4],
  target: [16, 16],
  filter_len: [32, 1],
  pad2: [33, 1],
  snap_len: [34, 2],
  track_ns: [36, 4],
  filter: [40, 32 * FILTER_INSN_SIZE],
} as const satisfies Record<string, Field>;

/** struct tp_packet: a tp_event followed by the packet's first bytes. */
export const SNAP_MAX = 256;
export const PACKET_FIELDS = {
  event: [0, EVENT_SIZE],
  caplen: [EVENT_SIZE, 2],
  pad: [EVENT_SIZE + 2, 6],
  data: [EVENT_SIZE + 8, SNAP_MAX],
} as const satisfies Record<string, Field>;

/** struct tp_filter_insn */
export const FILTER_INSN_FIELDS = {
  op: [0, 1],
  field: [1, 1],
  dir: [2, 1],
  value: [3, 1],
  port: [4, 2],
  family: [6, 1],
  pad: [7, 1],
  addr: [8, 16],
  mask: [24, 16],
} as const satisfies Record<string, Field>;

/** enum tp_event_kind */
export const EventKind = { HOP: 1, NF_CHECKPOINT: 2, DROP: 3, ROUTE: 4, NF_TABLE: 5 } as const;

/** TP_NF_CHECKPOINTS: copies of the checkpoint program, tp_nf_checkpoint_0 … _15. */
export const NF_CHECKPOINTS = 16;

/** enum tp_hook, by value: the name shown to users is the tracepoint's. */
export const HOOK_NAMES: Record<number, string> = {
  1: 'net_dev_queue',
  2: 'netif_receive_skb',
  3: 'netfilter',
  4: 'kfree_skb',
  5: 'fib_table_lookup',
  6: 'fib6_table_lookup',
  7: 'xt_table',
};

/** BPF_PROG_TYPE_NETFILTER and BPF_NETFILTER: numbers Debian's libbpf 1.1.2 does not know. */
export const BPF_PROG_TYPE_NETFILTER = 32;
export const BPF_NETFILTER = 45;

/** struct tp_mangle_config (bpf/mangle.h) */
export const MANGLE_CONFIG_SIZE = 12 + 32 * FILTER_INSN_SIZE;
export const MANGLE_CONFIG_FIELDS = {
  ratio_ppm: [0, 4],
  action: [4, 1],
  ttl: [5, 1],
  tcp_flags: [6, 1],
  select: [7, 1],
  filter_len: [8, 1],
  pad: [9, 3],
  filter: [12, 32 * FILTER_INSN_SIZE],
} as const satisfies Record<string, Field>;

/** struct tp_mangle_stats: one per CPU in the counters map. */
export const MANGLE_STATS_FIELDS = {
  seen: [0, 8],
  selected: [8, 8],
  altered: [16, 8],
  dropped: [24, 8],
} as const satisfies Record<string, Field>;

/** enum tp_mangle_action bits and enum tp_mangle_select. */
export const MangleAction = { TTL: 1, TCP_FLAGS: 2, DROP: 4 } as const;
export const MangleSelect = { ALL: 0, ECHO_REPLIES: 1 } as const;

/** The mangling object's programs and maps. */
export const MANGLE_NAMES = {
  object: 'mangle',
  config: 'CFG',
  counters: 'tp_mangle_counters',
  xdp: 'mangle_xdp',
  tc: 'mangle_tc',
} as const;

/** enum bpf_attach_type numbers for device links: BPF_XDP (5.9+), BPF_TCX_* (6.6+; not in Debian 12's headers). */
export const BPF_XDP = 37;
export const BPF_TCX_INGRESS = 46;
export const BPF_TCX_EGRESS = 47;

/** Names of the objects in the BPF object file that TypeScript refers to. */
export const BPF_NAMES = {
  object: 'tracepkt',
  config: 'CFG',
  events: 'tp_events',
  stats: 'tp_stats',
  senders: 'tp_senders',
  /** Hops and drops: always loaded. */
  programs: ['tp_net_dev_queue', 'tp_netif_receive_skb', 'tp_kfree_skb'],
  /** Route lookups: only when they can be tied to a journey (a probe's). */
  routes: ['tp_fib_table_lookup', 'tp_fib6_table_lookup'],
  /** iptables-legacy verdicts where netfilter links are missing (before 6.4), per family's module. */
  tableVerdicts: { 4: 'tp_ipt_do_table', 6: 'tp_ip6t_do_table' },
  /** Only for filtered tracing, which remembers packets by address. */
  forgetFreed: 'tp_consume_skb',
  checkpoint: (i: number) => `tp_nf_checkpoint_${i}`,
} as const;
