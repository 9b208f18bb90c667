/**
 * The addon defends itself: every handle carries a type tag checked on
 * every call (a netlink socket is never taken for a ring, nor a ring for a
 * BPF object), and each load keeps its own libbpf messages, even when it
 * runs on a worker thread while the main thread makes calls of its own.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { bpfObjectPath, loadNative, type ObjectHandle, type WatchHandle } from '../../src/native';

const NETLINK_NETFILTER = 12;

test('handles are typed: each call refuses another kind of handle, or anything else, with a TypeError', () => {
  const native = loadNative();
  const obj = native.open(bpfObjectPath('tracepkt'));
  const socket = native.netlinkOpen(NETLINK_NETFILTER, [], () => {});
  try {
    assert.throws(() => native.netlinkSend(obj as unknown as WatchHandle, Buffer.alloc(16)), { name: 'TypeError', message: 'not a netlink socket handle' });
    assert.throws(() => native.drain(obj as unknown as WatchHandle), { name: 'TypeError', message: 'not a watch handle' });
    assert.throws(() => native.closeWatch(obj as unknown as WatchHandle), { name: 'TypeError' });
    assert.throws(() => native.mapLookup(socket as unknown as ObjectHandle, 'tp_stats', Buffer.alloc(4)), { name: 'TypeError', message: 'not a BPF object handle' });
    assert.throws(() => native.programs(socket as unknown as ObjectHandle), { name: 'TypeError', message: 'not a BPF object handle' });
    for (const junk of [{}, 42, 'tp_events', null, Buffer.alloc(8)]) {
      assert.throws(() => native.drain(junk as unknown as WatchHandle), { name: 'TypeError' });
      assert.throws(() => native.close(junk as unknown as ObjectHandle), { name: 'TypeError' });
    }
    // The right handles still work.
    assert.equal(native.drain(socket), null);
    assert.equal(native.watchLost(socket), 0);
    assert.ok(native.programs(obj).includes('tp_net_dev_queue'));
  } finally {
    native.closeWatch(socket);
    native.close(obj);
  }
});

test('each load keeps its own messages: a failed load on a worker thread, the main thread busy meanwhile', async () => {
  const native = loadNative();
  const obj = native.open(bpfObjectPath('tracepkt'));
  try {
    // Every program, netfilter checkpoints included, untyped (libbpf 1.1 cannot type them): the load fails.
    const loading = native.loadAsync(obj);
    // Meanwhile the main thread fails a call of its own.
    const mine = (() => {
      try {
        native.open('/nonexistent/tracepkt.bpf.o');
      } catch (err) {
        return err as { errno: number; log: string };
      }
      return undefined;
    })();
    assert.equal(mine?.errno, 2);
    assert.match(mine!.log, /nonexistent/);
    await assert.rejects(loading, (err: { op: string; log: string }) => {
      assert.equal(err.op, 'bpf_object__load');
      assert.match(err.log, /libbpf: prog 'tp_nf_checkpoint_\d+': failed to load/, 'the load\'s own messages');
      assert.doesNotMatch(err.log, /nonexistent/, 'not the main thread\'s');
      return true;
    });
  } finally {
    native.close(obj);
  }
});
