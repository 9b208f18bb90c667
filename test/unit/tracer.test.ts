/** The tracer's life cycle against a fake addon: what it loads, drains and frees. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Native, ObjectHandle, WatchHandle } from '../../src/native';
import { createTracer } from '../../src/tracer';
import { CURRENT_KERNEL } from '../../src/kernel/bpf-support';
import { BpfError } from '../../src/errors';
import { NetnsResolver, type KnownNetns } from '../../src/names/netns';
import { parseMessages } from '../../src/netfilter/netlink';
import { DEMO_FIXTURE, fixture } from '../fixtures';
import { HEADER, HOP } from '../../src/bpf/layout';

class FakeNative {
  calls: string[] = [];
  onBatch: ((b: Buffer) => void) | undefined;
  pending: Buffer | null = null;
  failLoad = false;
  lost = 7n;
  private readonly h = {} as ObjectHandle;
  private readonly r = {} as WatchHandle;

  asNative(): Native {
    const self = this;
    const log = (name: string) => (...args: unknown[]) => {
      self.calls.push([name, ...args.slice(1).filter((a) => typeof a === 'string')].join(' '));
    };
    return {
      open: (...a) => (log('open')(...a), this.h),
      close: log('close'),
      setGlobal: log('setGlobal'),
      setMaxEntries: log('setMaxEntries'),
      setAutoload: log('setAutoload'),
      setProgramType: log('setProgramType'),
      compileFilter: () => Buffer.alloc(0),
      programs: () => ['tp_net_dev_queue', 'tp_netif_receive_skb', 'tp_kfree_skb', 'tp_consume_skb', 'tp_fib_table_lookup', 'tp_fib6_table_lookup'],
      load: (...a) => {
        log('load')(...a);
        if (this.failLoad) throw Object.assign(new Error('bpf_object__load: Permission denied'), { op: 'bpf_object__load', errno: 1, log: 'verifier says no' });
      },
      loadAsync: async (...a) => {
        log('loadAsync')(...a);
        if (this.failLoad) throw Object.assign(new Error('bpf_object__load: Permission denied'), { op: 'bpf_object__load', errno: 1, log: 'verifier says no' });
      },
      attach: log('attach'),
      attachNetfilter: log('attachNetfilter'),
      attachLink: log('attachLink'),
      pinProgram: log('pinProgram'),
      ifIndex: () => 1,
      interfacePrograms: () => [],
      programInfo: () => null,
      reuseMaps: log('reuseMaps'),
      setAttachTarget: log('setAttachTarget'),
      programId: () => 1,
      mapUpdate: log('mapUpdate'),
      mapLookup: () => {
        const b = Buffer.alloc(8); // one struct tp_stats for all CPUs
        b.writeBigUInt64LE(this.lost);
        return b;
      },
      openRing: (_o, map, cb) => {
        self.calls.push(`openRing ${map}`);
        this.onBatch = cb;
        return this.r;
      },
      drain: () => {
        self.calls.push('drain');
        const p = this.pending;
        this.pending = null;
        return p;
      },
      closeWatch: log('closeWatch'),
      watchLost: () => 0,
      enterNetns: log('enterNetns'),
      leaveNetns: log('leaveNetns'),
      netlinkOpen: () => assert.fail('no netlink in this test'),
      netlinkSend: log('netlinkSend'),
    };
  }
}

// The packet reader set: nothing is probed through the fake (src/kernel/skb-reader.ts).
const filter = { marker: Buffer.alloc(8, 1), markerOffset: 24, family: 4 as const, reader: { kind: 'linear' as const } };
const resolver = new NetnsResolver({ procDir: '/nonexistent', netnsDir: '/nonexistent' });

test('loads, attaches every hook, yields batches in kernel-time order, drains on close, frees everything', async () => {
  const fake = new FakeNative();
  const tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native: fake.asNative(), resolver });
  assert.deepEqual(fake.calls, [
    'open',
    'setGlobal CFG',
    'setMaxEntries tp_events',
    'setAutoload tp_net_dev_queue',
    'setAutoload tp_netif_receive_skb',
    'setAutoload tp_kfree_skb',
    'setAutoload tp_consume_skb',
    'setAutoload tp_fib_table_lookup',
    'setAutoload tp_fib6_table_lookup',
    'loadAsync', // createTracer loads on a worker thread
    'attach tp_net_dev_queue',
    'attach tp_netif_receive_skb',
    'attach tp_neigh_event_send_done',
    'attach tp_kfree_skb',
    'attach tp_fib_table_lookup',
    'attach tp_fib6_table_lookup',
    'attach tp_consume_skb', // freed packets end route ties
    'openRing tp_events',
  ]);
  const batch = fixture('demo-ipv4.batch');
  const record = 4 + HOP.$size;
  // Deliver the first three records out of order, keep the rest for the final drain.
  const firstThree = [2, 0, 1].map((i) => batch.subarray(i * record, (i + 1) * record));
  fake.onBatch!(Buffer.concat(firstThree));
  fake.pending = batch.subarray(3 * record);

  const seen: string[] = [];
  const reading = (async () => {
    for await (const ev of tracer) if (ev.kind === 'hop') seen.push(`${ev.ifname}/${ev.dir}`);
  })();
  await new Promise((r) => setImmediate(r));
  assert.equal(tracer.lost(), 7, 'lost records, as the kernel counted them');
  tracer.close();
  await reading;
  const v = DEMO_FIXTURE.veth;
  assert.deepEqual(seen, ['docker0/request', `${v}/request`, 'eth0/request', 'eth0/reply', `${v}/reply`, 'docker0/reply']);
  assert.deepEqual(fake.calls.slice(-3), ['drain', 'closeWatch', 'close']);
  tracer.close();
  assert.equal(fake.calls.filter((c) => c === 'close').length, 1, 'close is idempotent');
  assert.equal(tracer.lost(), 7, 'the count survives close');
});

test('a load failure closes the object and says which operation failed and why', async () => {
  const fake = new FakeNative();
  fake.failLoad = true;
  await assert.rejects(createTracer({ filter, kernel: CURRENT_KERNEL, native: fake.asNative(), resolver }), (err: unknown) => {
    assert.ok(err instanceof BpfError);
    assert.equal(err.op, 'bpf_object__load');
    assert.equal(err.errno, 1);
    assert.equal(err.log, 'verifier says no');
    assert.match(err.message, /^cannot load .*tracepkt\.bpf\.o: bpf_object__load failed: EPERM/);
    return true;
  });
  assert.equal(fake.calls[fake.calls.length - 1], 'close');
  assert.ok(!fake.calls.includes('attach tp_net_dev_queue'));
});

test('the ring-buffer path touches no file: names it lacks are looked up beside it, the events wait for them in order', async () => {
  const fake = new FakeNative();
  // A resolver whose synchronous scan would block the event loop: it must never run here.
  class Watched extends NetnsResolver {
    asyncScans = 0;
    override scan(): void {
      throw new Error('a synchronous /proc scan on the ring-buffer path');
    }
    override async scanAsync(): Promise<void> {
      this.asyncScans++;
      await new Promise((r) => setTimeout(r, 20)); // as slow as a real /proc
    }
  }
  const watched = new Watched({ procDir: '/nonexistent', netnsDir: '/nonexistent' });
  const tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native: fake.asNative(), resolver: watched });
  const order: string[] = [];
  const reading = (async () => {
    for await (const ev of tracer) if (ev.kind === 'hop') order.push(`${ev.ifname}:${String(ev.netns_name)}`);
  })();
  const batch = fixture('demo-ipv4.batch');
  fake.onBatch!(batch); // must return at once, names unknown
  assert.deepEqual(order, [], 'nothing handed out before it is named');
  tracer.close();
  await reading;
  assert.ok(watched.asyncScans >= 1, 'the names were looked up asynchronously');
  assert.equal(order.length, 6, 'every event, in kernel-time order, once named (null: nothing names it)');
  assert.ok(order.every((o: string) => o.endsWith(':null')));
});

test('a drop named from the caches while its namespace is still unknown is named once, never looked up again', async () => {
  const fake = new FakeNative();
  class Unnamed extends NetnsResolver {
    override async scanAsync(): Promise<void> {}
  }
  const tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native: fake.asNative(), resolver: new Unnamed({ procDir: '/nonexistent', netnsDir: '/nonexistent' }) });
  const drops: string[] = [];
  const reading = (async () => {
    for await (const ev of tracer) if (ev.kind === 'drop') drops.push(ev.location);
  })();
  const ttl: { ring: string[] } = require('../../../test/fixtures/router-ttl.json');
  const batch = Buffer.concat(ttl.ring.map((b) => Buffer.from(b, 'base64')));
  fake.onBatch!(batch); // names its drop's place (kallsyms, asynchronously) while namespaces stay unknown
  await new Promise((r) => setTimeout(r, 300));
  fake.onBatch!(batch); // the same drop again: its place now comes from the cache, its namespace still not
  await new Promise((r) => setTimeout(r, 300));
  tracer.close();
  await reading;
  assert.equal(drops.length, 2);
  assert.ok(drops.every((d) => d === drops[0] && !/^0x/.test(d)), `named, once each: ${drops}`);
});

/** Netlink messages as the kernel answers: NLMSG_DONE for a dump, an acknowledgement (NLMSG_ERROR 0) per request. */
function nlReply(type: number, seq: number): Buffer {
  const m = Buffer.alloc(type === 2 ? 36 : 20);
  m.writeUInt32LE(m.length, 0);
  m.writeUInt16LE(type, 4);
  m.writeUInt32LE(seq, 8);
  return m;
}
/** One datagram in the addon's batch framing: [u32 length][datagram]. */
function framed(datagram: Buffer): Buffer {
  const b = Buffer.concat([Buffer.alloc(4), datagram, Buffer.alloc((4 - (datagram.length % 4)) % 4)]);
  b.writeUInt32LE(datagram.length, 0);
  return b;
}

/**
 * A fake addon whose netlink sockets answer later, from a timer, as the
 * kernel's do (the replies arrive with the socket's batches on the event
 * loop). `silent` namespaces never answer.
 */
function answeringLater(fake: FakeNative, silent: Set<string>): Native {
  const base = fake.asNative();
  let current = 'host';
  return {
    ...base,
    enterNetns: (p) => {
      fake.calls.push(`enterNetns ${p}`);
      current = p;
    },
    leaveNetns: () => {
      current = 'host';
    },
    netlinkOpen: (_protocol, _groups, onBatch) => {
      const ns = current;
      fake.calls.push(`netlinkOpen ${ns}`);
      return { ns, onBatch } as unknown as WatchHandle;
    },
    netlinkSend: (socket, message) => {
      const { ns, onBatch } = socket as unknown as { ns: string; onBatch: (b: Buffer) => void };
      const messages = parseMessages(message);
      const dump = messages.length === 1 && (messages[0].flags & 0x300) !== 0; // NLM_F_DUMP
      fake.calls.push(`send ${ns} ${dump ? 'dump' : 'batch'}`);
      if (silent.has(ns)) return;
      setTimeout(() => {
        fake.calls.push(`answer ${ns} ${dump ? 'dump' : 'batch'}`);
        const replies = dump ? [nlReply(3, messages[0].seq)] : messages.map((m) => nlReply(2, m.seq));
        onBatch(Buffer.concat(replies.map(framed)));
      }, 10);
    },
    closeWatch: (w) => fake.calls.push(`closeWatch ${(w as unknown as { ns?: string }).ns ?? 'ring'}`),
  };
}

const twoNamespaces: KnownNetns[] = [
  { inode: 1001, name: 'ns-a', path: '/run/netns/ns-a' },
  { inode: 1002, name: 'ns-b', path: '/run/netns/ns-b' },
];

test('with netfilter, set-up never blocks the event loop: the load runs on a worker, every namespace asks nftables at once and the answers are awaited', async () => {
  const fake = new FakeNative();
  const native = answeringLater(fake, new Set());
  const ticks = setInterval(() => fake.calls.push('tick'), 1);
  let tracer: Awaited<ReturnType<typeof createTracer>> | undefined;
  try {
    tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native, resolver, netfilter: true, namespaces: twoNamespaces });
  } finally {
    clearInterval(ticks);
  }
  const c = fake.calls;
  assert.ok(c.includes('loadAsync') && !c.includes('load'), 'loaded on a worker thread');
  const sends = c.filter((x) => x.startsWith('send'));
  assert.deepEqual([...sends].sort(), ['send /run/netns/ns-a batch', 'send /run/netns/ns-a dump', 'send /run/netns/ns-b batch', 'send /run/netns/ns-b dump'], 'a chain dump, then our table, in each');
  const firstAnswer = c.findIndex((x) => x.startsWith('answer'));
  assert.ok(c.indexOf('send /run/netns/ns-a dump') < firstAnswer && c.indexOf('send /run/netns/ns-b dump') < firstAnswer, `both namespaces asked before either answered: ${c.join(', ')}`);
  assert.ok(c.slice(c.indexOf('send /run/netns/ns-a dump'), firstAnswer).includes('tick'), 'the event loop ran while nftables was answering');
  assert.ok(c.indexOf('loadAsync') > Math.max(c.indexOf('answer /run/netns/ns-a batch'), c.indexOf('answer /run/netns/ns-b batch')), 'loaded once every namespace has its plan');
  assert.deepEqual(tracer.notes.filter((n) => /nftables/.test(n)), [], 'both namespaces traced');
  tracer.close();
  assert.ok(c.includes('closeWatch /run/netns/ns-a') && c.includes('closeWatch /run/netns/ns-b'), 'both sockets closed');
});

test('a namespace where nftables never answers costs one timeout, says so, and does not hold the others back', async () => {
  const fake = new FakeNative();
  const native = answeringLater(fake, new Set(['/run/netns/ns-b']));
  const began = performance.now();
  const tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native, resolver, netfilter: true, namespaces: twoNamespaces });
  const took = performance.now() - began;
  assert.deepEqual(
    tracer.notes.filter((n) => /nftables/.test(n)),
    ['ns-b: cannot list nftables chains: nftables did not answer', 'ns-b: no nftables tracing: nftables did not answer'],
  );
  const c = fake.calls;
  // ns-a was set up whole while ns-b's dump was still waiting for its answer; ns-b asked nothing more.
  assert.ok(c.includes('answer /run/netns/ns-a batch'), c.join(', '));
  assert.ok(!c.includes('send /run/netns/ns-b batch'), 'no table requested where nftables is silent');
  assert.ok(c.includes('closeWatch /run/netns/ns-b'), 'its socket closed at once');
  assert.ok(took >= 1900, `one timeout of 2 s: took ${took.toFixed(0)} ms`);
  tracer.close();
});

test('a consumer that does not read: batches are kept as read up to the bound, then counted lost; what was read before the loss carries none of it, what comes after carries it all', async () => {
  const fake = new FakeNative();
  fake.lost = 0n;
  const tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native: fake.asNative(), resolver });
  const fixtureBatch = fixture('demo-ipv4.batch');
  const stride = 4 + HOP.$size;
  const perFixture = Math.floor(fixtureBatch.length / stride);
  const batchOf = (copies: number) => Buffer.concat(Array.from({ length: copies }, () => fixtureBatch.subarray(0, perFixture * stride)));
  const big = batchOf(Math.ceil(600 / perFixture));
  const perBatch = (big.length / stride) | 0;
  const oldest = Math.min(...Array.from({ length: perFixture }, (_, i) => Number(fixtureBatch.readBigUInt64LE(i * stride + 4 + HEADER.time_ns[0]))));
  let kept = 0;
  while (kept < 32 * 1024) {
    fake.onBatch!(Buffer.from(big));
    kept += perBatch;
  }
  assert.equal(tracer.lostInUserSpace(), 0);
  assert.equal(tracer.pendingSince(), oldest, 'the oldest record kept, though not decoded yet');
  fake.onBatch!(Buffer.from(big));
  fake.onBatch!(Buffer.from(big));
  assert.equal(tracer.lostInUserSpace(), 2 * perBatch, 'beyond the bound: counted, not kept');
  assert.equal(tracer.takeUserSpaceGaps().length, 2);

  const lostSoFar = new Map<number, number>();
  let read = 0;
  const it = tracer.batches();
  while (read < kept) {
    const { value } = await it.next();
    for (const ev of value as { lost_so_far: number }[]) lostSoFar.set(ev.lost_so_far, (lostSoFar.get(ev.lost_so_far) ?? 0) + 1);
    read += (value as unknown[]).length;
  }
  assert.deepEqual([...lostSoFar], [[0, kept]], 'every event read before the loss: none lost before it');
  fake.onBatch!(Buffer.from(big));
  const { value: after } = await it.next();
  assert.deepEqual([...new Set((after as { lost_so_far: number }[]).map((e) => e.lost_so_far))], [2 * perBatch]);
  assert.equal(tracer.pendingSince(), null);
  tracer.close();
  await it.return(undefined);
});

test('a backlog of many small batches goes out in slices, not one batch per turn of the event loop', async () => {
  const fake = new FakeNative();
  const tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native: fake.asNative(), resolver });
  const stride = 4 + HOP.$size;
  const small = fixture('demo-ipv4.batch').subarray(0, 5 * stride);
  for (let i = 0; i < 2000; i++) fake.onBatch!(Buffer.from(small));
  const it = tracer.batches();
  const { value } = await it.next();
  assert.ok((value as unknown[]).length >= 4096, `the first slice: ${(value as unknown[]).length} events`);
  tracer.close();
  await it.return(undefined);
});

test('a batch kept while its namespace still has a name keeps that name when decoded after the namespace is gone', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-tracer-'));
  try {
    fs.writeFileSync(path.join(dir, 'short-lived'), '');
    const inode = fs.statSync(path.join(dir, 'short-lived')).ino;
    const named = new NetnsResolver({ procDir: '/nonexistent', netnsDir: dir });
    await named.scanAsync();
    const fake = new FakeNative();
    const tracer = await createTracer({ filter, kernel: CURRENT_KERNEL, native: fake.asNative(), resolver: named });
    const stride = 4 + HOP.$size;
    const batch = Buffer.from(fixture('demo-ipv4.batch').subarray(0, 3 * stride));
    for (let off = 0; off < batch.length; off += stride) batch.writeUInt32LE(inode, off + 4 + HEADER.netns[0]);
    fake.onBatch!(batch);
    fs.rmSync(path.join(dir, 'short-lived')); // the namespace goes, and a scan forgets it
    named.want(inode);
    await named.scanAsync();
    assert.equal(named.cached(inode), null);
    const it = tracer.batches();
    const { value } = await it.next();
    assert.deepEqual([...new Set((value as { netns_name: string | null }[]).map((e) => e.netns_name))], ['short-lived']);
    tracer.close();
    await it.return(undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
