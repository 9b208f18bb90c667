/**
 * The coordinator's side of a trace across nodes: a view from each node
 * given with --node, reached and greeted before the local trace starts,
 * traced with the same filter, and kept account of: how far each node's
 * events are in (so that a journey is not called complete while a node may
 * still send some of it), what it lost, and why a view ended early. A node
 * that cannot be reached, refuses or breaks off is named, with the reason,
 * in the start line, the summary and wherever a journey could lack it.
 */
import * as os from 'node:os';
import { withPort } from '../addr';
import { TracepktError } from '../errors';
import { readCredentials, type Credentials } from './credentials';
import type { CredentialFiles } from './credential-files';
import type { TraceEvent } from '../events';
import { describeOffset } from './clock';
import type { AgentMessage, TraceWhat } from './messages';
import { RemoteNode, type NodeAddress } from './remote';

/** Waiting for a node to answer at all, and to end its trace when asked. */
export const NODE_TIMEOUT_MS = 5000;
/**
 * Waiting for a node's trace to attach: the kernel verifies its programs first, which takes a
 * fraction of a second on real hardware and tens of seconds under emulation.
 */
export const ATTACH_TIMEOUT_MS = 120_000;
/** The agent stops tracing if it hears nothing from us for this long (we renew at a third). */
export const LEASE_MS = 15_000;
/**
 * A node whose events lag more than this behind is no longer waited for to
 * complete journeys: they complete on the others' time, the time it lags is
 * counted as lost for it (journeys then are marked incomplete), and its lag
 * is said at once and in the summary.
 */
const LAG_LIMIT_NS = 5_000_000_000;
/** How long one remote trace may run (an agent's bound): a day. */
export const REMOTE_TRACE_SECONDS = 86_400;
export const REMOTE_TRACE_EVENTS = 100_000_000;

/** What --node needs, checked before anything is attached: the token, and names other than this host's. */
export interface NodesWanted {
  nodes: NodeAddress[];
  credentials: Credentials;
  /** This host's name in the journey. */
  local: string;
}

export function nodesWanted(nodes: NodeAddress[], files: CredentialFiles): NodesWanted {
  const credentials = readCredentials(files);
  const local = os.hostname();
  const clash = nodes.find((n) => n.name === local);
  if (clash) throw new TracepktError(`--node ${clash.name}: that is this host's name; name the other nodes otherwise`);
  return { nodes, credentials, local };
}

export interface NodeView {
  /** The name given on the command line. */
  name: string;
  address: NodeAddress;
  remote: RemoteNode | null;
  /** tracing: events coming; done: the agent ended the trace; failed: no view (further) from it. */
  state: 'tracing' | 'done' | 'failed';
  /** Why there is no view, or no more view, from this node. */
  why: string | null;
  /** The node's events up to this time (our clock) are all in. */
  uptoNs: number;
  events: number;
  /** Its events this coordinator dropped itself: its own output was behind (a slow pipe). */
  lostHere: number;
  /** A trace was asked of it; it attached; we asked it to end. */
  asked: boolean;
  attached: boolean;
  stopAsked: boolean;
  /** Lagging more than LAG_LIMIT_NS now; how many times it did. */
  lagging: boolean;
  lags: number;
  /** Losses it reported and not yet handed on (they are joined and handed on at most per tick). */
  pendingLoss: [number, number] | null;
  done: Extract<AgentMessage, { type: 'done' }> | null;
  notes: string[];
}

export interface ViewHandlers {
  events(view: NodeView, events: TraceEvent[]): void;
  loss(view: NodeView, fromNs: number, toNs: number): void;
  /** A view ended before it was asked to: say so now (the summary says it again). */
  failed(view: NodeView, why: string): void;
  /** A view fell behind by more than LAG_LIMIT_NS (said once per time). */
  lagging(view: NodeView): void;
}

const monoNs = () => Number(process.hrtime.bigint());

export class RemoteViews {
  /** Who waits for a node's state to change. */
  private waiters = new Set<() => void>();
  private h: ViewHandlers | undefined;
  /** stop() was called: nothing waits for nodes any more. */
  private stopping = false;

  private constructor(readonly views: NodeView[]) {}

  /** Reaches every node at once; one that cannot be reached is a view that failed, not an error. */
  static async connect(addresses: readonly NodeAddress[], credentials: Credentials): Promise<RemoteViews> {
    const views = await Promise.all(
      addresses.map(async (address): Promise<NodeView> => {
        const view: NodeView = {
          name: address.name, address, remote: null, state: 'failed', why: null, uptoNs: 0, events: 0, lostHere: 0,
          asked: false, attached: false, stopAsked: false, lagging: false, lags: 0, pendingLoss: null, done: null, notes: [],
        };
        try {
          view.remote = await RemoteNode.connect(address, credentials, { timeoutMs: NODE_TIMEOUT_MS, leaseMs: LEASE_MS });
          view.state = 'tracing';
        } catch (err) {
          view.why = (err as Error).message;
        }
        return view;
      }),
    );
    return new RemoteViews(views);
  }

  /**
   * Starts the trace on every node reached: the same filter, or witnesses of the same probe (for
   * as long and as many events as one probe's part may take).
   */
  start(what: TraceWhat, h: ViewHandlers, limits = { seconds: REMOTE_TRACE_SECONDS, maxEvents: REMOTE_TRACE_EVENTS }): void {
    this.h = h;
    for (const view of this.views) {
      if (!view.remote || view.state !== 'tracing') continue;
      view.uptoNs = monoNs();
      view.asked = true;
      view.remote.trace(
        { ...what, ...limits },
        {
          attached: (notes) => {
            view.notes.push(...notes);
            view.attached = true;
            this.wake();
          },
          events: (events, uptoNs) => {
            for (const e of events) e.node = view.name;
            view.events += events.length;
            if (uptoNs !== undefined) view.uptoNs = Math.max(view.uptoNs, uptoNs);
            if (events.length) h.events(view, events);
          },
          loss: (fromNs, toNs) => {
            const p = view.pendingLoss;
            view.pendingLoss = p ? [Math.min(p[0], fromNs), Math.max(p[1], toNs)] : [fromNs, toNs];
          },
          done: (done) => {
            view.done = done;
            this.flushLoss(view);
            if (done.error) this.fail(view, done.error);
            else if (!view.attached) this.fail(view, 'stopped before its trace attached');
            else if (done.reason !== 'stopped' || !view.stopAsked) {
              const why = { stopped: 'its agent ended the trace (it is stopping)', time: 'its time limit', events: 'its event limit', lease: 'its lease ran out', failed: 'it failed' }[done.reason];
              this.fail(view, `its trace ended early: ${why}`);
            } else {
              view.state = 'done';
              this.wake();
            }
          },
          failed: (why) => this.fail(view, why),
        },
      );
    }
  }

  /** The view from this node ends here (if it has not already): said, and waiters woken. */
  private fail(view: NodeView, why: string): void {
    if (view.state === 'failed') return;
    this.flushLoss(view);
    view.state = 'failed';
    view.why = why;
    this.h?.failed(view, why);
    this.wake();
  }

  private flushLoss(view: NodeView): void {
    if (!view.pendingLoss) return;
    const [from, to] = view.pendingLoss;
    view.pendingLoss = null;
    this.h?.loss(view, from, to);
  }

  /**
   * Resolves once every node's trace attached or failed, or stop() was called; a node still
   * attaching after timeoutMs is given up (its view failed, its connection closed).
   */
  async attached(timeoutMs = ATTACH_TIMEOUT_MS): Promise<void> {
    await this.until(() => this.views.every((v) => v.state !== 'tracing' || v.attached), timeoutMs);
    if (this.stopping) return;
    for (const v of this.views) {
      if (v.state === 'tracing' && !v.attached) {
        this.fail(v, `its trace did not attach within ${timeoutMs / 1000} s`);
        v.remote!.close();
      }
    }
  }

  /** Waits until cond() holds (checked whenever a node's state changes), stop() is called, or timeoutMs passed. */
  private async until(cond: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond() && !this.stopping && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  /**
   * The time up to which every node's events are in (our clock), given ours: what journeys may be
   * completed on. Each tick: the losses nodes reported are handed on, and a node lagging beyond
   * LAG_LIMIT_NS holds nobody back; the time it lags is counted as lost for it.
   */
  watermark(localNs: number): number {
    let upto = localNs;
    const limit = monoNs() - LAG_LIMIT_NS;
    for (const v of this.views) {
      this.flushLoss(v);
      if (v.state !== 'tracing' || !v.attached) continue;
      if (v.uptoNs < limit) {
        if (!v.lagging) {
          v.lagging = true;
          v.lags++;
          this.h?.lagging(v);
        }
        this.h?.loss(v, v.uptoNs, limit);
      } else v.lagging = false;
      upto = Math.min(upto, Math.max(v.uptoNs, limit));
    }
    return upto;
  }

  /**
   * Asks every node to end its trace and waits for each to say it did (or waitMs: a probe's
   * witness judges its journey first), then disconnects. `late`: what is said of a node that did
   * not end its trace in time. Called again meanwhile (with 0: Ctrl-C), it stops waiting.
   */
  async stop(waitMs = NODE_TIMEOUT_MS, late = `it did not confirm the end of its trace within ${waitMs / 1000} s: its last events may be missing`): Promise<void> {
    const tracing = this.views.filter((v) => v.state === 'tracing' && v.asked);
    for (const v of tracing) {
      if (!v.stopAsked) v.remote!.stop();
      v.stopAsked = true;
    }
    await this.until(() => tracing.every((v) => v.state !== 'tracing'), waitMs);
    this.stopping = true;
    this.wake();
    for (const v of tracing) {
      if (v.state !== 'tracing') continue;
      this.fail(v, v.attached ? late : 'stopped before its trace attached');
    }
    for (const v of this.views) v.remote?.close();
  }

  /** A sentence per node whose view is missing in whole or in part ("no view from node b: connection refused (...)"). */
  missing(): string[] {
    const out: string[] = [];
    for (const v of this.views) {
      if (v.why !== null) out.push(`${v.events > 0 ? 'the view from node' : 'no view from node'} ${v.name}${v.events > 0 ? ' is partial' : ''}: ${v.why}`);
      if (v.lags > 0) out.push(`the view from node ${v.name} fell more than ${LAG_LIMIT_NS / 1e9} s behind ${v.lags} time(s): journeys meanwhile are marked incomplete`);
    }
    return out;
  }

  /** The nodes asked to end their trace that have not yet. */
  ending(): string[] {
    return this.views.filter((v) => v.state === 'tracing' && v.stopAsked).map((v) => v.name);
  }

  /** The nodes whose trace is asked for and not attached yet. */
  attaching(): string[] {
    return this.views.filter((v) => v.state === 'tracing' && v.asked && !v.attached).map((v) => v.name);
  }

  /** Each node whose trace attached, as the start line says it: name, address, kernel, clock offset, notes. */
  reached(): { node: string; address: string; kernel: string; clock_offset_ns: number; clock_uncertainty_ns: number; clock: string; notes: string[] }[] {
    return this.views
      .filter((v) => v.remote && v.attached)
      .map((v) => ({
        node: v.name,
        address: withPort(v.address.host, v.address.port),
        kernel: v.remote!.kernel,
        clock_offset_ns: Math.round(v.remote!.offset.offsetNs),
        clock_uncertainty_ns: v.remote!.offset.uncertaintyNs,
        clock: describeOffset(v.remote!.offset),
        notes: v.notes,
      }));
  }
}
