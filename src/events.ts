/**
 * The events tracepkt produces, as the library yields them and as `--json`
 * prints them (docs/json.md documents every field).
 */

export type Direction = 'request' | 'reply';

/** What the kernel programs report about a packet wherever they see it. */
export interface PacketFields {
  /** CLOCK_MONOTONIC nanoseconds when the kernel hook ran. */
  time_ns: number;
  /** Address of the kernel's struct sk_buff, hex: the same packet keeps it across hops. */
  skb: string;
  /** Inode number of the network namespace. */
  netns: number;
  /** `ip netns` name, "host", or a process living there, e.g. "nginx[1234]"; null if none found. */
  netns_name: string | null;
  ifindex: number;
  ifname: string;
  dir: Direction;
  family: 4 | 6;
  src: string;
  dst: string;
  icmp_id: number;
  icmp_seq: number;
  /** TTL (IPv4) or hop limit (IPv6) as the hook saw it. */
  ttl: number;
  /** IP packet length in bytes. */
  len: number;
}

/** The probe seen on an interface. */
export interface HopEvent extends PacketFields {
  kind: 'hop';
  /** The kernel hook: a tracepoint name. */
  hook: string;
}

/**
 * The probe reached netfilter checkpoint `index` at hook `nf_hook` of
 * protocol family `nf_pf` (src/netfilter turns these into "netfilter" events).
 */
export interface CheckpointEvent extends PacketFields {
  kind: 'checkpoint';
  nf_hook: number;
  nf_pf: number;
  index: number;
}

/** Kernel records, as the tracer yields them. */
export type KernelEvent = HopEvent | CheckpointEvent;

/** A netfilter base chain (or an iptables-legacy table) that judged the probe. */
export interface NetfilterEvent extends Omit<PacketFields, 'skb' | 'ifindex' | 'ifname' | 'ttl' | 'len'> {
  kind: 'netfilter';
  /** PREROUTING, INPUT, FORWARD, OUTPUT or POSTROUTING. */
  hook: string;
  /** nftables family of the table: ip, ip6 or inet. */
  table_family: string;
  table: string;
  /** The chain that decided; for iptables-legacy, the built-in chain of the hook. */
  chain: string;
  priority: number;
  /** "nftables" (native nft, or iptables-nft rules) or "iptables-legacy". */
  backend: 'nftables' | 'iptables-legacy';
  /** ACCEPT, DROP, QUEUE, STOLEN, ... */
  verdict: string;
  /** The deciding rule as `nft` prints it; null when the chain's policy decided or the backend cannot tell. */
  rule: string | null;
  handle: number | null;
  /**
   * How the verdict is known: "rule" or "policy" from nftables tracing;
   * "passage" from the checkpoints alone: the packet went past the table
   * (ACCEPT) or not (DROP). iptables-legacy tables, and nftables chains that
   * did not run for this packet (nat chains where conntrack is off), show so.
   */
  decided_by: 'rule' | 'policy' | 'passage';
}

export type TraceEvent = HopEvent | NetfilterEvent;
