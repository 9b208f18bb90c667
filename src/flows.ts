/**
 * Passive tracing's journeys: the packets of one flow (both directions),
 * numbered in the order flows appear. The first packet of a flow sets its
 * forward direction: those are requests, the other way replies. A journey
 * is complete once it has been idle for a while.
 */
import { withPort } from './addr';
import type { KernelEvent } from './events';

type PacketEvent = Exclude<KernelEvent, { kind: 'route' }>;

const endpoint = (addr: string, port: number) => `${addr}#${port}`;

/** The flow a packet belongs to, the same both ways; its forward side first. Per event: kept cheap. */
export function flowOf(e: PacketEvent): { key: string; forward: string } {
  const ports = e.proto === 6 || e.proto === 17;
  // ICMP echoes pair by their identifier, errors by the packet they quote.
  const a = endpoint(e.src, ports ? e.sport : e.icmp_id);
  const b = endpoint(e.dst, ports ? e.dport : e.icmp_id);
  const proto = e.dir === 'error' ? e.proto : e.proto === 58 ? 1 : e.proto;
  const forward = `${a} ${b}`;
  return { key: a < b ? `${proto} ${forward}` : `${proto} ${b} ${a}`, forward };
}

const PROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmp6' };

function labelOf(e: PacketEvent): string {
  const name = PROTOS[e.proto] ?? `proto ${e.proto}`;
  const ports = e.proto === 6 || e.proto === 17;
  if (ports) return `${name} ${withPort(e.src, e.sport)} -> ${withPort(e.dst, e.dport)}`;
  return `${name} ${e.src} -> ${e.dst} id ${e.icmp_id}`;
}

export interface Journey {
  id: number;
  key: string;
  forward: string;
  /** "tcp 10.0.1.2:40000 -> 10.0.2.2:80", "icmp 10.0.1.2 -> 10.0.2.2 id 7": its first packet's way. */
  label: string;
  /** Namespaces crossed, inode → name. */
  packets: number;
  namespaces: Map<number, string | null>;
  lastSeenMs: number;
  complete: boolean;
  /** Events were lost (ring buffer full) while it was open: it may lack packets. */
  incomplete: boolean;
}

export class FlowJourneys {
  private journeys = new Map<string, Journey>();
  private nextId = 1;

  constructor(private readonly idleMs = 1000) {}

  /** Numbers the event's journey and orients it; returns the journey. */
  add(e: PacketEvent, nowMs: number): Journey {
    const { key, forward } = flowOf(e);
    let j = this.journeys.get(key);
    if (!j || j.complete) {
      j = { id: this.nextId++, key, forward, label: labelOf(e), packets: 0, namespaces: new Map(), lastSeenMs: nowMs, complete: false, incomplete: false };
      this.journeys.set(key, j);
    }
    j.packets++;
    j.namespaces.set(e.netns, e.netns_name);
    j.lastSeenMs = nowMs;
    // ICMP knows its own direction (echo request or reply); TCP and UDP are told by the flow.
    if (e.dir !== 'error' && (e.proto === 6 || e.proto === 17)) {
      e.dir = forward === j.forward ? 'request' : 'reply'; // for TCP/UDP, forward is "src#sport dst#dport"
    }
    return j;
  }

  /**
   * The kernel lost events: which journey they belonged to is unknown, so
   * every journey open now, or seen since `sinceMs`, may have a gap.
   */
  markGaps(sinceMs: number): void {
    for (const j of this.journeys.values()) {
      if (!j.complete || j.lastSeenMs >= sinceMs) j.incomplete = true;
    }
  }

  /** Journeys idle for idleMs are complete: returns those that just became so. */
  completeIdle(nowMs: number): Journey[] {
    const done: Journey[] = [];
    for (const j of this.journeys.values()) {
      if (!j.complete && nowMs - j.lastSeenMs >= this.idleMs) {
        j.complete = true;
        done.push(j);
      }
    }
    return done;
  }

  all(): Journey[] {
    return [...this.journeys.values()].sort((a, b) => a.id - b.id);
  }
}
