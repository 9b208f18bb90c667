/**
 * Netfilter tracing in every network namespace, set up from inside each
 * (BPF netfilter links and netlink sockets belong to the namespace of the
 * thread that creates them):
 *
 * - an nftables table of our own, created with the `owner` flag through our
 *   own netlink socket, so the kernel deletes it when the socket closes, even
 *   if we are killed. Its chains set `nftrace` on the probe's packets, and
 *   the same socket receives the trace events that name every chain and rule
 *   that judged them;
 * - BPF netfilter links (checkpoints) bracketing each priority at which a
 *   table judges packets, which catch iptables-legacy tables too.
 *
 * Nothing of the user's ruleset is read for more than its chains, or changed.
 */
import * as fs from 'node:fs';
import { forEachRecord } from '../batch';
import { BPF_NAMES, NF_CHECKPOINTS } from '../bpf/layout';
import type { BpfObject } from '../bpf/object';
import { BpfError, describeError as describe, errnoName } from '../errors';
import type { KnownNetns } from '../names/netns';
import type { Native, WatchHandle } from '../native';
import { FAMILY_NAMES, hookName, NFPROTO_IPV4, NFPROTO_IPV6, PRIORITY_MAX, PRIORITY_MIN } from './hooks';
import { judgesFromChains, judgesFromLegacy, planCheckpoints, type HookPlan, type Judge } from './judges';
import { errorCode, NLMSG, parseMessages, type NlMessage } from './netlink';
import {
  batch,
  decodeChain,
  delTable,
  decodeTrace,
  getChainsDump,
  msgType,
  newBaseChain,
  newRule,
  newTable,
  NETLINK_NETFILTER,
  NFPROTO,
  NFNLGRP_NFTRACE,
  NFT_MSG,
  NFT_TABLE_F_OWNER,
  type ChainInfo,
  type TraceMessage,
} from './nftables';

/** Every table tracepkt creates is named so; `tracepkt cleanup` looks for the prefix. */
export const TABLE_PREFIX = 'tracepkt_';

/**
 * Our chains run before every other (conntrack's defrag sits at -400, raw at
 * -300), and before the entry checkpoint (PRIORITY_MIN + 1 and up).
 */
const TRACE_CHAIN_PRIORITY = PRIORITY_MIN;
const NF_INET_PRE_ROUTING = 0;
const NF_INET_LOCAL_OUT = 3;
const REPLY_TIMEOUT_MS = 2000;
const NO_ANSWER = 'nftables did not answer';

export interface NetfilterOptions {
  /** The expressions of each rule that sets nftrace on the probe's packets; none: no nftables tracing. */
  traceRules: Buffer[][];
  /** Name of our table, the same in every namespace. */
  table: string;
}

/** A request whose replies are awaited: they arrive with the socket's batches, on the event loop. */
interface Exchange {
  firstSeq: number;
  lastSeq: number;
  /** A dump: answered when NLMSG_DONE comes; else when every request is acknowledged (or one fails). */
  untilDone: boolean;
  replies: NlMessage[];
  acked: Set<number>;
  finish(err?: Error): void;
}

/** What tracing found and set up in one namespace. */
export class NamespaceWatch {
  judges: Judge[] = [];
  plans: HookPlan[] = [];
  traces: TraceMessage[] = [];
  /** Trace messages the kernel could not deliver (socket buffer full), or that could not be read. */
  lostTraces = 0;
  /** Datagrams the addon read but no batch could hold (out of memory): counted in native code. */
  droppedByAddon: () => number = () => 0;
  /** What could not be set up here, in words. */
  notes: string[] = [];
  /** False when the kernel refused the owner flag: the table must be deleted by hand. */
  ownedTable = true;
  socket: WatchHandle | undefined;
  private seq = 1;
  private pending: Exchange | undefined;

  constructor(readonly netns: KnownNetns) {}

  /** Every trace message lost here, whoever lost it. */
  lost(): number {
    return this.lostTraces + this.droppedByAddon();
  }

  /** Routes the datagrams of a batch: traces are kept, replies go to the exchange awaiting them. */
  accept(batchBuf: Buffer): void {
    forEachRecord(batchBuf, (off, len) => {
      if (len === 0) this.lostTraces++;
      else {
        try {
          this.acceptDatagram(batchBuf.subarray(off, off + len));
        } catch {
          this.lostTraces++; // a message we could not read: counted, never fatal
        }
      }
    });
  }

  /** Keeps the datagram's trace messages; returns the others (set-up answers), given to the exchange awaiting them. */
  acceptDatagram(datagram: Buffer): NlMessage[] {
    const others: NlMessage[] = [];
    for (const m of parseMessages(datagram)) {
      if (m.type === msgType(NFT_MSG.TRACE)) this.traces.push(decodeTrace(m));
      else {
        others.push(m);
        if (this.pending) this.reply(this.pending, m);
      }
    }
    return others;
  }

  private reply(x: Exchange, m: NlMessage): void {
    if (m.seq < x.firstSeq || m.seq > x.lastSeq) return;
    x.replies.push(m);
    if (m.type === NLMSG.DONE) return x.finish();
    if (m.type === NLMSG.ERROR) {
      x.acked.add(m.seq);
      if (errorCode(m) !== 0 || (!x.untilDone && x.acked.size >= x.lastSeq - x.firstSeq)) x.finish();
    }
  }

  /**
   * Sends one request and resolves with the replies that answer it, read
   * from the socket's batches as they come: nothing waits on the event loop.
   * One exchange at a time per namespace; an answer that does not come in
   * REPLY_TIMEOUT_MS, or a socket closed meanwhile, rejects.
   */
  exchange(native: Native, request: Buffer, firstSeq: number, lastSeq: number, untilDone: boolean): Promise<NlMessage[]> {
    if (this.pending) return Promise.reject(new Error('an nftables exchange is already under way'));
    if (!this.socket) return Promise.reject(new Error('no netlink socket'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => x.finish(Object.assign(new Error(NO_ANSWER), { code: 'ETIMEDOUT' })), REPLY_TIMEOUT_MS);
      const x: Exchange = {
        firstSeq,
        lastSeq,
        untilDone,
        replies: [],
        acked: new Set(),
        finish: (err) => {
          clearTimeout(timer);
          this.pending = undefined;
          if (err) reject(err);
          else resolve(x.replies);
        },
      };
      this.pending = x;
      try {
        native.netlinkSend(this.socket!, request);
      } catch (err) {
        x.finish(err as Error);
      }
    });
  }

  /** Ends an exchange still awaiting replies: the socket is closing. */
  abandon(): void {
    this.pending?.finish(new Error('closed while waiting for nftables'));
  }

  nextSeq(count = 1): number {
    const seq = this.seq;
    this.seq += count;
    return seq;
  }
}

export class NetfilterWatcher {
  readonly namespaces: NamespaceWatch[] = [];

  private constructor(
    private readonly native: Native,
    private readonly options: NetfilterOptions,
  ) {}

  /**
   * Finds what judges packets in each namespace and starts nftables tracing
   * there, every namespace at once. The thread enters a namespace only to
   * open its socket and read its legacy tables (a few system calls); the
   * netlink exchanges are awaited, never waited for. Checkpoints come later
   * (attachCheckpoints): the BPF object is loaded with only as many
   * checkpoint programs as the plans need.
   */
  static async start(native: Native, options: NetfilterOptions, namespaces: readonly KnownNetns[]): Promise<NetfilterWatcher> {
    const watcher = new NetfilterWatcher(native, options);
    try {
      await Promise.all(namespaces.map((netns) => watcher.discover(netns)));
    } catch (err) {
      watcher.close();
      throw err;
    }
    return watcher;
  }

  /** Runs fn with the thread in the namespace; false if the namespace is gone. */
  private inside(ns: NamespaceWatch, fn: () => void): boolean {
    if (ns.netns.path !== null) {
      try {
        this.native.enterNetns(ns.netns.path);
      } catch {
        ns.notes.push('namespace vanished before it could be entered');
        return false;
      }
    }
    try {
      fn();
    } finally {
      if (ns.netns.path !== null) this.native.leaveNetns();
    }
    return true;
  }

  /** Our table's name, the same in every namespace. */
  get table(): string {
    return this.options.table;
  }

  /** Checkpoint programs the plans need: the most checkpoints any (namespace, family, hook) has. */
  checkpointsNeeded(): number {
    return Math.max(0, ...this.namespaces.flatMap((ns) => ns.plans.map((p) => p.checkpointPriorities.length)));
  }

  /** Attaches every plan's checkpoints, each in its namespace; `obj` has the checkpoint programs loaded. */
  attachCheckpoints(obj: BpfObject): void {
    for (const ns of this.namespaces) {
      if (ns.plans.length === 0) continue;
      const attached = this.inside(ns, () => (ns.plans = ns.plans.filter((plan) => this.attachPlan(obj, ns, plan))));
      if (!attached) ns.plans = [];
    }
  }

  /** Without checkpoints, verdicts come from nftables traces alone. */
  forgetCheckpoints(): void {
    for (const ns of this.namespaces) ns.plans = [];
  }

  private async discover(netns: KnownNetns): Promise<void> {
    const ns = new NamespaceWatch(netns);
    this.namespaces.push(ns); // listed at once, so close() finds its socket whatever happens
    let legacy: Judge[] = [];
    const entered = this.inside(ns, () => {
      try {
        const socket = this.native.netlinkOpen(NETLINK_NETFILTER, [NFNLGRP_NFTRACE], (b) => ns.accept(b));
        ns.socket = socket;
        ns.droppedByAddon = () => this.native.watchLost(socket);
      } catch (err) {
        ns.notes.push(`no nftables tracing: ${describe(err)}`);
      }
      legacy = [
        ...judgesFromLegacy(NFPROTO_IPV4, readLegacyTables('ip_tables_names')),
        ...judgesFromLegacy(NFPROTO_IPV6, readLegacyTables('ip6_tables_names')),
      ];
    });
    if (!entered) return;
    const chains = ns.socket ? await this.dumpChains(ns) : [];
    ns.judges = [...judgesFromChains(chains ?? []), ...legacy];
    if (chains === null) {
      // Silent once, it would be silent again: one timeout per namespace, not one per request.
      ns.notes.push(`no nftables tracing: ${NO_ANSWER}`);
      this.native.closeWatch(ns.socket!);
      ns.socket = undefined;
    }
    if (ns.socket && this.options.traceRules.length > 0) await this.createTraceTable(ns);
    ns.plans = planCheckpoints(ns.judges, NF_CHECKPOINTS);
  }

  /**
   * Attaches a plan's checkpoints. The kernel refuses a BPF netfilter hook
   * at a priority another hook already holds (EBUSY): conntrack, NAT, our
   * own trace chain... so each checkpoint steps up to the next free priority
   * before the next band. A plan that cannot be attached whole is dropped.
   */
  private attachPlan(obj: BpfObject, ns: NamespaceWatch, plan: HookPlan): boolean {
    for (let index = 0; index < plan.checkpointPriorities.length; index++) {
      const limit = index < plan.priorities.length ? plan.priorities[index] : PRIORITY_MAX;
      let priority = plan.checkpointPriorities[index];
      for (;;) {
        try {
          obj.attachNetfilter(BPF_NAMES.checkpoint(index), plan.pf, plan.hooknum, priority);
          plan.checkpointPriorities[index] = priority;
          break;
        } catch (err) {
          if (err instanceof BpfError && err.errno === 16 /* EBUSY */ && priority + 1 < limit) {
            priority++;
            continue;
          }
          ns.notes.push(`no netfilter checkpoints at ${FAMILY_NAMES[plan.pf]} ${hookName(plan.hooknum)}: ${describe(err)}`);
          return false;
        }
      }
    }
    return true;
  }

  /** The base chains; null when nftables did not answer at all. */
  private async dumpChains(ns: NamespaceWatch): Promise<ChainInfo[] | null> {
    const seq = ns.nextSeq();
    try {
      const replies = await ns.exchange(this.native, getChainsDump(seq), seq, seq, true);
      const failed = replies.find((m) => m.type === NLMSG.ERROR && errorCode(m) !== 0);
      if (failed) throw new Error(errnoName(-errorCode(failed)));
      return replies.filter((m) => m.type === msgType(NFT_MSG.NEWCHAIN)).map(decodeChain);
    } catch (err) {
      ns.notes.push(`cannot list nftables chains: ${describe(err)}`);
      return (err as { code?: string }).code === 'ETIMEDOUT' ? null : [];
    }
  }

  /** Our table: chains at prerouting and output that set nftrace on the probe's packets. */
  private async createTraceTable(ns: NamespaceWatch): Promise<void> {
    const { table, traceRules } = this.options;
    const requests = (flags: number) => [
      newTable(NFPROTO.INET, table, flags),
      newBaseChain(NFPROTO.INET, table, 'pre', NF_INET_PRE_ROUTING, TRACE_CHAIN_PRIORITY),
      newBaseChain(NFPROTO.INET, table, 'out', NF_INET_LOCAL_OUT, TRACE_CHAIN_PRIORITY),
      ...['pre', 'out'].flatMap((chain) => traceRules.map((rule) => newRule(NFPROTO.INET, table, chain, rule))),
    ];
    const attempt = async (flags: number): Promise<number> => {
      const reqs = requests(flags);
      const first = ns.nextSeq(reqs.length + 2);
      // A refusal of the whole batch is acknowledged on BATCH_BEGIN's sequence number.
      const replies = await ns.exchange(this.native, batch(first, reqs), first, first + reqs.length, false);
      const failed = replies.find((m) => m.type === NLMSG.ERROR && errorCode(m) !== 0);
      return failed ? -errorCode(failed) : 0;
    };
    try {
      let err = await attempt(NFT_TABLE_F_OWNER);
      if (err === 95 /* EOPNOTSUPP */ || err === 22 /* EINVAL: kernels before 5.12 */) {
        ns.ownedTable = false;
        err = await attempt(0);
      }
      if (err) throw new Error(errnoName(err));
    } catch (err) {
      ns.notes.push(`no nftables tracing: cannot create table inet ${table}: ${describe(err)}`);
      if (ns.socket) this.native.closeWatch(ns.socket);
      ns.socket = undefined;
    }
  }

  /** Reads the trace messages that are already waiting. */
  drain(): void {
    for (const ns of this.namespaces) {
      if (!ns.socket) continue;
      const pending = this.native.drain(ns.socket);
      if (pending) ns.accept(pending);
    }
  }

  /**
   * Closing a socket deletes its owned table; a table the kernel would not
   * let us own is deleted by hand first. The links go with the BPF object.
   * Synchronous (it runs on signals too): nothing is awaited.
   */
  close(): void {
    for (const ns of this.namespaces) {
      ns.abandon();
      if (!ns.socket) continue;
      if (!ns.ownedTable) this.deleteTable(ns);
      this.native.closeWatch(ns.socket);
      ns.socket = undefined;
    }
  }

  /**
   * The kernel handles a netlink request within the sendto() that brings it
   * (nfnetlink runs the batch in the sender's context): the table is gone
   * when the send returns, and its acknowledgement is not awaited.
   */
  private deleteTable(ns: NamespaceWatch): void {
    try {
      const seq = ns.nextSeq(3);
      this.native.netlinkSend(ns.socket!, batch(seq, [delTable(NFPROTO.INET, this.options.table)]));
    } catch {
      // `tracepkt cleanup` removes it
    }
  }
}

/** The iptables-legacy tables in use in the namespace the thread is in. */
function readLegacyTables(file: string): string[] {
  try {
    return fs.readFileSync(`/proc/thread-self/net/${file}`, 'utf8').split('\n').filter(Boolean);
  } catch {
    return []; // no legacy x_tables in this kernel or namespace
  }
}
