/**
 * What agents and coordinators say to each other (protocol version 1), and
 * the checks each side makes of what it reads: every field's type and range,
 * no field unknown. A message that fails them ends the connection with one
 * line naming what was wrong; nothing in it is acted on.
 *
 *   coordinator                      agent
 *   hello {version, lease_ms}   →
 *                               ←    hello {version, node, kernel}
 *   clock {t}                   →                      (a few times)
 *                               ←    clock {t, node_ns}
 *   trace {id, filter, ...}     →    (or {id, probe, ...}: a probe sent from elsewhere)
 *                               ←    attached {id, notes}
 *                               ←    events {id, events}  loss {id, ...}  (as they come)
 *   stop {id}                   →    (or the time or event limit is reached)
 *                               ←    done {id, reason, lost_events, ...}
 *   renew {}                    →    (at least once per lease; any message renews it)
 *
 * Either side may send error {message} before it closes.
 */
import { isIP } from 'node:net';
import { WireError } from './wire';

export const PROTOCOL_VERSION = 1;

/** What a coordinator may ask of one trace: an agent refuses more. */
export const TRACE_LIMITS = {
  /** The pcap filter's length in characters. */
  filterChars: 1024,
  seconds: 86_400,
  events: 100_000_000,
  /** A lease: how long the agent keeps tracing without hearing from the coordinator. */
  leaseMs: { min: 1000, max: 60_000 },
} as const;

/** A coordinator's messages are small: an agent reads no frame longer than this. */
export const COORDINATOR_FRAME_MAX = 64 * 1024;
/** An agent's messages carry batches of events: a coordinator reads no frame longer than this. */
export const AGENT_FRAME_MAX = 16 * 1024 * 1024;

/**
 * A probe another node sends, traced here by what identifies its packets
 * (src/probe/witness.ts): a ping by the 8 bytes it carries, a TCP/UDP probe
 * by its flow as it left its sender; in a tunnel, by the packet inside.
 */
export interface ProbeRequest {
  /** The marker, 16 hex digits, and where it sits from the ICMP header. */
  marker: string;
  marker_offset: number;
  family: 4 | 6;
  target: string;
  /** TCP/UDP probes: the flow. */
  flow?: { proto: 6 | 17; src: string; dst: string; sport: number; dport: number };
}

/** What a trace follows: packets matching a pcap filter (passive) or one probe's. */
export type TraceWhat = { filter: string } | { probe: ProbeRequest };

export type CoordinatorMessage =
  | { type: 'hello'; version: number; lease_ms: number }
  | { type: 'clock'; t: number }
  | ({ type: 'trace'; id: number; seconds: number; max_events: number } & ({ filter: string; probe?: undefined } | { probe: ProbeRequest; filter?: undefined }))
  | { type: 'stop'; id: number }
  | { type: 'renew' }
  | { type: 'error'; message: string };

export type DoneReason = 'stopped' | 'time' | 'events' | 'lease' | 'failed';

export type AgentMessage =
  | { type: 'hello'; version: number; node: string; kernel: string }
  | { type: 'clock'; t: number; node_ns: number }
  | { type: 'attached'; id: number; notes: string[] }
  /** Events in the order read; upto_ns: this node's events up to that time of its clock are all sent (or said lost). */
  | { type: 'events'; id: number; events: Record<string, unknown>[]; upto_ns?: number }
  /** Events the agent lost between these times of its own clock (its ring buffer full, or the coordinator too slow to take them). */
  | { type: 'loss'; id: number; from_ns: number; to_ns: number }
  /** The trace ended; `error` says why one failed (a filter the agent cannot trace, say); `notes`: what it could not see. */
  | { type: 'done'; id: number; reason: DoneReason; lost_events: number; lost_in_user_space: number; lost_in_transit: number; error?: string; notes?: string[] }
  | { type: 'error'; message: string };

type Check = (v: unknown) => boolean;

const int = (min: number, max: number): Check => (v) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const count = int(0, Number.MAX_SAFE_INTEGER);
/**
 * A CLOCK_MONOTONIC time in ns: past 2^53 (104 days of uptime) a double holds it to within a few
 * ns, as the decoder does; an integer either way, below 2^64.
 */
export const monoTime: Check = (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 64;
const str = (maxChars: number): Check => (v) => typeof v === 'string' && v.length <= maxChars;
const oneOf = (...values: string[]): Check => (v) => typeof v === 'string' && values.includes(v);
const arrayOf = (each: Check, max: number): Check => (v) => Array.isArray(v) && v.length <= max && v.every(each);
const plainObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);
const optional = (c: Check): Check => (v) => v === undefined || c(v);
const objectOf = (fields: Record<string, Check>): Check => (v) =>
  plainObject(v) &&
  Object.keys(v as object).every((k) => Object.prototype.hasOwnProperty.call(fields, k)) &&
  Object.entries(fields).every(([k, c]) => c((v as Record<string, unknown>)[k]));
const port = int(1, 65535);
const ipOf = (family: unknown) => (v: unknown) => typeof v === 'string' && v.length <= 45 && isIP(v) === family;
/**
 * A probe: its addresses of its family; a flow's source port outside the well-known ones (ours
 * are picked from 10000 up): a witness follows netfilter for that port, and must not for ssh's.
 */
const PROBE: Check = (v) =>
  plainObject(v) &&
  objectOf({
    marker: (m) => typeof m === 'string' && /^[0-9a-f]{16}$/.test(m),
    marker_offset: int(0, 1500),
    family: (f) => f === 4 || f === 6,
    target: ipOf((v as ProbeRequest).family),
    flow: optional(objectOf({ proto: (p) => p === 6 || p === 17, src: ipOf((v as ProbeRequest).family), dst: ipOf((v as ProbeRequest).family), sport: int(1024, 65535), dport: port })),
  })(v);

const COORDINATOR: Record<CoordinatorMessage['type'], Record<string, Check>> = {
  hello: { version: int(1, 1000), lease_ms: int(TRACE_LIMITS.leaseMs.min, TRACE_LIMITS.leaseMs.max) },
  clock: { t: monoTime },
  // Exactly one of filter and probe (checked below).
  trace: { id: count, filter: optional(str(TRACE_LIMITS.filterChars)), probe: optional(PROBE), seconds: int(1, TRACE_LIMITS.seconds), max_events: int(1, TRACE_LIMITS.events) },
  stop: { id: count },
  renew: {},
  error: { message: str(1000) },
};

const AGENT: Record<AgentMessage['type'], Record<string, Check>> = {
  hello: { version: int(1, 1000), node: str(255), kernel: str(255) },
  clock: { t: monoTime, node_ns: monoTime },
  attached: { id: count, notes: arrayOf(str(1000), 100) },
  // Each event is checked against its kind's fields by src/cluster/event-check.ts.
  events: { id: count, events: arrayOf(plainObject, 1_000_000), upto_ns: optional(monoTime) },
  loss: { id: count, from_ns: monoTime, to_ns: monoTime },
  done: { id: count, reason: oneOf('stopped', 'time', 'events', 'lease', 'failed'), lost_events: count, lost_in_user_space: count, lost_in_transit: count, error: optional(str(1000)), notes: optional(arrayOf(str(1000), 100)) },
  error: { message: str(1000) },
};

function checked<T>(schemas: Record<string, Record<string, Check>>, m: Record<string, unknown>, from: string): T {
  const type = m.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(schemas, type)) {
    throw new WireError(`${from} sent a message of unknown type ${JSON.stringify(String(type)).slice(0, 40)}`);
  }
  const fields = schemas[type];
  for (const key of Object.keys(m)) {
    if (key !== 'type' && !Object.prototype.hasOwnProperty.call(fields, key)) throw new WireError(`${from} sent "${type}" with an unknown field ${JSON.stringify(key).slice(0, 40)}`);
  }
  for (const [key, check] of Object.entries(fields)) {
    if (!check(m[key])) throw new WireError(`${from} sent "${type}" with ${key} ${m[key] === undefined ? 'missing' : 'out of range or of the wrong type'}`);
  }
  if (type === 'trace' && (m.filter === undefined) === (m.probe === undefined)) throw new WireError(`${from} sent "trace" with ${m.filter === undefined ? 'neither a filter nor a probe' : 'both a filter and a probe'}`);
  return m as T;
}

export const coordinatorMessage = (m: Record<string, unknown>) => checked<CoordinatorMessage>(COORDINATOR, m, 'the coordinator');
export const agentMessage = (m: Record<string, unknown>) => checked<AgentMessage>(AGENT, m, 'the agent');
