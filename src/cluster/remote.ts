/**
 * A coordinator's connection to one agent: the handshake, the clock offset,
 * one trace at a time, the lease kept alive. Everything the agent sends is
 * checked (src/cluster/messages.ts, src/cluster/event-check.ts) and its
 * times turned into ours before anyone else sees it; whatever goes wrong
 * (no answer, a wrong token, a broken message, the connection lost) ends
 * the view from that node with one line saying why, never the coordinator.
 */
import * as tls from 'node:tls';
import type { TraceEvent } from '../events';
import { estimateOffset, type ClockOffset, type ClockSample } from './clock';
import { checkJourneyEvent, checkSighting } from './event-check';
import { AGENT_FRAME_MAX, PROTOCOL_VERSION, agentMessage, type AgentMessage, type CoordinatorMessage, type TraceWhat } from './messages';
import { coordinatorTlsOptions, tlsFailure } from './tls';
import type { Credentials } from './credentials';
import { FrameReader, WireError, frame } from './wire';

/** A node as given on the command line: --node NAME=ADDR:PORT. */
export interface NodeAddress {
  name: string;
  host: string;
  port: number;
}

export interface TraceHandlers {
  attached(notes: string[]): void;
  /** Events in order, times in our clock; uptoNs: the node's events up to then (our clock) are all in. */
  events(events: TraceEvent[], uptoNs: number | undefined): void;
  /** Events lost on the node (or between it and us) between these times of our clock. */
  loss(fromNs: number, toNs: number): void;
  /** The trace ended as the agent says. */
  done(done: Extract<AgentMessage, { type: 'done' }>): void;
  /** The view from this node ended early: why, in words. */
  failed(why: string): void;
}

const CLOCK_SAMPLES = 5;
/**
 * How far outside its trace's time (our clock) an event may be placed: clocks drift and the
 * offset is known within a bound, but an event an hour from now would hold a journey open.
 */
const EVENT_TIME_SLACK_NS = 60e9;
const monoNs = () => Number(process.hrtime.bigint());

export class RemoteNode {
  private readonly reader = new FrameReader(AGENT_FRAME_MAX);
  private waiting: ((m: AgentMessage) => void) | undefined;
  private handlers: TraceHandlers | undefined;
  private traceId = 0;
  /** Where the current trace is: asked for, attached (events may come), or none. */
  private traceState: 'none' | 'asked' | 'attached' = 'none';
  private traceStartNs = 0;
  /** The current trace's event check: a passive trace's sightings, or a probe's whole journey. */
  private check: (v: Record<string, unknown>) => TraceEvent | string = checkSighting;
  private renewTimer: NodeJS.Timeout | undefined;
  private failure: string | undefined;
  /** What the agent says of itself. */
  node = '';
  kernel = '';
  offset: ClockOffset = { offsetNs: 0, uncertaintyNs: 0 };
  /** When the offset was measured (our clock): clocks drift apart from then on. */
  measuredAtNs = 0;

  private constructor(
    readonly address: NodeAddress,
    private readonly socket: tls.TLSSocket,
  ) {}

  /**
   * Connects, greets and measures the clock offset, within timeoutMs; rejects with the reason in words.
   * leaseMs: how long the agent traces on without hearing from us (renewed at a third of it).
   */
  static connect(address: NodeAddress, credentials: Credentials, o: { timeoutMs: number; leaseMs: number }): Promise<RemoteNode> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect(coordinatorTlsOptions(credentials, address.host, address.port));
      const remote = new RemoteNode(address, socket);
      const timer = setTimeout(() => fail(`no answer within ${o.timeoutMs / 1000} s`), o.timeoutMs);
      const fail = (why: string) => {
        clearTimeout(timer);
        remote.close();
        reject(new Error(why));
      };
      socket.on('error', (err: NodeJS.ErrnoException) => remote.lost(tlsFailure(err)));
      socket.on('close', () => remote.lost('the connection closed'));
      socket.on('data', (chunk: Buffer) => remote.read(chunk));
      remote.onFailure = fail;
      socket.once('secureConnect', async () => {
        try {
          remote.send({ type: 'hello', version: PROTOCOL_VERSION, lease_ms: o.leaseMs });
          const hello = await remote.next('hello');
          if (hello.version !== PROTOCOL_VERSION) throw new Error(`it speaks protocol ${hello.version}, this tracepkt ${PROTOCOL_VERSION}`);
          remote.node = hello.node;
          remote.kernel = hello.kernel;
          const samples: ClockSample[] = [];
          for (let i = 0; i < CLOCK_SAMPLES; i++) {
            const sentNs = monoNs();
            remote.send({ type: 'clock', t: sentNs });
            const answer = await remote.next('clock');
            if (answer.t !== sentNs) throw new Error('it answered another clock question');
            samples.push({ sentNs, receivedNs: monoNs(), nodeNs: answer.node_ns });
          }
          remote.offset = estimateOffset(samples);
          remote.measuredAtNs = monoNs();
          remote.renewTimer = setInterval(() => remote.send({ type: 'renew' }), Math.max(250, Math.floor(o.leaseMs / 3)));
          clearTimeout(timer);
          remote.onFailure = undefined;
          resolve(remote);
        } catch (err) {
          fail((err as Error).message);
        }
      });
    });
  }

  /** Before connect() resolves: where a lost connection is reported. */
  private onFailure: ((why: string) => void) | undefined;

  /** A node time as ours. */
  private ours(nodeNs: number): number {
    return Math.round(nodeNs - this.offset.offsetNs);
  }

  trace(request: TraceWhat & { seconds: number; maxEvents: number }, handlers: TraceHandlers): void {
    if (this.failure) return handlers.failed(this.failure);
    this.handlers = handlers;
    this.traceId++;
    this.traceState = 'asked';
    this.traceStartNs = monoNs();
    this.check = 'probe' in request ? checkJourneyEvent : checkSighting;
    const what = 'probe' in request ? { probe: request.probe } : { filter: request.filter };
    this.send({ type: 'trace', id: this.traceId, ...what, seconds: Math.ceil(request.seconds), max_events: request.maxEvents });
  }

  /** Asks the agent to end the trace; its done message follows. */
  stop(): void {
    this.send({ type: 'stop', id: this.traceId });
  }

  close(): void {
    this.failure ??= 'closed by us';
    clearInterval(this.renewTimer);
    this.socket.end();
    // An agent that does not close its side is not waited for.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private send(m: CoordinatorMessage): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(frame(m));
  }

  private next<T extends AgentMessage['type']>(type: T): Promise<Extract<AgentMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      this.waiting = (m) => {
        this.waiting = undefined;
        if (m.type === 'error') reject(new Error(`it said: ${m.message}`));
        else if (m.type !== type) reject(new Error(`it sent "${m.type}" where "${type}" was due`));
        else resolve(m as Extract<AgentMessage, { type: T }>);
      };
    });
  }

  private read(chunk: Buffer): void {
    if (this.failure) return;
    try {
      for (const raw of this.reader.push(chunk)) {
        const m = agentMessage(raw);
        if (this.waiting) this.waiting(m);
        else this.handle(m);
        if (this.failure) return;
      }
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.send({ type: 'error', message: err.message });
      this.lost(err.message);
    }
  }

  private handle(m: AgentMessage): void {
    const h = this.handlers;
    if (m.type === 'error') return this.lost(`it said: ${m.message}`);
    if (!h || !('id' in m) || m.id !== this.traceId) return this.lost(`it sent "${m.type}" out of turn`);
    // In turn: attached once, then events and losses, then done (done may also come instead of attached).
    if (m.type === 'attached' ? this.traceState !== 'asked' : (m.type === 'events' || m.type === 'loss') && this.traceState !== 'attached') {
      throw new WireError(`it sent "${m.type}" out of turn`);
    }
    switch (m.type) {
      case 'attached':
        this.traceState = 'attached';
        return h.attached(m.notes);
      case 'events': {
        const events: TraceEvent[] = [];
        const earliest = this.traceStartNs - EVENT_TIME_SLACK_NS;
        const latest = monoNs() + EVENT_TIME_SLACK_NS;
        for (const raw of m.events) {
          const e = this.check(raw);
          if (typeof e === 'string') throw new WireError(`it sent ${e}`);
          e.time_ns = this.ours(e.time_ns);
          if (e.time_ns < earliest || e.time_ns > latest) throw new WireError('it sent an event timed outside its trace (by its clock offset)');
          events.push(e);
        }
        const upto = m.upto_ns === undefined ? undefined : Math.min(this.ours(m.upto_ns), latest);
        return h.events(events, upto);
      }
      case 'loss':
        return h.loss(this.ours(m.from_ns), this.ours(m.to_ns));
      case 'done':
        this.handlers = undefined;
        this.traceState = 'none';
        return h.done(m);
      default:
        return this.lost('it sent a message out of turn');
    }
  }

  /** The view from this node is over: said once, to whoever listens now. */
  private lost(why: string): void {
    if (this.failure) return;
    this.failure = why;
    clearInterval(this.renewTimer);
    this.socket.destroy();
    if (this.onFailure) this.onFailure(why);
    else this.handlers?.failed(why);
    this.handlers = undefined;
  }
}
