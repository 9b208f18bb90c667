import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { HopEvent } from '../../src/events';
import { pcapng } from '../../src/render/pcapng';
import { decodeFixture } from '../fixtures';

/** Walks the blocks: [type, total length], checking each length at both ends. */
function blocks(file: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let off = 0; off < file.length; ) {
    const type = file.readUInt32LE(off);
    const len = file.readUInt32LE(off + 4);
    assert.equal(len % 4, 0, 'blocks are 32-bit aligned');
    assert.equal(file.readUInt32LE(off + len - 4), len, 'trailing length matches');
    out.push([type, len]);
    off += len;
  }
  return out;
}

test('section header, one interface per namespace and interface, one packet per sighting', () => {
  const events = decodeFixture('demo-ipv4.batch');
  const bytes = new Map<HopEvent, Buffer>(events.map((e) => [e, Buffer.alloc(84, 0x45)]));
  const file = pcapng(events, (e) => bytes.get(e as HopEvent), 0n, 256);
  const types = blocks(file).map(([t]) => t);
  assert.equal(types[0], 0x0a0d0d0a);
  assert.equal(file.readUInt32LE(8), 0x1a2b3c4d, 'byte-order magic');
  // docker0 and the veth in the host, eth0 in the container: three interfaces, six packets.
  assert.equal(types.filter((t) => t === 1).length, 3);
  assert.equal(types.filter((t) => t === 6).length, 6);
  // A sighting without bytes is left out.
  assert.equal(blocks(pcapng(events, () => undefined, 0n, 256)).length, 1);
});
