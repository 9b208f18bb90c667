/**
 * The agent and the coordinator's connection to it over real TLS on
 * loopback, with a made-up tracer (the integration tests trace for real):
 * the protocol, its bounds, and what either side does with a peer that
 * breaks it.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Agent, type TraceSource } from '../../src/cluster/agent';
import { RemoteNode, type TraceHandlers } from '../../src/cluster/remote';
import { agentTlsOptions, coordinatorTlsOptions } from '../../src/cluster/tls';
import { FrameReader, frame } from '../../src/cluster/wire';
import { decodeBatch, exampleBatch } from '../../src/decode';
import type { KernelEvent } from '../../src/events';
import { TracepktError } from '../../src/errors';
import { readCredentials, type Credentials } from '../../src/cluster/credentials';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually, testPki } from '../integration/helpers';

const TOKEN = 'unit-test-token-0123456789abcdef';

/** A tracer whose batches the test hands in. */
class MadeUpTracer implements TraceSource {
  readonly notes = ['made up for the test'];
  closed = false;
  private readonly queue: KernelEvent[][] = [];
  private wake: (() => void) | undefined;
  kernelLost = 0;

  push(batch: KernelEvent[]): void {
    this.queue.push(batch);
    this.wake?.();
  }

  async *batches(): AsyncGenerator<KernelEvent[]> {
    for (;;) {
      const next = this.queue.shift();
      if (next) yield next;
      else if (this.closed) return;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  lost = () => this.kernelLost;
  lostInUserSpace = () => 0;
  takeUserSpaceGaps = (): [number, number][] => [];
  pendingSince = () => null;
  close(): void {
    this.closed = true;
    this.wake?.();
  }
}

/** n hops as the decoder makes them, timed now (a coordinator refuses events timed outside the trace). */
function hops(n: number): KernelEvent[] {
  const out: KernelEvent[] = [];
  const now = Number(process.hrtime.bigint());
  decodeBatch(exampleBatch(n * 2), (e) => {
    if (e.kind !== 'hop' || out.length >= n) return;
    e.time_ns = now + out.length;
    out.push(e);
  });
  return out;
}

/** How the made-up tracer opens: failing, or once `gate` resolves (the kernel verifying). */
interface Opening {
  fail?: string;
  gate?: Promise<void>;
}

async function withAgent(fn: (a: { agent: Agent; port: number; tracers: MadeUpTracer[]; log: string[]; open: Opening }) => Promise<void>, credentials: Credentials = { token: TOKEN }): Promise<void> {
  const tracers: MadeUpTracer[] = [];
  const log: string[] = [];
  const open: Opening = {};
  const agent = new Agent({
    host: '127.0.0.1',
    port: 0,
    credentials,
    node: 'far',
    openTrace: async () => {
      if (open.fail) throw new TracepktError(open.fail);
      await open.gate;
      const t = new MadeUpTracer();
      tracers.push(t);
      return t;
    },
    log: (line) => log.push(line),
  });
  const { port } = await agent.listen();
  try {
    await fn({ agent, port, tracers, log, open });
  } finally {
    await agent.close();
  }
}

/** Handlers that record what they are told. */
function recorder() {
  const got = { attached: [] as string[], events: [] as KernelEvent[], losses: [] as [number, number][], done: [] as unknown[], failed: [] as string[], upto: 0 };
  const handlers: TraceHandlers = {
    attached: (notes) => got.attached.push(...notes),
    events: (events, upto) => {
      got.events.push(...(events as KernelEvent[]));
      if (upto) got.upto = upto;
    },
    loss: (from, to) => got.losses.push([from, to]),
    done: (d) => got.done.push(d),
    failed: (why) => got.failed.push(why),
  };
  return { got, handlers };
}

/** A client speaking raw frames with the right token: what a broken or hostile coordinator can send. */
async function rawClient(port: number): Promise<{ socket: tls.TLSSocket; said: Record<string, unknown>[]; closed: Promise<void> }> {
  const socket = tls.connect(coordinatorTlsOptions({ token: TOKEN }, '127.0.0.1', port));
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const reader = new FrameReader(1 << 24);
  const said: Record<string, unknown>[] = [];
  socket.on('data', (chunk: Buffer) => said.push(...reader.push(chunk)));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, said, closed };
}

test('a trace: greeted, the clock measured, events sent as they come, ended when asked', async () => {
  await withAgent(async ({ port, tracers, log }) => {
    const remote = await RemoteNode.connect({ name: 'far', host: '127.0.0.1', port }, { token: TOKEN }, { timeoutMs: 5000, leaseMs: 5000 });
    try {
      assert.equal(remote.node, 'far');
      // One process, one clock: the true offset is 0, and the estimate is within its bound of it.
      assert.ok(Math.abs(remote.offset.offsetNs) <= remote.offset.uncertaintyNs + 1, JSON.stringify(remote.offset));
      const { got, handlers } = recorder();
      remote.trace({ filter: 'icmp', seconds: 60, maxEvents: 1000 }, handlers);
      assert.ok(await eventually(() => tracers.length === 1 && got.attached.length === 1));
      assert.deepEqual(got.attached, ['made up for the test']);
      const sent = hops(5);
      const times = sent.map((e) => e.time_ns);
      tracers[0].push(sent);
      assert.ok(await eventually(() => got.events.length === 5));
      assert.deepEqual(got.events.map((e) => e.skb), sent.map((e) => e.skb));
      // Times come in ours: the node's minus the offset.
      got.events.forEach((e, i) => assert.equal(e.time_ns, Math.round(times[i] - remote.offset.offsetNs)));
      remote.stop();
      assert.ok(await eventually(() => got.done.length === 1));
      assert.equal((got.done[0] as { reason: string }).reason, 'stopped');
      assert.equal(tracers[0].closed, true, 'the tracer is closed');
      assert.ok(log.some((l) => /tracing "icmp" for 60 s at most/.test(l)), log.join('\n'));
    } finally {
      remote.close();
    }
  });
});

test('a wrong token fails the handshake on both sides, and nothing is traced', async () => {
  await withAgent(async ({ port, tracers, log }) => {
    await assert.rejects(RemoteNode.connect({ name: 'far', host: '127.0.0.1', port }, { token: 'another-token-0123456789abcdef' }, { timeoutMs: 5000, leaseMs: 5000 }), /the token does not match/);
    assert.ok(await eventually(() => log.some((l) => /^refused 127\.0\.0\.1:\d+: the token does not match$/.test(l))), log.join('\n'));
    assert.equal(tracers.length, 0);
  });
});

test('a coordinator that breaks the protocol is refused with one line, and its connection ends', async () => {
  await withAgent(async ({ port, tracers, log }) => {
    const before = await rawClient(port);
    before.socket.write(frame({ type: 'trace', id: 1, filter: 'icmp', seconds: 5, max_events: 5 }));
    await before.closed;
    assert.deepEqual(before.said, [{ type: 'error', message: 'sent "trace" before hello' }]);

    const hostile = await rawClient(port);
    hostile.socket.write(frame({ type: 'hello', version: 1, lease_ms: 5000 }));
    hostile.socket.write(frame({ type: 'trace', id: 1, filter: 'icmp', seconds: 5, max_events: 5, command: 'sh -c reboot' }));
    await hostile.closed;
    assert.equal(hostile.said.at(-1)?.message, 'the coordinator sent "trace" with an unknown field "command"');

    const huge = await rawClient(port);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(1 << 30);
    huge.socket.write(head);
    await huge.closed;
    assert.match(String(huge.said.at(-1)?.message), /a message of 1073741824 bytes, more than the 65536 allowed/);

    assert.equal(tracers.length, 0, 'nothing was traced for them');
    assert.equal(log.filter((l) => l.startsWith('refused ')).length, 3, log.join('\n'));
  });
});

test('a coordinator that goes silent: its lease runs out, the trace ends, the connection closes', async () => {
  await withAgent(async ({ port, tracers, log }) => {
    const c = await rawClient(port);
    c.socket.write(frame({ type: 'hello', version: 1, lease_ms: 1000 }));
    c.socket.write(frame({ type: 'trace', id: 7, filter: 'icmp', seconds: 60, max_events: 10 }));
    await c.closed; // nothing renews: the agent ends it
    assert.equal(tracers[0].closed, true);
    const done = c.said.find((m) => m.type === 'done');
    assert.equal(done?.reason, 'lease');
    assert.ok(log.some((l) => /lease expired \(nothing heard for 1000 ms\)/.test(l)), log.join('\n'));
  });
});

test('a coordinator that disconnects mid-trace: the tracer is closed', async () => {
  await withAgent(async ({ port, tracers }) => {
    const c = await rawClient(port);
    c.socket.write(frame({ type: 'hello', version: 1, lease_ms: 60_000 }));
    c.socket.write(frame({ type: 'trace', id: 1, filter: 'icmp', seconds: 60, max_events: 10 }));
    assert.ok(await eventually(() => tracers.length === 1 && c.said.some((m) => m.type === 'attached')));
    c.socket.destroy();
    assert.ok(await eventually(() => tracers[0].closed));
  });
});

test('a coordinator gone while the trace attaches: what attaches after is closed at once', async () => {
  await withAgent(async ({ port, tracers, open }) => {
    let verified!: () => void;
    open.gate = new Promise((resolve) => (verified = resolve));
    const c = await rawClient(port);
    c.socket.write(frame({ type: 'hello', version: 1, lease_ms: 60_000 }));
    c.socket.write(frame({ type: 'trace', id: 1, filter: 'icmp', seconds: 60, max_events: 10 }));
    assert.ok(await eventually(() => c.said.some((m) => m.type === 'hello')));
    c.socket.destroy();
    await c.closed;
    await new Promise((resolve) => setTimeout(resolve, 100)); // the agent has seen it go
    verified();
    assert.ok(await eventually(() => tracers.length === 1 && tracers[0].closed), 'closed as soon as it attached');
  });
});

test('the agent stopping: every connection ends, handshakes under way too, promptly', async () => {
  const log: string[] = [];
  const agent = new Agent({ host: '127.0.0.1', port: 0, credentials: { token: TOKEN }, node: 'far', openTrace: async () => new MadeUpTracer(), log: (l) => log.push(l) });
  const { port } = await agent.listen();
  const tracing = await rawClient(port);
  tracing.socket.write(frame({ type: 'hello', version: 1, lease_ms: 60_000 }));
  tracing.socket.write(frame({ type: 'trace', id: 1, filter: 'icmp', seconds: 60, max_events: 10 }));
  assert.ok(await eventually(() => tracing.said.some((m) => m.type === 'attached')));
  // A TCP connection that never starts its handshake (the agent would wait 10 s for it).
  const mute = net.connect(port, '127.0.0.1');
  mute.on('error', () => undefined);
  await new Promise((resolve) => mute.once('connect', resolve));
  const started = Date.now();
  await agent.close();
  assert.ok(Date.now() - started < 5000, `closed in ${Date.now() - started} ms`);
  await tracing.closed;
  const done = tracing.said.findIndex((m) => m.type === 'done');
  assert.equal(tracing.said[done]?.reason, 'stopped');
  assert.ok(done < tracing.said.findIndex((m) => m.type === 'error'), 'its done (with the counts) before the error that ends the connection');
  mute.destroy();
});

test('idle connections without the token cannot lock out a coordinator: the oldest handshake gives way', async () => {
  await withAgent(async ({ port }) => {
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        idle.push(s);
        await new Promise((resolve) => s.once('connect', resolve));
      }
      const remote = await RemoteNode.connect({ name: 'far', host: '127.0.0.1', port }, { token: TOKEN }, { timeoutMs: 5000, leaseMs: 5000 });
      remote.close();
      assert.ok(await eventually(() => idle.filter((s) => s.destroyed || s.readableEnded).length >= 40 - 32), 'the oldest were dropped');
    } finally {
      for (const s of idle) s.destroy();
    }
  });
});

test('a coordinator that asks for answers without end is refused before the agent\'s memory grows', async () => {
  await withAgent(async ({ port, log }) => {
    const c = await rawClient(port);
    c.socket.write(frame({ type: 'hello', version: 1, lease_ms: 60_000 }));
    c.socket.write(Buffer.concat(Array.from({ length: 40 }, (_, i) => frame({ type: 'clock', t: i }))));
    await c.closed;
    assert.equal(c.said.filter((m) => m.type === 'clock').length, 32);
    assert.deepEqual(c.said.at(-1), { type: 'error', message: 'asked the time more than 32 times' });
    assert.ok(log.some((l) => /asked the time more than 32 times/.test(l)), log.join('\n'));
  });
});

test('the event limit reached with the coordinator behind: what the tracer still drains is neither sent nor fatal', async () => {
  await withAgent(async ({ port, tracers, log }) => {
    const c = await rawClient(port);
    c.socket.write(frame({ type: 'hello', version: 1, lease_ms: 60_000 }));
    c.socket.write(frame({ type: 'trace', id: 1, filter: 'icmp', seconds: 60, max_events: 20_000 }));
    assert.ok(await eventually(() => c.said.some((m) => m.type === 'attached')));
    c.socket.pause();
    const batch = hops(1000);
    for (let i = 0; i < 50; i++) tracers[0].push(batch); // more than the limit, queued as a ring drained at close
    await new Promise((resolve) => setTimeout(resolve, 300));
    c.socket.resume();
    assert.ok(await eventually(() => c.said.some((m) => m.type === 'done')), log.join('\n'));
    const done = c.said.find((m) => m.type === 'done') as { reason: string; lost_in_transit: number };
    const received = c.said.filter((m) => m.type === 'events').reduce((n, m) => n + (m.events as unknown[]).length, 0);
    assert.equal(done.reason, 'events');
    assert.equal(received + done.lost_in_transit, 20_000);
    assert.ok(!log.some((l) => /internal error/.test(l)), log.join('\n'));
    c.socket.destroy();
  });
});

test('the event limit ends the trace; a trace that cannot start says why and the connection goes on', async () => {
  await withAgent(async ({ port, tracers, open }) => {
    const remote = await RemoteNode.connect({ name: 'far', host: '127.0.0.1', port }, { token: TOKEN }, { timeoutMs: 5000, leaseMs: 5000 });
    try {
      const first = recorder();
      remote.trace({ filter: 'icmp', seconds: 60, maxEvents: 4 }, first.handlers);
      assert.ok(await eventually(() => first.got.attached.length === 1));
      tracers[0].push(hops(10));
      assert.ok(await eventually(() => first.got.done.length === 1));
      assert.equal(first.got.events.length, 4);
      assert.equal((first.got.done[0] as { reason: string }).reason, 'events');
      open.fail = 'bad filter "nonsense": syntax error';
      const second = recorder();
      remote.trace({ filter: 'nonsense', seconds: 60, maxEvents: 4 }, second.handlers);
      assert.ok(await eventually(() => second.got.done.length === 1));
      assert.deepEqual(second.got.done[0], { type: 'done', id: 2, reason: 'failed', lost_events: 0, lost_in_user_space: 0, lost_in_transit: 0, error: 'bad filter "nonsense": syntax error' });
    } finally {
      remote.close();
    }
  });
});

test('a coordinator that does not read: the agent drops what it cannot send, counts it and says when', async () => {
  await withAgent(async ({ port, tracers }) => {
    const c = await rawClient(port);
    c.socket.write(frame({ type: 'hello', version: 1, lease_ms: 60_000 }));
    c.socket.write(frame({ type: 'trace', id: 1, filter: 'icmp', seconds: 60, max_events: 10_000_000 }));
    assert.ok(await eventually(() => c.said.some((m) => m.type === 'attached')));
    c.socket.pause(); // stops reading: the kernel's buffers fill, then the agent's
    const batch = hops(1000);
    const pushed = 200;
    for (let i = 0; i < pushed; i++) {
      tracers[0].push(batch);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    c.socket.resume();
    c.socket.write(frame({ type: 'stop', id: 1 }));
    assert.ok(await eventually(() => c.said.some((m) => m.type === 'done')));
    const done = c.said.find((m) => m.type === 'done') as { lost_in_transit: number };
    const received = c.said.filter((m) => m.type === 'events').reduce((n, m) => n + (m.events as unknown[]).length, 0);
    assert.ok(done.lost_in_transit > 0, 'some were dropped');
    assert.equal(received + done.lost_in_transit, pushed * batch.length, 'every event sent or counted');
    assert.ok(c.said.some((m) => m.type === 'loss'), 'and the coordinator was told when');
    c.socket.destroy();
  });
});

/** A made-up agent that answers the handshake and clock, then sends what `onTrace` writes. */
async function fakeAgent(onTrace: (socket: tls.TLSSocket, id: number) => void): Promise<{ port: number; close: () => void }> {
  const server = tls.createServer(agentTlsOptions({ token: TOKEN }), (socket) => {
    const reader = new FrameReader(1 << 16);
    socket.on('data', (chunk: Buffer) => {
      for (const m of reader.push(chunk)) {
        if (m.type === 'hello') socket.write(frame({ type: 'hello', version: 1, node: 'evil', kernel: '6.1' }));
        if (m.type === 'clock') socket.write(frame({ type: 'clock', t: m.t, node_ns: Number(process.hrtime.bigint()) }));
        if (m.type === 'trace') onTrace(socket, m.id as number);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

test('a hostile agent: messages out of turn, events malformed or timed outside the trace: the view ends with one line, the coordinator goes on', async () => {
  const [hop] = hops(1) as unknown as Record<string, unknown>[];
  const now = () => Number(process.hrtime.bigint());
  const cases: [string, (socket: tls.TLSSocket, id: number) => void][] = [
    ['it sent "events" out of turn', (s, id) => s.write(frame({ type: 'events', id, events: [] }))],
    ['it sent "attached" out of turn', (s, id) => s.write(Buffer.concat([frame({ type: 'attached', id, notes: [] }), frame({ type: 'attached', id, notes: [] })]))],
    ['it sent "loss" out of turn', (s, id) => s.write(frame({ type: 'loss', id, from_ns: 1, to_ns: 2 }))],
    ['it sent an event timed outside its trace (by its clock offset)', (s, id) => s.write(Buffer.concat([frame({ type: 'attached', id, notes: [] }), frame({ type: 'events', id, events: [{ ...hop, time_ns: now() + 3600e9 }] })]))],
    ['it sent an event timed outside its trace (by its clock offset)', (s, id) => s.write(Buffer.concat([frame({ type: 'attached', id, notes: [] }), frame({ type: 'events', id, events: [{ ...hop, time_ns: 1 }] })]))],
    ['it sent a hop event whose ifname is out of range or of the wrong type', (s, id) => s.write(Buffer.concat([frame({ type: 'attached', id, notes: [] }), frame({ type: 'events', id, events: [{ ...hop, ifname: { length: 1e9 } }] })]))],
  ];
  for (const [why, onTrace] of cases) {
    const agent = await fakeAgent(onTrace);
    try {
      const remote = await RemoteNode.connect({ name: 'evil', host: '127.0.0.1', port: agent.port }, { token: TOKEN }, { timeoutMs: 5000, leaseMs: 5000 });
      const { got, handlers } = recorder();
      remote.trace({ filter: 'icmp', seconds: 5, maxEvents: 5 }, handlers);
      assert.ok(await eventually(() => got.failed.length === 1));
      assert.deepEqual(got.failed, [why]);
      assert.equal(got.events.length, 0);
      remote.close();
    } finally {
      agent.close();
    }
  }
});

test('a node that is not there, or not an agent: connecting fails with the reason, in time', async () => {
  const closedPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
  await assert.rejects(RemoteNode.connect({ name: 'gone', host: '127.0.0.1', port: closedPort }, { token: TOKEN }, { timeoutMs: 5000, leaseMs: 5000 }), /connection refused \(no agent listening there\)/);
  // A plain TCP server that never answers: the handshake times out.
  const silent = net.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    await assert.rejects(RemoteNode.connect({ name: 'mute', host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port }, { token: TOKEN }, { timeoutMs: 500, leaseMs: 5000 }), /no answer within 0.5 s/);
  } finally {
    silent.close();
  }
});

test('mutual TLS: certificates the CA signs connect and trace; another CA\'s, a token, an agent\'s certificate as a coordinator\'s, or one for another address are refused, said which', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-pki-'));
  try {
    const files = testPki(dir);
    const creds = (name: string, ca = 'ca') => readCredentials(files(name, ca));
    const connect = (port: number, c: Credentials) => RemoteNode.connect({ name: 'far', host: '127.0.0.1', port }, c, { timeoutMs: 5000, leaseMs: 5000 });
    await withAgent(async ({ port, tracers, log }) => {
      const remote = await connect(port, creds('coordinator'));
      try {
        const { got, handlers } = recorder();
        remote.trace({ filter: 'icmp', seconds: 10, maxEvents: 100 }, handlers);
        assert.ok(await eventually(() => tracers.length === 1), 'a trace opened over mutual TLS');
        assert.deepEqual(got.failed, []);
      } finally {
        remote.close();
      }
      await assert.rejects(connect(port, creds('rogue', 'ca')), /it said: your certificate is not accepted: not signed by the CA this agent trusts/);
      assert.ok(await eventually(() => log.some((l) => /^refused 127\.0\.0\.1:\d+: its certificate: not signed by the CA this agent trusts$/.test(l))), log.join('\n'));
      await assert.rejects(connect(port, { token: TOKEN }), /one side uses a token and the other certificates/);
      // An agent's own certificate (stolen from a node) does not make a coordinator: it is for servers only.
      await assert.rejects(connect(port, creds('agent')), /your certificate is not accepted: not one for a client/);
      assert.equal(tracers.length, 1, 'nothing traced for them');
    }, creds('agent'));
    // The agent's certificate names 127.0.0.2: dialled at 127.0.0.1, the coordinator refuses it.
    await withAgent(async ({ port }) => {
      await assert.rejects(connect(port, creds('coordinator')), /its certificate does not name the address dialled/);
    }, creds('elsewhere'));
    // The key file is held to a private key's rules; the others must hold what they say.
    fs.chmodSync(path.join(dir, 'coordinator.key'), 0o644);
    assert.throws(() => creds('coordinator'), /key file .*coordinator\.key: others can read or write it \(mode 644\): chmod 600 it/);
    fs.chmodSync(path.join(dir, 'coordinator.key'), 0o600);
    assert.throws(() => readCredentials({ certFile: path.join(dir, 'coordinator.key'), keyFile: path.join(dir, 'coordinator.key'), caFile: path.join(dir, 'ca.crt') }), /certificate file .*: no PEM certificate in it/);
    assert.throws(() => readCredentials({ certFile: path.join(dir, 'coordinator.crt'), keyFile: path.join(dir, 'coordinator.crt'), caFile: path.join(dir, 'ca.crt') }), /key file .*: others can read|key file .*: no PEM private key in it/);
    // A key of another certificate: OpenSSL's word, before anything is attached.
    assert.throws(() => readCredentials({ ...files('coordinator'), keyFile: path.join(dir, 'agent.key') }), /OpenSSL refuses them: .*key values mismatch/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
