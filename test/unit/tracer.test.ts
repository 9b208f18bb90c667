/** The tracer's life cycle against a fake addon: what it loads, drains and frees. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Native, ObjectHandle, WatchHandle } from '../../src/native';
import { createTracer } from '../../src/tracer';
import { BpfError } from '../../src/errors';
import { NetnsResolver } from '../../src/names/netns';
import { DEMO_FIXTURE, fixture } from '../fixtures';
import { EVENT_SIZE } from '../../src/bpf/layout';

class FakeNative {
  calls: string[] = [];
  onBatch: ((b: Buffer) => void) | undefined;
  pending: Buffer | null = null;
  failLoad = false;
  lostPerCpu = [3n, 4n];
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
      programs: () => ['tp_net_dev_queue', 'tp_netif_receive_skb', 'tp_kfree_skb', 'tp_fib_table_lookup', 'tp_fib6_table_lookup'],
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
      mapUpdate: log('mapUpdate'),
      mapLookup: () => {
        const b = Buffer.alloc(8 * this.lostPerCpu.length);
        this.lostPerCpu.forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
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
      enterNetns: log('enterNetns'),
      leaveNetns: log('leaveNetns'),
      netlinkOpen: () => assert.fail('no netlink in this test'),
      netlinkSend: log('netlinkSend'),
      netlinkReceive: () => null,

    };
  }
}

const filter = { marker: Buffer.alloc(8, 1), markerOffset: 24, family: 4 as const };
const resolver = new NetnsResolver({ procDir: '/nonexistent', netnsDir: '/nonexistent' });

test('loads, attaches every hook, yields batches in kernel-time order, drains on close, frees everything', async () => {
  const fake = new FakeNative();
  const tracer = await createTracer({ filter, native: fake.asNative(), resolver });
  assert.deepEqual(fake.calls, [
    'open',
    'setGlobal CFG',
    'setMaxEntries tp_events',
    'setAutoload tp_net_dev_queue',
    'setAutoload tp_netif_receive_skb',
    'setAutoload tp_kfree_skb',
    'setAutoload tp_fib_table_lookup',
    'setAutoload tp_fib6_table_lookup',
    'loadAsync', // createTracer loads on a worker thread
    'attach tp_net_dev_queue',
    'attach tp_netif_receive_skb',
    'attach tp_kfree_skb',
    'attach tp_fib_table_lookup',
    'attach tp_fib6_table_lookup',
    'openRing tp_events',
  ]);
  const batch = fixture('demo-ipv4.batch');
  const record = 4 + EVENT_SIZE;
  // Deliver the first three records out of order, keep the rest for the final drain.
  const firstThree = [2, 0, 1].map((i) => batch.subarray(i * record, (i + 1) * record));
  fake.onBatch!(Buffer.concat(firstThree));
  fake.pending = batch.subarray(3 * record);

  const seen: string[] = [];
  const reading = (async () => {
    for await (const ev of tracer) if (ev.kind === 'hop') seen.push(`${ev.ifname}/${ev.dir}`);
  })();
  await new Promise((r) => setImmediate(r));
  assert.equal(tracer.lost(), 7, 'lost records summed over CPUs');
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
  await assert.rejects(createTracer({ filter, native: fake.asNative(), resolver }), (err: unknown) => {
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
