/**
 * `tracepkt agent`: traces this host for coordinators that prove the token.
 *
 * It takes trace requests and nothing else: a pcap filter (compiled here by
 * libpcap, checked by the kernel's verifier) or the identity of a probe sent
 * from elsewhere, a time and an event limit, all bounded
 * (src/cluster/messages.ts). No command, no path, nothing of the host's is
 * changed beyond what a local trace attaches (for a probe, as for a local
 * one: nftables trace tables that mark its packets in each namespace), and
 * that goes when the trace ends: when asked, at its time or event limit,
 * when the connection closes, or when the coordinator's lease runs out (it
 * renews it while alive; a coordinator that dies or is cut off stops
 * renewing). A coordinator slower than the events is never waited for:
 * what its connection cannot take is counted lost and said as such.
 */
import * as net from 'node:net';
import * as os from 'node:os';
import * as tls from 'node:tls';
import { withPort } from '../addr';
import type { KernelEvent, TraceEvent } from '../events';
import { isSighting } from '../sightings';
import { TracepktError } from '../errors';
import { agentTlsOptions, tlsFailure } from './tls';
import type { Credentials } from './credentials';
import { FrameReader, WireError, frame } from './wire';
import { COORDINATOR_FRAME_MAX, PROTOCOL_VERSION, coordinatorMessage, type AgentMessage, type CoordinatorMessage, type DoneReason, type TraceWhat } from './messages';

/** What the agent needs of a tracer (src/tracer.ts's Tracer has it; the protocol's tests give a made-up one). */
export interface TraceSource {
  readonly notes: readonly string[];
  /**
   * Events as they come (passive tracing: only sightings are sent of them); a probe's witness
   * yields its journey's events once, after close().
   */
  batches(): AsyncIterable<(KernelEvent | TraceEvent)[]>;
  /** What could not be seen, known once the trace ended (said in done). */
  finalNotes?(): string[];
  /** Records the kernel lost so far, and of them those tracepkt's own queue dropped. */
  lost(): number;
  lostInUserSpace(): number;
  /** Kernel-time intervals in which the queue dropped records, since last asked. */
  takeUserSpaceGaps(): [number, number][];
  /** Kernel time of the oldest event read and not yet handed out, if any. */
  pendingSince(): number | null;
  close(): void;
}

export interface AgentOptions {
  host: string;
  port: number;
  /** The token, or certificates (mutual TLS). */
  credentials: Credentials;
  /** The node's name as it says it (default: the host name). */
  node?: string;
  /** Opens the tracer for a pcap filter expression or a probe; throws TracepktError for one it cannot trace. */
  openTrace: (what: TraceWhat) => Promise<TraceSource>;
  /** One line per event worth an operator's eye: a refused peer, a trace begun or ended. */
  log: (line: string) => void;
}

/** Connections served at once; more are refused (each may run a trace: programs, a ring buffer). */
export const AGENT_CONNECTIONS_MAX = 8;
/**
 * TLS handshakes under way at once: a peer without the token holds a socket until its handshake
 * fails or times out. Beyond this many the oldest is dropped for the newcomer, so that idle
 * connections cannot lock out a coordinator that holds the token.
 */
export const AGENT_HANDSHAKES_MAX = 32;
/** Of those, from one address: its own oldest gives way first, so one host cannot push out the others'. */
export const AGENT_HANDSHAKES_PER_PEER = 4;
/** Clock questions one connection may ask (a coordinator asks 5): each answer is a write queued for it. */
const CLOCK_QUESTIONS_MAX = 32;
const HANDSHAKE_TIMEOUT_MS = 5000;
/** From the handshake to hello: a peer that says nothing is dropped. */
const HELLO_TIMEOUT_MS = 10_000;
/** Lines about refused peers at most per window; the rest are counted in one line (anyone can cause them). */
const REFUSALS_LOGGED = 10;
const REFUSALS_WINDOW_MS = 10_000;
/** Bytes queued to a coordinator beyond which batches are dropped (counted) rather than queued. */
export const AGENT_BACKLOG = 8 * 1024 * 1024;
/**
 * Beyond this, a coordinator is asking (clock questions, say) faster than it reads the answers:
 * refused. Events alone stop at AGENT_BACKLOG and one batch.
 */
const BACKLOG_REFUSED = 2 * AGENT_BACKLOG;
/** Events per message at most (a batch of a flood is split). */
const EVENTS_PER_MESSAGE = 2000;
/** How often losses are looked for and the coordinator told how far this node's events are complete. */
const TICK_MS = 100;

const monoNs = () => Number(process.hrtime.bigint());

export class Agent {
  private readonly server: tls.Server;
  private readonly sessions = new Set<Session>();
  /** Every socket, handshaking or not: destroyed when the agent stops. */
  private readonly sockets = new Set<net.Socket>();
  /** Sockets in their TLS handshake, oldest first, by their peer's address and port. */
  private readonly handshaking = new Map<string, net.Socket>();
  private readonly refusals: (line: string) => void;
  readonly node: string;

  constructor(private readonly o: AgentOptions) {
    this.node = o.node ?? os.hostname();
    this.refusals = rateLimited(o.log);
    this.server = tls.createServer({ ...agentTlsOptions(o.credentials), handshakeTimeout: HANDSHAKE_TIMEOUT_MS }, (socket) => this.accept(socket));
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      const key = peerKey(socket);
      this.handshaking.set(key, socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        if (this.handshaking.get(key) === socket) this.handshaking.delete(key);
      });
      const drop = (victim: net.Socket, why: string) => {
        this.handshaking.delete(peerKey(victim));
        this.refusals(`dropped ${peerOf(victim)}: still in its handshake, ${why}`);
        victim.destroy();
      };
      const fromThere = [...this.handshaking.values()].filter((s) => s.remoteAddress === socket.remoteAddress);
      if (fromThere.length > AGENT_HANDSHAKES_PER_PEER) drop(fromThere[0], `${AGENT_HANDSHAKES_PER_PEER} handshakes under way from its address`);
      else if (this.handshaking.size > AGENT_HANDSHAKES_MAX) drop(this.handshaking.values().next().value as net.Socket, `${AGENT_HANDSHAKES_MAX} handshakes under way`);
    });
    // A peer without the token, or not speaking TLS: refused in the handshake.
    this.server.on('tlsClientError', (err, socket) => this.refusals(`refused ${peerOf(socket)}: ${tlsFailure(err)}`));
  }

  /** Listens; resolves with the address it listens on. */
  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EADDRNOTAVAIL' ? 'no interface has that address' : err.code === 'EACCES' ? 'permission denied' : err.message;
        reject(new TracepktError(`agent: cannot listen on ${this.o.host}:${this.o.port}: ${why}`));
      };
      this.server.once('error', failed);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', failed);
        // Accepting can fail later (out of file descriptors): said, and the agent serves on.
        this.server.on('error', (err) => this.o.log(`accepting a connection failed: ${err.message}`));
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** Stops listening, ends every trace and connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all([...this.sessions].map((s) => s.end('the agent is stopping')));
    for (const socket of this.sockets) socket.destroy(); // handshakes under way are not waited for
    await closed;
  }

  private accept(socket: tls.TLSSocket): void {
    this.handshaking.delete(peerKey(socket));
    // With certificates, the handshake completes whatever the peer's (src/cluster/tls.ts): one the CA
    // does not sign is refused here, with one line to both sides saying why, before a byte is read.
    if (!socket.authorized && !('token' in this.o.credentials)) {
      const offered = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
      const why = !offered ? 'none offered' : certificateProblem(String(socket.authorizationError ?? 'not verified'));
      this.refusals(`refused ${peerOf(socket)}: its certificate: ${why}`);
      socket.on('error', () => undefined);
      socket.end(frame({ type: 'error', message: `your certificate is not accepted: ${why}` }));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    if (this.sessions.size >= AGENT_CONNECTIONS_MAX) {
      this.refusals(`refused ${peerOf(socket)}: ${AGENT_CONNECTIONS_MAX} connections already`);
      socket.on('error', () => undefined);
      socket.end(frame({ type: 'error', message: `busy: ${AGENT_CONNECTIONS_MAX} connections already` }));
      setTimeout(() => socket.destroy(), 1000).unref(); // the line has a moment to leave
      return;
    }
    const session = new Session(socket, this.node, this.o);
    this.sessions.add(session);
    session.closed.then(() => this.sessions.delete(session));
  }
}

/** OpenSSL's verify result for a peer's certificate, in words. */
function certificateProblem(code: string): string {
  if (/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER|CERT_SIGNATURE_FAILURE/.test(code)) return 'not signed by the CA this agent trusts';
  if (/CERT_HAS_EXPIRED|CERT_NOT_YET_VALID/.test(code)) return 'expired or not valid yet';
  if (/INVALID_PURPOSE/.test(code)) return 'not one for a client (its extended key usage says serverAuth only: an agent\'s?)';
  return code;
}

/** A connection's peer as the TCP socket and the TLS socket over it both report it. */
const peerKey = (socket: net.Socket) => `${socket.remoteAddress} ${socket.remotePort}`;

/** A log of at most REFUSALS_LOGGED lines per window; what is left out is counted in one line after it. */
function rateLimited(log: (line: string) => void): (line: string) => void {
  let logged = 0;
  let skipped = 0;
  let window: NodeJS.Timeout | undefined;
  return (line) => {
    if (!window) {
      window = setTimeout(() => {
        if (skipped) log(`... and ${skipped} more refused in ${REFUSALS_WINDOW_MS / 1000} s`);
        logged = skipped = 0;
        window = undefined;
      }, REFUSALS_WINDOW_MS);
      window.unref();
    }
    if (logged < REFUSALS_LOGGED) {
      logged++;
      log(line);
    } else skipped++;
  };
}

function peerOf(socket: net.Socket | undefined): string {
  if (!socket?.remoteAddress) return 'a peer';
  return withPort(socket.remoteAddress, socket.remotePort ?? 0);
}

/** One coordinator's connection: at most one trace at a time. */
class Session {
  private readonly reader = new FrameReader(COORDINATOR_FRAME_MAX);
  private greeted = false;
  private clockQuestions = 0;
  private leaseMs = 0;
  private leaseTimer: NodeJS.Timeout;
  private trace: RunningTrace | undefined;
  private ended = false;
  private readonly peer: string;
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: tls.TLSSocket,
    private readonly node: string,
    private readonly o: AgentOptions,
  ) {
    this.peer = peerOf(socket);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.leaseTimer = setTimeout(() => this.refuse('said nothing'), HELLO_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', () => undefined); // a reset: 'close' follows
    socket.once('close', () => {
      if (this.trace && !this.ended) this.o.log(`${this.peer}: the coordinator disconnected`);
      void this.end(undefined);
    });
  }

  send(m: AgentMessage): void {
    if (!this.socket.destroyed) this.socket.write(frame(m));
  }

  /** Bytes queued to the coordinator and not yet taken by it. */
  get backlog(): number {
    return this.socket.writableLength;
  }

  private read(chunk: Buffer): void {
    if (this.ended) return;
    let messages;
    try {
      messages = this.reader.push(chunk).map(coordinatorMessage);
    } catch (err) {
      if (err instanceof WireError) return this.refuse(err.message);
      throw err;
    }
    for (const m of messages) {
      if (this.ended) return;
      this.handle(m);
    }
    if (!this.ended && this.socket.writableLength > BACKLOG_REFUSED) this.refuse('asks faster than it reads the answers');
  }

  private handle(m: CoordinatorMessage): void {
    if (!this.greeted && m.type !== 'hello') return this.refuse(`sent "${m.type}" before hello`);
    // Any message renews the lease.
    this.renew();
    switch (m.type) {
      case 'hello':
        if (this.greeted) return this.refuse('said hello twice');
        if (m.version !== PROTOCOL_VERSION) return this.refuse(`speaks protocol ${m.version}; this agent speaks ${PROTOCOL_VERSION}`);
        this.greeted = true;
        this.leaseMs = m.lease_ms;
        this.renew();
        this.send({ type: 'hello', version: PROTOCOL_VERSION, node: this.node, kernel: os.release() });
        return;
      case 'clock':
        if (++this.clockQuestions > CLOCK_QUESTIONS_MAX) return this.refuse(`asked the time more than ${CLOCK_QUESTIONS_MAX} times`);
        this.send({ type: 'clock', t: m.t, node_ns: monoNs() });
        return;
      case 'trace':
        if (this.trace) return this.refuse('asked for a second trace while one runs');
        this.o.log(`${this.peer}: tracing ${m.probe ? `a probe to ${m.probe.target}` : JSON.stringify(m.filter)} for ${m.seconds} s at most`);
        this.trace = new RunningTrace(this, m, this.o.openTrace, (line) => this.o.log(`${this.peer}: ${line}`));
        void this.trace.done.then((reason) => {
          this.o.log(`${this.peer}: trace ended (${reason})`);
          this.trace = undefined;
        });
        return;
      case 'stop':
        if (this.trace?.id === m.id) this.trace.stop('stopped');
        return;
      case 'renew':
        return;
      case 'error':
        this.o.log(`${this.peer}: the coordinator said: ${m.message}`);
        void this.end(undefined);
    }
  }

  private renew(): void {
    clearTimeout(this.leaseTimer);
    if (!this.leaseMs) return;
    this.leaseTimer = setTimeout(() => {
      this.o.log(`${this.peer}: lease expired (nothing heard for ${this.leaseMs} ms): trace stopped, connection closed`);
      void this.end(undefined, 'lease');
    }, this.leaseMs);
  }

  /** A message or silence that breaks the protocol: said once, to both, and the connection ends. */
  private refuse(why: string): void {
    this.o.log(`refused ${this.peer}: ${why}`);
    this.send({ type: 'error', message: why });
    void this.end(undefined);
  }

  /** Ends the trace (its last events and done said to the coordinator while it can hear), then the connection. */
  async end(why: string | undefined, reason: DoneReason = 'stopped'): Promise<void> {
    if (this.ended) return this.closed;
    this.ended = true;
    clearTimeout(this.leaseTimer);
    if (this.trace) {
      this.trace.stop(reason);
      await this.trace.done;
    }
    if (why) this.send({ type: 'error', message: why });
    this.socket.end();
    // A coordinator that does not read its last messages is not waited for.
    const linger = setTimeout(() => this.socket.destroy(), 2000);
    await this.closed;
    clearTimeout(linger);
  }
}

/** One trace for one coordinator: the tracer's events sent as they come, until stopped. */
class RunningTrace {
  readonly id: number;
  readonly done: Promise<DoneReason>;
  private reason: DoneReason | undefined;
  private tracer: TraceSource | undefined;
  private sent = 0;
  private lostInTransit = 0;
  private stopWaiting: () => void = () => undefined;

  constructor(
    private readonly session: Session,
    private readonly request: Extract<CoordinatorMessage, { type: 'trace' }>,
    open: (what: TraceWhat) => Promise<TraceSource>,
    log: (line: string) => void,
  ) {
    this.id = request.id;
    // Nothing a trace meets may take the agent down: a bug here ends this trace, said as such.
    this.done = this.run(open).catch((err: unknown) => {
      log(`internal error, trace ended: ${(err as Error)?.message ?? err}`);
      this.tracer?.close();
      this.session.send({ type: 'done', id: this.id, reason: 'failed', lost_events: 0, lost_in_user_space: 0, lost_in_transit: this.lostInTransit, error: 'internal error in the agent' });
      return 'failed' as const;
    });
  }

  stop(reason: DoneReason): void {
    this.reason ??= reason;
    this.tracer?.close();
    this.stopWaiting();
  }

  private async run(open: (what: TraceWhat) => Promise<TraceSource>): Promise<DoneReason> {
    const id = this.id;
    const stopped = new Promise<void>((resolve) => (this.stopWaiting = resolve));
    let tracer: TraceSource;
    try {
      const r = this.request;
      const opening = open(r.probe ? { probe: r.probe } : { filter: r.filter });
      const opened = await Promise.race([opening, stopped.then(() => null)]);
      if (opened === null) {
        // Stopped while the kernel verified the programs: what attaches after is closed at once.
        opening.then((t) => t.close(), () => undefined);
        const reason = this.reason ?? 'stopped';
        this.session.send({ type: 'done', id, reason, lost_events: 0, lost_in_user_space: 0, lost_in_transit: 0 });
        return reason;
      }
      tracer = opened;
    } catch (err) {
      const message = err instanceof TracepktError ? err.message : `internal error: ${(err as Error)?.message ?? err}`;
      this.session.send({ type: 'done', id, reason: 'failed', lost_events: 0, lost_in_user_space: 0, lost_in_transit: 0, error: message.slice(0, 1000) });
      return 'failed';
    }
    this.tracer = tracer;
    if (this.reason) tracer.close(); // stopped while it attached
    this.session.send({ type: 'attached', id, notes: [...tracer.notes] });
    const timeLimit = setTimeout(() => this.stop('time'), this.request.seconds * 1000);
    let lost = 0;
    let checkedNs = monoNs();
    // Passive tracing sends what it shows; a probe's witness sends its whole journey.
    const sendable = this.request.probe ? () => true : isSighting;
    // Losses as passive tracing finds them (src/commands/passive.ts), in this node's clock; and an empty
    // batch saying how far this node's events are complete, so the coordinator need not wait longer.
    const tick = () => {
      const at = monoNs();
      const now = tracer.lost();
      if (now > lost) this.session.send({ type: 'loss', id, from_ns: checkedNs, to_ns: at });
      for (const [from, to] of tracer.takeUserSpaceGaps()) this.session.send({ type: 'loss', id, from_ns: Math.max(0, Math.round(from)), to_ns: Math.max(0, Math.round(to)) });
      lost = now;
      checkedNs = at;
      this.session.send({ type: 'events', id, events: [], upto_ns: Math.max(0, Math.round(tracer.pendingSince() ?? at)) });
    };
    const ticker = setInterval(tick, TICK_MS);
    try {
      for await (const batch of tracer.batches()) {
        const sightings = batch.filter(sendable as (e: KernelEvent | TraceEvent) => boolean);
        if (sightings.length === 0) continue;
        const room = this.request.max_events - this.sent;
        if (room <= 0) continue; // the limit is reached: what the ring still held is drained, not sent
        const taken = sightings.length > room ? sightings.slice(0, room) : sightings;
        if (this.session.backlog > AGENT_BACKLOG) {
          // The coordinator is not keeping up: these are dropped here, and it is told when.
          this.lostInTransit += taken.length;
          this.session.send({ type: 'loss', id, from_ns: taken[0].time_ns, to_ns: taken[taken.length - 1].time_ns });
        } else {
          for (let i = 0; i < taken.length; i += EVENTS_PER_MESSAGE) {
            this.session.send({ type: 'events', id, events: taken.slice(i, i + EVENTS_PER_MESSAGE) as unknown as Record<string, unknown>[] });
          }
        }
        this.sent += taken.length;
        if (this.sent >= this.request.max_events) this.stop('events');
      }
    } finally {
      clearTimeout(timeLimit);
      clearInterval(ticker);
      tracer.close();
    }
    tick();
    const notes = tracer.finalNotes?.().map((n) => n.slice(0, 1000)).slice(0, 100);
    this.session.send({ type: 'done', id, reason: this.reason ?? 'stopped', lost_events: tracer.lost(), lost_in_user_space: tracer.lostInUserSpace(), lost_in_transit: this.lostInTransit, ...(notes?.length ? { notes } : {}) });
    return this.reason ?? 'stopped';
  }
}
