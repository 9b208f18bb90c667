/**
 * The events tracepkt produces, as the library yields them and as `--json`
 * prints them (docs/json.md documents every field).
 */

/** An echo request, its reply, or an ICMP error the kernel sent about one of them. */
export type Direction = 'request' | 'reply' | 'error';

/** What the kernel programs report about a packet wherever they see it. */
export interface PacketFields {
  /** CLOCK_MONOTONIC nanoseconds when the kernel hook ran. */
  time_ns: number;
  /** Address of the kernel's struct sk_buff, hex: the same packet keeps it across hops. */
  skb: string;
  /**
   * Records the kernel had lost (ring buffer full) when it wrote this one, low
   * 32 bits: two events that differ here may have lost events between them.
   */
  lost_so_far: number;
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
  /** Of the echo; for an ICMP error, of the echo it quotes. */
  icmp_id: number;
  icmp_seq: number;
  /** ICMP type and code of the packet itself (for an error: its type, e.g. 11 time exceeded). */
  icmp_type: number;
  icmp_code: number;
  /** For an ICMP error, what it is about: "request" or "reply"; else null. */
  quotes: 'request' | 'reply' | null;
  /** For "fragmentation needed" / "packet too big": the MTU the error announces; else null. */
  mtu: number | null;
  /** IP protocol (1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6); for an ICMP error, of the packet it quotes. */
  proto: number;
  /** TCP/UDP ports, 0 otherwise; for an ICMP error, of the packet it quotes. */
  sport: number;
  dport: number;
  /** TCP flags as tcpdump writes them (S, SA, R, RA, F, P, ...); "" for other protocols. */
  tcp_flags: string;
  /** TCP: the segment's sequence number (which segment it is, whatever NAT or a mangler did); 0 otherwise. */
  tcp_seq: number;
  /** TTL (IPv4) or hop limit (IPv6) as the hook saw it. */
  ttl: number;
  /** IP packet length in bytes. */
  len: number;
  /** For an ICMP error, the addresses of the packet it quotes; else null. */
  quoted_src: string | null;
  quoted_dst: string | null;
  /** An IP fragment: the identification its fragments share, where its data goes (bytes), whether more follow; else null. */
  fragment: { id: number; offset: number; more: boolean } | null;
  /** Where the packet travels in a tunnel (an overlay's underlay): the outer packet; null elsewhere. */
  tunnel: TunnelInfo | null;
  /**
   * The packet's conntrack entry as the kernel held it when the hook ran; null where none was
   * attached (conntrack has not run for it in this namespace yet: a receive comes before
   * PREROUTING and crossing namespaces clears it; conntrack does not run there; or it found the
   * packet invalid).
   */
  conntrack: ConntrackInfo | null;
  /** Passive tracing: the number of the journey (flow) it belongs to (src/flows.ts); absent elsewhere. */
  journey?: number;
  /** Tracing across nodes (--node): the node that saw it (this one by its host name); absent in a trace of one host. */
  node?: string;
}

/** One direction of a conntrack entry: addresses and ports (ICMP: the echo identifier as sport, type and code as dport). */
export interface ConntrackTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** A conntrack entry as one packet saw it (struct nf_conn, through skb->_nfct). */
export interface ConntrackInfo {
  /**
   * "new", "established", "related" (as nft's `ct state`), "untracked" (a notrack rule), or
   * "unreadable": an entry is attached but this kernel's BTF does not describe it (nf_conntrack a
   * module on a kernel before 5.11).
   */
  state: 'new' | 'established' | 'related' | 'untracked' | 'unreadable';
  /** Which way this packet goes in the entry: "original" (as the first packet) or "reply"; null when untracked or unreadable. */
  direction: 'original' | 'reply' | null;
  /** Conntrack zone id (0: the default zone). */
  zone: number;
  /** ct mark. */
  mark: number;
  /** IP protocol of the entry. */
  proto: number;
  /** The first packet's tuple, as it arrived. */
  original: ConntrackTuple | null;
  /** The tuple a reply carries: differs from the original's reverse where NAT maps the connection. */
  reply: ConntrackTuple | null;
  /** Status bits set (enum ip_conntrack_status), lower case: "seen_reply", "assured", "confirmed", "dst_nat", "dst_nat_done", ... */
  status: string[];
  /**
   * The NAT mapping the entry holds, as it rewrites the original direction, e.g.
   * "dnat 10.0.0.1:8080->172.17.0.2:80"; null when it maps nothing.
   */
  nat: string | null;
}

/** The outer packet that carries the probe through a tunnel; the event's other fields are the probe's, inside. */
export interface TunnelInfo {
  /**
   * vxlan, geneve, gre (IP inside), gretap (Ethernet inside), ipip (IP directly in IP: ipip, sit,
   * ip6tnl), wireguard (encrypted: the probe is known by its sk_buff, as it was when it entered the device).
   */
  type: 'vxlan' | 'geneve' | 'gre' | 'gretap' | 'ipip' | 'wireguard';
  /** The VNI (VXLAN, Geneve) or the GRE key; null without one. */
  id: number | null;
  family: 4 | 6;
  src: string;
  dst: string;
  /** Outer IP protocol: 17 UDP, 47 GRE, 4 IPIP, 41 IPv6. */
  proto: number;
  /** Outer UDP ports (VXLAN, Geneve); 0 otherwise. */
  sport: number;
  dport: number;
  ttl: number;
  /** Outer IP packet length in bytes. */
  len: number;
}

/** The probe seen on an interface. */
export interface HopEvent extends PacketFields {
  kind: 'hop';
  /** The kernel hook: a tracepoint name. */
  hook: string;
  /** The 802.1Q VLAN id the frame carried at this hop, where the hook could read one; else null. */
  vlan: number | null;
  /** What changed since this packet's previous hop (NAT), e.g. "dst 10.0.0.1:8080 -> 172.17.0.2:80"; null if nothing. */
  rewritten?: string | null;
  /** A field no hop changes that changed since this packet's previous hop, e.g. "ttl 64 -> 17"; null if none. */
  altered?: string | null;
  /** Nanoseconds since the same packet's previous hop; null at its first. */
  latency_ns?: number | null;
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

/**
 * An iptables-legacy table's verdict on the probe, from the function that
 * evaluated it (fexit on ipt_do_table / ip6t_do_table): kernels without BPF
 * netfilter links. Becomes a NetfilterEvent (src/netfilter/verdicts.ts).
 */
export interface TableVerdictEvent extends PacketFields {
  kind: 'xt-table';
  nf_hook: number;
  nf_pf: number;
  table: string;
  priority: number;
  /** NF_DROP 0, NF_ACCEPT 1, ... */
  verdict: number;
}

/** DropEvent.reason where the kernel gives none (kfree_skb before 5.17): the place alone names the drop. */
export const NO_REASON_GIVEN = 'no reason given by this kernel';

/**
 * No reason named: none at all (before 5.17), or NOT_SPECIFIED (what plain
 * kfree_skb() reports since, e.g. the neighbour layer giving up on 6.1).
 */
export const reasonUnnamed = (reason: string) => reason === NO_REASON_GIVEN || reason === 'NOT_SPECIFIED';

/** The kernel freed the probe's packet as dropped (tracepoint skb:kfree_skb). */

export interface DropEvent extends PacketFields {
  kind: 'drop';
  /** The drop reason's name in the running kernel (enum skb_drop_reason), without SKB_DROP_REASON_. */
  reason: string;
  reason_code: number;
  /** Where: the kernel function and offset that freed it, e.g. "ip_forward+0x2b1". */
  location: string;
}

/**
 * The probe's packet queued at a next hop that has not answered ARP or
 * neighbour discovery yet (tracepoint neigh:neigh_event_send_done): it waits
 * there until the neighbour answers, and is dropped (NEIGH_FAILED) if none does.
 * `ifname` is the neighbour's device.
 */
export interface NeighbourEvent extends PacketFields {
  kind: 'neighbour';
  /** "neigh": the tracepoint neigh:neigh_event_send_done. */
  hook: string;
  /** The address being resolved: the route's gateway, or the destination itself on a link. */
  next_hop: string;
  /** The neighbour entry's state once it queued the packet, as `ip neigh` writes it (INCOMPLETE, ...). */
  neighbour_state: string;
}

/** A route lookup made for the probe (tracepoints fib:fib_table_lookup, fib6:fib6_table_lookup). */
export interface RouteEvent {
  kind: 'route';
  time_ns: number;
  /** The packet the lookup was made for ("0" for the sender's own lookup, before any packet exists). */
  skb: string;
  /** As PacketFields.lost_so_far. */
  lost_so_far: number;
  netns: number;
  netns_name: string | null;
  family: 4 | 6;
  /** The flow looked up. */
  src: string;
  dst: string;
  /** The table's name (main, local, default, or from /etc/iproute2/rt_tables) or number. */
  table: string;
  table_id: number;
  /** Output interface, null when the lookup failed. */
  oif: string | null;
  /** Next hop when it is a gateway, null when on-link. */
  gateway: string | null;
  /** null on success; else "no route", "unreachable", "prohibit", "blackhole", ... */
  error: string | null;
  /** What the lookup was for: "input" (a received packet), "output" (one sent from here), "reverse-path" (rp_filter's check). */
  purpose: 'input' | 'output' | 'reverse-path';
  /** The flow's IP protocol (1 ICMP, 58 ICMPv6, 17 UDP for ping's source-address probe, 0 unset). */
  proto: number;
  /** The flow's ports (TCP/UDP), 0 when unset: the kernel's own lookups (reverse-path checks) set none. */
  sport: number;
  dport: number;
  /** The flow's ICMP type where it names one (the kernel routing an ICMPv6 answer), else 0. */
  flow_icmp_type: number;
  /** Made for an ICMP error the kernel is sending (its caller chain says so: ICMP's re-lookup of the error's way); absent otherwise. */
  for_icmp_error?: boolean;
  /** As PacketFields.node. */
  node?: string;
}

/**
 * An XDP or tc (tcx) program on the path returned, having seen the probe's
 * packet (fexit on it): src/kernel/program-returns.ts ties it to the program
 * and it becomes one of that program's BpfProgramOnPath.returned.
 */
export interface ProgramReturnEvent extends PacketFields {
  kind: 'program-return';
  hook: 'xdp' | 'tc';
  /** Which of tracepkt's fexit copies saw it: the program it was aimed at is known in user space. */
  copy: number;
  /** The program's return code. */
  code: number;
  /** tc: the side it ran on; XDP: ingress. */
  direction: 'ingress' | 'egress';
}

/** Kernel records, as the tracer yields them. Drops carry numbers until named (src/kernel/names.ts). */
export type KernelEvent = HopEvent | CheckpointEvent | DropEvent | RouteEvent | TableVerdictEvent | NeighbourEvent | ProgramReturnEvent;

/** What the kernel reported about a packet itself (a route lookup is about a flow). */
export type PacketEvent = Exclude<KernelEvent, { kind: 'route' }>;

/** A netfilter base chain (or an iptables-legacy table) that judged the probe. */
export interface NetfilterEvent extends Omit<PacketFields, 'conntrack' | 'skb' | 'lost_so_far' | 'ifindex' | 'ifname' | 'ttl' | 'len' | 'icmp_type' | 'icmp_code' | 'quotes' | 'mtu' | 'quoted_src' | 'quoted_dst' | 'fragment'> {
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
  decided_by: 'rule' | 'policy' | 'passage' | 'table';
}

/** A BPF program attached to an interface the probe crossed (XDP, tc, tcx), as the kernel lists it after the run. */
export interface BpfProgramOnPath {
  netns: number;
  netns_name: string | null;
  ifindex: number;
  ifname: string;
  /** xdp, tc (a classic tc filter on the clsact qdisc) or tcx (6.6+). */
  hook: 'xdp' | 'tc' | 'tcx';
  /** XDP runs on receive: always ingress. */
  direction: 'ingress' | 'egress';
  /** XDP: driver, generic or offload; tc: direct-action or classifier; tcx: tcx. */
  mode: string;
  /** The kernel's program id (bpftool prog show id N). */
  id: number;
  /** Its name as loaded (up to 15 characters); null when it went away before it could be asked. */
  name: string | null;
  tag: string | null;
  /** Its program type: xdp, sched_cls, ... */
  type: string | null;
  /** tc: the filter's priority; tcx: its place in the chain (0 first); null for XDP. */
  priority: number | null;
  /** Whether it carries BTF (what tracing its return codes with fexit needs); null when unknown. */
  has_btf: boolean | null;
  /** Whether tracepkt traced its return codes during the run (fexit on it): then `returned` is all it did with the probe. */
  traced: boolean;
  /** Each time it returned having seen the probe's packet (traced programs), in time order. */
  returned: ProgramReturn[];
}

/** What a traced program returned for the probe's packet. */
export interface ProgramReturn {
  time_ns: number;
  /** request, reply or error: which of the probe's packets it was. */
  dir: Direction;
  /** Which probe (ping's sequence number; 1 for a TCP/UDP probe). */
  seq: number;
  /** The packet's sk_buff (as HopEvent.skb); "0" for XDP, which has none. */
  skb: string;
  code: number;
  /** The code's name: XDP_DROP, TC_ACT_SHOT, TCX_PASS, ...; tc classifiers: "class 1:10", "no match". */
  action: string;
  /** Whether the code ends the packet there: drop (XDP_DROP, XDP_ABORTED, TC_ACT_SHOT, TCX_DROP), stolen (TC_ACT_STOLEN, TC_ACT_TRAP), or null. */
  ends: 'drop' | 'stolen' | null;
}

export type TraceEvent = HopEvent | NetfilterEvent | DropEvent | RouteEvent | NeighbourEvent;
