import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { formatAddress } from '../../src/addr';

/** Bytes of an address, parsed independently of the code under test. */
function bytes(family: 4 | 6, text: string): Buffer {
  const sa = new net.SocketAddress({ address: text, family: family === 4 ? 'ipv4' : 'ipv6' });
  const buf = Buffer.alloc(16);
  if (family === 4) sa.address.split('.').forEach((b, i) => (buf[i] = Number(b)));
  else {
    // expand "::" by hand so the test does not share the formatter's logic
    const [head, tail = ''] = text.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = text.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16), i * 2));
  }
  return buf;
}

const cases: [4 | 6, string][] = [
  [4, '0.0.0.0'],
  [4, '172.17.0.2'],
  [4, '255.255.255.255'],
  [6, '::'],
  [6, '::1'],
  [6, 'fd00:17::2'],
  [6, 'fe80::1:2:3:4'],
  [6, '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed (RFC 5952 4.2.2)
  [6, '2001:db8::1:0:0:1'], // the first of two equal runs is compressed
  [6, '2001:0:0:1::1'], // the longest run wins
  [6, '1:2:3:4:5:6:7:8'],
];

for (const [family, text] of cases) {
  test(`formats ${text}`, () => {
    assert.equal(formatAddress(family, bytes(family, text), 0), text);
  });
}

test('formats IPv4-mapped IPv6 with a dotted tail', () => {
  const buf = Buffer.alloc(16);
  buf.writeUInt16BE(0xffff, 10);
  buf.set([192, 0, 2, 1], 12);
  assert.equal(formatAddress(6, buf, 0), '::ffff:192.0.2.1');
});

test('reads at an offset', () => {
  const buf = Buffer.concat([Buffer.alloc(3, 0xaa), Buffer.from([10, 0, 0, 1])]);
  assert.equal(formatAddress(4, buf, 3), '10.0.0.1');
});
