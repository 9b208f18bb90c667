/**
 * The events tracepkt produces, as the library yields them and as `--json`
 * prints them (docs/json.md documents every field).
 */

export type Direction = 'request' | 'reply';

/** The probe seen on an interface. */
export interface HopEvent {
  kind: 'hop';
  /** CLOCK_MONOTONIC nanoseconds when the kernel hook ran. */
  time_ns: number;
  /** Address of the kernel's struct sk_buff, hex: the same packet keeps it across hops. */
  skb: string;
  /** Inode number of the device's network namespace. */
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
  /** The kernel hook: a tracepoint name. */
  hook: string;
  cpu: number;
}

export type TraceEvent = HopEvent;
