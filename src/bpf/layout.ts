/**
 * TypeScript mirror of bpf/tracepkt.h: byte offsets and sizes of the record
 * the programs emit and of the config written before load.
 * test/unit/layout.test.ts checks every entry against the BTF of the built
 * object, so the two cannot drift apart silently.
 */

/** [offset, size] in bytes, as in the C struct. */
export type Field = readonly [offset: number, size: number];

export const EVENT_SIZE = 88;
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
  reserved: [39, 1],
  saddr: [40, 16],
  daddr: [56, 16],
  ifname: [72, 16],
} as const satisfies Record<string, Field>;

export const CONFIG_SIZE = 16;
export const CONFIG_FIELDS = {
  marker: [0, 8],
  marker_offset: [8, 2],
  family: [10, 1],
  pad: [11, 5],
} as const satisfies Record<string, Field>;

/** enum tp_event_kind */
export const EventKind = { HOP: 1, NF_CHECKPOINT: 2 } as const;

/** TP_NF_CHECKPOINTS: copies of the checkpoint program, tp_nf_checkpoint_0 … _15. */
export const NF_CHECKPOINTS = 16;

/** enum tp_hook, by value: the name shown to users is the tracepoint's. */
export const HOOK_NAMES: Record<number, string> = {
  1: 'net_dev_queue',
  2: 'netif_receive_skb',
  3: 'netfilter',
};

/** Names of the objects in the BPF object file that TypeScript refers to. */
export const BPF_NAMES = {
  object: 'tracepkt',
  config: 'CFG',
  events: 'tp_events',
  stats: 'tp_stats',
  programs: ['tp_net_dev_queue', 'tp_netif_receive_skb'],
  checkpoint: (i: number) => `tp_nf_checkpoint_${i}`,
} as const;
