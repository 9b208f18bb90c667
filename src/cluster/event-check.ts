/**
 * Events as an agent sends them, checked before anything renders, groups or
 * judges them: every field of the kind (src/events.ts) present with its type
 * and a sane range, nothing else, strings bounded. The rest of tracepkt then
 * holds them to the same types as events of its own kernel: a hostile agent
 * can lie about what it saw (and the journey says which node said it), but
 * cannot crash the coordinator or hide output in it (names are shown made
 * visible, as local ones: src/render/shown.ts).
 */
import type { NetfilterEvent, RouteEvent, TraceEvent } from '../events';
import type { Sighting } from '../sightings';
import { monoTime } from './messages';

type Check = (v: unknown) => boolean;

const NAME = 256; // interface names are 15 bytes; namespace and process names a few dozen characters
const u32 = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
const u8 = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 255;
const u16 = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
const str = (max: number): Check => (v) => typeof v === 'string' && v.length <= max;
const bool = (v: unknown) => typeof v === 'boolean';
const oneOf = (...values: (string | number | null)[]): Check => (v) => values.includes(v as string);
const orNull = (c: Check): Check => (v) => v === null || c(v);
const optional = (c: Check): Check => (v) => v === undefined || c(v);
/** An address as tracepkt writes one: IPv4 dotted or IPv6 text, nothing else. */
const address: Check = (v) => typeof v === 'string' && v.length <= 45 && /^[0-9a-fA-F.:]+$/.test(v);
const hex: Check = (v) => typeof v === 'string' && v.length <= 16 && /^[0-9a-f]+$/.test(v);
const objectOf = (fields: Record<string, Check>): Check => (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const key of Object.keys(v)) if (!Object.prototype.hasOwnProperty.call(fields, key)) return false;
  return Object.entries(fields).every(([key, check]) => check((v as Record<string, unknown>)[key]));
};
const arrayOf = (each: Check, max: number): Check => (v) => Array.isArray(v) && v.length <= max && v.every(each);

const tuple = objectOf({ src: address, dst: address, sport: u16, dport: u16 });

const PACKET: Record<string, Check> = {
  time_ns: monoTime,
  skb: hex,
  lost_so_far: u32,
  netns: u32,
  netns_name: orNull(str(NAME)),
  ifindex: u32,
  ifname: str(NAME),
  dir: oneOf('request', 'reply', 'error'),
  family: oneOf(4, 6),
  src: address,
  dst: address,
  icmp_id: u16,
  icmp_seq: u16,
  icmp_type: u8,
  icmp_code: u8,
  quotes: oneOf('request', 'reply', null),
  mtu: orNull(u32),
  proto: u8,
  sport: u16,
  dport: u16,
  tcp_flags: str(16),
  tcp_seq: u32,
  ttl: u8,
  len: u32,
  quoted_src: orNull(address),
  quoted_dst: orNull(address),
  fragment: orNull(objectOf({ id: u32, offset: u32, more: bool })),
  tunnel: orNull(
    objectOf({
      type: oneOf('vxlan', 'geneve', 'gre', 'gretap', 'ipip', 'wireguard'),
      id: orNull(u32),
      family: oneOf(4, 6),
      src: address,
      dst: address,
      proto: u8,
      sport: u16,
      dport: u16,
      ttl: u8,
      len: u32,
    }),
  ),
  conntrack: orNull(
    objectOf({
      state: oneOf('new', 'established', 'related', 'untracked', 'unreadable'),
      direction: oneOf('original', 'reply', null),
      zone: u16,
      mark: u32,
      proto: u8,
      original: orNull(tuple),
      reply: orNull(tuple),
      status: arrayOf(str(32), 32),
      nat: orNull(str(200)),
    }),
  ),
};

/** The kinds passive tracing shows (src/sightings.ts), field by field. */
const KINDS: Record<Sighting['kind'], Record<string, Check>> = {
  hop: { ...PACKET, hook: str(64), vlan: orNull(int12), rewritten: optional(orNull(str(200))), altered: optional(orNull(str(200))), latency_ns: optional(orNull(Number.isSafeInteger)) }, // events of two CPUs may come in either order: negative
  drop: { ...PACKET, reason: str(64), reason_code: u32, location: str(NAME) },
  neighbour: { ...PACKET, hook: str(64), next_hop: address, neighbour_state: str(32) },
};

function int12(v: unknown): boolean {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 4096;
}

/** A probe's journey has route lookups and netfilter verdicts besides: what an agent that traced a probe sends. */
const JOURNEY_KINDS: Record<TraceEvent['kind'], Record<string, Check>> = {
  ...KINDS,
  route: {
    time_ns: monoTime, skb: hex, lost_so_far: u32, netns: u32, netns_name: orNull(str(NAME)), family: oneOf(4, 6), src: address, dst: address,
    table: str(64), table_id: u32, oif: orNull(str(NAME)), gateway: orNull(address), error: orNull(str(64)), purpose: oneOf('input', 'output', 'reverse-path'),
    proto: u8, sport: u16, dport: u16, flow_icmp_type: u8, for_icmp_error: optional(bool),
  } satisfies Record<Exclude<keyof RouteEvent, 'kind' | 'node'>, Check>,
  netfilter: {
    time_ns: monoTime, netns: u32, netns_name: orNull(str(NAME)), dir: oneOf('request', 'reply', 'error'), family: oneOf(4, 6), src: address, dst: address,
    icmp_id: u16, icmp_seq: u16, proto: u8, sport: u16, dport: u16, tcp_flags: str(16), tcp_seq: u32, tunnel: PACKET.tunnel,
    hook: str(32), table_family: str(16), table: str(NAME), chain: str(NAME), priority: (v) => Number.isSafeInteger(v) && Math.abs(v as number) <= 2 ** 31,
    backend: oneOf('nftables', 'iptables-legacy'), verdict: str(32), rule: orNull(str(4096)), handle: orNull(u32 as Check), decided_by: oneOf('rule', 'policy', 'passage', 'table'),
  } satisfies Record<Exclude<keyof NetfilterEvent, 'kind' | 'node' | 'journey'>, Check>,
};

/** The event if it is one of a kind passive tracing shows, whole and well-typed; else why not, in a few words. */
export function checkSighting(v: Record<string, unknown>): Sighting | string {
  return checkOf(KINDS, v) as Sighting | string;
}

/** The event if it is one of a probe's journey (src/probe/witness.ts sends them), whole and well-typed; else why not. */
export function checkJourneyEvent(v: Record<string, unknown>): TraceEvent | string {
  return checkOf(JOURNEY_KINDS, v);
}

function checkOf(kinds: Record<string, Record<string, Check>>, v: Record<string, unknown>): TraceEvent | string {
  const kind = v.kind;
  if (typeof kind !== 'string' || !Object.prototype.hasOwnProperty.call(kinds, kind)) return `an event of unknown kind ${JSON.stringify(String(kind)).slice(0, 30)}`;
  const fields = kinds[kind];
  for (const key of Object.keys(v)) {
    if (key !== 'kind' && !Object.prototype.hasOwnProperty.call(fields, key)) return `a ${kind} event with an unknown field ${JSON.stringify(key).slice(0, 40)}`;
  }
  for (const [key, check] of Object.entries(fields)) {
    if (!check(v[key])) return `a ${kind} event whose ${key} is ${v[key] === undefined ? 'missing' : 'out of range or of the wrong type'}`;
  }
  return v as unknown as TraceEvent;
}
