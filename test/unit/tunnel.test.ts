/** Tunnels: the outer packet's section decoded, and said in words. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeBatch } from '../../src/decode';
import { HOP, OUTER, Tunnel } from '../../src/bpf/layout';
import type { KernelEvent, TunnelInfo } from '../../src/events';
import { sameTunnel, tunnelDetail, tunnelLabel, tunnelName } from '../../src/tunnel';
import { fixture } from '../fixtures';

/** The demo's first hop record, with an outer section written in as bpf/tunnel.h fills it. */
function withOuter(fill: (rec: Buffer, o: typeof HOP.o) => void): KernelEvent {
  const batch = Buffer.from(fixture('demo-ipv4.batch').subarray(0, 4 + HOP.$size));
  fill(batch.subarray(4), HOP.o);
  const events: KernelEvent[] = [];
  decodeBatch(batch, (e) => events.push(e));
  return events[0];
}

test('the outer section is at the same place in every packet record, and 48 bytes', () => {
  assert.equal(OUTER.$size, 48);
  assert.equal(HOP.o.$offset, HOP.q.$offset + HOP.q.$size);
});

test('a hop in a VXLAN tunnel over IPv4: type, VNI, outer addresses, ports, TTL and length; the probe stays the packet', () => {
  const e = withOuter((r, o) => {
    r[o.tunnel[0]] = Tunnel.VXLAN;
    r[o.family[0]] = 4;
    r[o.proto[0]] = 17;
    r[o.ttl[0]] = 63;
    Buffer.from([192, 168, 77, 1]).copy(r, o.saddr[0]);
    Buffer.from([192, 168, 77, 2]).copy(r, o.daddr[0]);
    r.writeUInt32LE(42, o.tunnel_id[0]);
    r.writeUInt16LE(40426, o.sport[0]);
    r.writeUInt16LE(4789, o.dport[0]);
    r.writeUInt16LE(134, o.ip_len[0]);
  });
  assert.equal(e.kind, 'hop');
  if (e.kind !== 'hop') return;
  assert.deepEqual(e.tunnel, { type: 'vxlan', id: 42, family: 4, src: '192.168.77.1', dst: '192.168.77.2', proto: 17, sport: 40426, dport: 4789, ttl: 63, len: 134 });
  assert.equal(e.src, '172.17.0.1', 'the event is the probe inside');
});

test('IPv6 underlays, GRE without a key, IP in IP; no tunnel: null', () => {
  const v6 = withOuter((r, o) => {
    r[o.tunnel[0]] = Tunnel.GRE;
    r[o.family[0]] = 6;
    r[o.proto[0]] = 47;
    Buffer.from('fd770000000000000000000000000001', 'hex').copy(r, o.saddr[0]);
    Buffer.from('fd770000000000000000000000000002', 'hex').copy(r, o.daddr[0]);
  });
  assert.ok(v6.kind === 'hop' && v6.tunnel);
  assert.deepEqual([v6.tunnel.type, v6.tunnel.id, v6.tunnel.src, v6.tunnel.dst], ['gre', null, 'fd77::1', 'fd77::2']);
  const ipip = withOuter((r, o) => {
    r[o.tunnel[0]] = Tunnel.IPIP;
    r[o.family[0]] = 4;
    r[o.proto[0]] = 4;
    r.writeUInt32LE(7, o.tunnel_id[0]); // not a key: IP in IP has none
  });
  assert.ok(ipip.kind === 'hop' && ipip.tunnel?.id === null);
  const plain = withOuter(() => {});
  assert.ok(plain.kind === 'hop' && plain.tunnel === null);
});

test('tunnels in words', () => {
  const vx: TunnelInfo = { type: 'vxlan', id: 42, family: 4, src: '192.168.77.1', dst: '192.168.77.2', proto: 17, sport: 40426, dport: 4789, ttl: 64, len: 134 };
  assert.equal(tunnelLabel(vx), 'vxlan 42: 192.168.77.1 -> 192.168.77.2');
  assert.equal(tunnelDetail(vx), 'vxlan 42: 192.168.77.1:40426 -> 192.168.77.2:4789');
  const gre: TunnelInfo = { ...vx, type: 'gre', id: 5, family: 6, src: 'fd77::1', dst: 'fd77::2', proto: 47, sport: 0, dport: 0 };
  assert.equal(tunnelName(gre), 'gre key 5');
  assert.equal(tunnelDetail(gre), 'gre key 5: fd77::1 -> fd77::2');
  assert.equal(tunnelName({ ...gre, type: 'ipip', id: null }), 'ipip');
  assert.ok(sameTunnel(vx, { ...vx, sport: 1 }), 'the outer source port varies by flow, the tunnel is the same');
  assert.ok(!sameTunnel(vx, { ...vx, src: vx.dst, dst: vx.src }), 'the other way');
  assert.ok(sameTunnel(null, undefined) && !sameTunnel(vx, null));
});
