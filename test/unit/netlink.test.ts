import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { attr, attrString, errorCode, i32be, message, nested, parseAttrs, parseMessages, str, u32be } from '../../src/netfilter/netlink';

test('attributes: 4-byte header, payload, padding to 4', () => {
  assert.deepEqual(attr(7, Buffer.from([1, 2, 3])), Buffer.from([7, 0, 7, 0, 1, 2, 3, 0]));
  assert.deepEqual(str(1, 'ab'), Buffer.from([7, 0, 1, 0, 0x61, 0x62, 0, 0]));
  assert.deepEqual(u32be(2, 0x01020304), Buffer.from([8, 0, 2, 0, 1, 2, 3, 4]));
  assert.deepEqual(i32be(2, -1), Buffer.from([8, 0, 2, 0, 0xff, 0xff, 0xff, 0xff]));
});

test('nested attributes carry NLA_F_NESTED and parse back', () => {
  const n = nested(4, [u32be(1, 3), i32be(2, -300)]);
  assert.equal(n.readUInt16LE(2), 4 | 0x8000);
  const outer = parseAttrs(n);
  const inner = parseAttrs(outer.get(4)!);
  assert.equal(inner.get(1)!.readUInt32BE(0), 3);
  assert.equal(inner.get(2)!.readInt32BE(0), -300);
});

test('messages: header fields, several per datagram, error codes', () => {
  const a = message({ type: 0x0a03, flags: 0x405, seq: 9, payload: Buffer.from([2, 0, 0, 0]) });
  const err = message({ type: 2, flags: 0, seq: 10, payload: Buffer.from([0xef, 0xff, 0xff, 0xff]) }); // -17
  const msgs = parseMessages(Buffer.concat([a, err]));
  assert.deepEqual(msgs.map((m) => [m.type, m.flags, m.seq]), [[0x0a03, 0x405, 9], [2, 0, 10]]);
  assert.equal(errorCode(msgs[1]), -17);
  assert.equal(a.readUInt32LE(0), 20);
});

test('truncated input stops parsing instead of reading past the end', () => {
  const a = message({ type: 1, flags: 0, seq: 1, payload: Buffer.alloc(8) });
  assert.equal(parseMessages(a.subarray(0, a.length - 1)).length, 0);
  assert.equal(parseAttrs(str(1, 'abc').subarray(0, 5)).size, 0);
  assert.equal(attrString(Buffer.from('abc\0def')), 'abc');
  assert.equal(attrString(undefined), undefined);
});
