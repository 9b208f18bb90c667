/**
 * Tunnels the build machines' kernel does not have (Geneve, GRE, gretap,
 * IP in IP, sit, ip6tnl, WireGuard), VLANs and ipvlan: run in the kernel matrix only, where
 * Debian's 6.1 loads them as modules (test/kernel-matrix/run lists this
 * file; `npm test` does not). Two namespaces as nodes joined by an underlay
 * veth pair, a container behind each; the probe crosses the tunnel.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Lab } from '../../src/lab/lab';
import { hops, runCli, withLab } from '../integration/helpers';

interface Tunnel {
  name: string;
  /** ip link add t0 type ... (local and remote appended). */
  type: string[];
  /** Carries Ethernet: bridged like VXLAN; else routed. */
  l2: boolean;
  underlay6: boolean;
  /** The probe's family inside. */
  inner: 4 | 6;
  expect: { type: string; id: number | null; proto: number };
}

const TUNNELS: Tunnel[] = [
  { name: 'Geneve', type: ['geneve', 'id', '7'], l2: true, underlay6: false, inner: 4, expect: { type: 'geneve', id: 7, proto: 17 } },
  { name: 'gretap with a key', type: ['gretap', 'key', '9'], l2: true, underlay6: false, inner: 4, expect: { type: 'gretap', id: 9, proto: 47 } },
  { name: 'GRE', type: ['gre'], l2: false, underlay6: false, inner: 4, expect: { type: 'gre', id: null, proto: 47 } },
  { name: 'ip6gre with a key, IPv6 inside', type: ['ip6gre', 'key', '5'], l2: false, underlay6: true, inner: 6, expect: { type: 'gre', id: 5, proto: 47 } },
  { name: 'IPIP', type: ['ipip'], l2: false, underlay6: false, inner: 4, expect: { type: 'ipip', id: null, proto: 4 } },
  { name: 'sit: IPv6 in IPv4', type: ['sit'], l2: false, underlay6: false, inner: 6, expect: { type: 'ipip', id: null, proto: 41 } },
  { name: 'ip6tnl: IPv4 in IPv6', type: ['ip6tnl', 'mode', 'ipip6'], l2: false, underlay6: true, inner: 4, expect: { type: 'ipip', id: null, proto: 4 } },
];

/** Nodes n1 and n2, underlay u1-u2, tunnel t0 between them, containers c1 and c2; returns the target. */
function tunnelLab(lab: Lab, t: Tunnel) {
  const [n1, n2, c1, c2] = ['n1', 'n2', 'c1', 'c2'].map((r) => lab.netns(r));
  const under = (i: number) => (t.underlay6 ? `fd77::${i}` : `192.168.77.${i}`);
  lab.veth(n1, 'u1', n2, 'u2');
  lab.addr(n1, 'u1', `${under(1)}/${t.underlay6 ? 64 : 24}`);
  lab.addr(n2, 'u2', `${under(2)}/${t.underlay6 ? 64 : 24}`);
  const nodes = [n1, n2];
  const ctrs = [c1, c2];
  const inner = (net: number, host: number) => (t.inner === 6 ? `fd99:${net}::${host}` : `10.99.${net}.${host}`);
  for (const i of [1, 2]) {
    const node = nodes[i - 1];
    const ctr = ctrs[i - 1];
    const ends = t.type[0] === 'geneve' ? ['remote', under(3 - i)] : ['local', under(i), 'remote', under(3 - i)];
    lab.ip(node, 'link', 'add', 't0', 'type', ...t.type, ...ends);
    lab.ip(node, 'link', 'set', 't0', 'up');
    lab.veth(node, `vc${i}`, ctr, 'eth0');
    if (t.l2) {
      lab.bridge(node, 'br0', `vc${i}`, 't0');
      lab.addr(ctr, 'eth0', `${inner(0, i)}/${t.inner === 6 ? 64 : 24}`);
    } else {
      lab.forwarding(node);
      if (t.inner === 6) lab.sysctl(node, 'net.ipv6.conf.all.forwarding', 1);
      lab.addr(node, `vc${i}`, `${inner(i, 254)}/${t.inner === 6 ? 64 : 24}`);
      lab.addr(ctr, 'eth0', `${inner(i, 1)}/${t.inner === 6 ? 64 : 24}`);
      lab.route(ctr, 'default', 'via', inner(i, 254));
      lab.route(node, `${inner(3 - i, 0)}/${t.inner === 6 ? 64 : 24}`, 'dev', 't0');
    }
  }
  return { n1, n2, c1, c2, target: t.l2 ? inner(0, 2) : inner(2, 1), ends: [under(1), under(2)] };
}

for (const t of TUNNELS) {
  test(`${t.name}: the probe is read inside the outer packet on the underlay, both ways`, () =>
    withLab(async (lab) => {
      const topo = tunnelLab(lab, t);
      const run = await runCli(['--json', '--from', topo.c1, topo.target]);
      assert.equal(run.status, 0, `${run.stderr}\n${JSON.stringify(hops(run.events))}`);
      const under = (run.events as unknown as Record<string, any>[]).filter((e) => e.tunnel);
      assert.deepEqual(
        under.map((e) => [e.netns_name, e.ifname, e.dir, e.tunnel.type, e.tunnel.id, e.tunnel.proto, e.tunnel.src, e.tunnel.dst]),
        [
          [topo.n1, 'u1', 'request', t.expect.type, t.expect.id, t.expect.proto, ...topo.ends],
          [topo.n2, 'u2', 'request', t.expect.type, t.expect.id, t.expect.proto, ...topo.ends],
          [topo.n2, 'u2', 'reply', t.expect.type, t.expect.id, t.expect.proto, topo.ends[1], topo.ends[0]],
          [topo.n1, 'u1', 'reply', t.expect.type, t.expect.id, t.expect.proto, topo.ends[1], topo.ends[0]],
        ],
      );
      // Out of the tunnel the journey goes on to the container, and back.
      const seen = hops(run.events).map(([ns, ifname, dir]) => `${ns}/${ifname}/${dir}`);
      assert.ok(seen.includes(`${topo.c2}/eth0/request`) && seen.includes(`${topo.c1}/eth0/reply`), seen.join(' '));
      assert.equal(run.summary!.verdict, 'delivered and answered');
    }));
}

for (const inBand of [false, true]) {
  test(`VLAN 10 on an underlay ${inBand ? 'without tag offload (the tag in the frame)' : 'with tag offload'}: the VLAN devices and their parents, with the tag`, () =>
    withLab(async (lab) => {
      const n1 = lab.netns('n1');
      const n2 = lab.netns('n2');
      lab.veth(n1, 'u1', n2, 'u2');
      for (const [ns, dev, addr] of [[n1, 'u1', '10.10.0.1/24'], [n2, 'u2', '10.10.0.2/24']]) {
        if (inBand) lab.exec(ns, 'ethtool', '-K', dev, 'txvlan', 'off', 'rxvlan', 'off');
        lab.ip(ns, 'link', 'add', 'link', dev, 'name', `${dev}.10`, 'type', 'vlan', 'id', '10');
        lab.ip(ns, 'link', 'set', `${dev}.10`, 'up');
        lab.addr(ns, `${dev}.10`, addr);
      }
      const run = await runCli(['--json', '--from', n1, '10.10.0.2']);
      assert.equal(run.status, 0, run.stderr);
      const seen = (run.events as unknown as Record<string, any>[]).map((e) => [e.netns_name, e.ifname, e.dir, e.hook, e.vlan]);
      // The parent's hop carries the tag; the VLAN device's own does not (untagged there). On
      // receive the kernel hands the frame to u2.10 in the same pass as u2's (netif_receive_skb
      // fires once, for the parent): with the tag still in the frame, the IP header behind it.
      assert.deepEqual(seen.filter(([, , dir]) => dir === 'request'), [
        [n1, 'u1.10', 'request', 'net_dev_queue', null],
        [n1, 'u1', 'request', 'net_dev_queue', 10], // the kernel puts the tag in the frame after this hook, where it must
        [n2, 'u2', 'request', 'netif_receive_skb', 10],
      ]);
    }));
}

test('WireGuard: the encrypted probe is followed by its sk_buff across the underlay, both ways', () =>
  withLab(async (lab) => {
    const [n1, n2, c1, c2] = ['n1', 'n2', 'c1', 'c2'].map((r) => lab.netns(r));
    lab.veth(n1, 'u1', n2, 'u2');
    lab.addr(n1, 'u1', '192.168.77.1/24');
    lab.addr(n2, 'u2', '192.168.77.2/24');
    const keys = [1, 2].map(() => {
      const key = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
      return { key, pub: execFileSync('wg', ['pubkey'], { input: key, encoding: 'utf8' }).trim() };
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-wg-'));
    try {
      for (const i of [1, 2]) {
        const [node, ctr] = [[n1, c1], [n2, c2]][i - 1];
        const file = path.join(dir, `key${i}`);
        fs.writeFileSync(file, keys[i - 1].key, { mode: 0o600 });
        lab.ip(node, 'link', 'add', 'wg0', 'type', 'wireguard');
        lab.exec(node, 'wg', 'set', 'wg0', 'private-key', file, 'listen-port', '51820', 'peer', keys[2 - i].pub, 'endpoint', `192.168.77.${3 - i}:51820`, 'allowed-ips', `10.99.${3 - i}.0/24`);
        lab.ip(node, 'link', 'set', 'wg0', 'up');
        lab.forwarding(node);
        lab.veth(node, `vc${i}`, ctr, 'eth0');
        lab.addr(node, `vc${i}`, `10.99.${i}.254/24`);
        lab.addr(ctr, 'eth0', `10.99.${i}.1/24`);
        lab.route(ctr, 'default', 'via', `10.99.${i}.254`);
        lab.route(node, `10.99.${3 - i}.0/24`, 'dev', 'wg0');
      }
      const run = await runCli(['--json', '--from', c1, '10.99.2.1']);
      assert.equal(run.status, 0, `${run.stderr}\n${JSON.stringify(hops(run.events))}`);
      const leg = (dir: string, from: [string, string], to: [string, string], ends: unknown[]): unknown[][] => [
        [from[0], 'eth0', dir, 'net_dev_queue', null],
        [from[1], from[0] === c1 ? 'vc1' : 'vc2', dir, 'netif_receive_skb', null],
        [from[1], 'wg0', dir, 'net_dev_queue', null],
        [from[1], from[1] === n1 ? 'u1' : 'u2', dir, 'net_dev_queue', ends],
        [to[1], to[1] === n1 ? 'u1' : 'u2', dir, 'netif_receive_skb', ends],
        [to[1], 'wg0', dir, 'netif_receive_skb', null],
        [to[1], to[0] === c1 ? 'vc1' : 'vc2', dir, 'net_dev_queue', null],
        [to[0], 'eth0', dir, 'netif_receive_skb', null],
      ];
      const seen = (run.events as unknown as Record<string, any>[]).map((e) => [e.netns_name, e.ifname, e.dir, e.hook, e.tunnel && [e.tunnel.type, e.tunnel.src, e.tunnel.dst, e.tunnel.dport]]);
      assert.deepEqual(seen, [
        ...leg('request', [c1, n1], [c2, n2], ['wireguard', '192.168.77.1', '192.168.77.2', 51820]),
        ...leg('reply', [c2, n2], [c1, n1], ['wireguard', '192.168.77.2', '192.168.77.1', 51820]),
      ]);
      // Inside, the probe as it entered the device: its own addresses and echo on every hop.
      assert.ok((run.events as unknown as Record<string, any>[]).every((e) => [e.src, e.dst].sort().join() === '10.99.1.1,10.99.2.1' && e.proto === 1));
      assert.equal(run.summary!.verdict, 'delivered and answered');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }));

test('an ipvlan port in a container: its transmit and its parent\'s, both ways; its receive is its parent\'s', () =>
  withLab(async (lab) => {
    const [n1, n2, c1] = ['n1', 'n2', 'c1'].map((r) => lab.netns(r));
    lab.veth(n1, 'u1', n2, 'u2');
    lab.addr(n2, 'u2', '192.168.77.2/24');
    lab.ip(n1, 'link', 'add', 'link', 'u1', 'name', 'ipv0', 'type', 'ipvlan', 'mode', 'l2');
    lab.ip(n1, 'link', 'set', 'ipv0', 'netns', c1);
    lab.ip(c1, 'link', 'set', 'ipv0', 'up');
    lab.addr(c1, 'ipv0', '192.168.77.11/24');
    const run = await runCli(['--json', '--from', c1, '192.168.77.2']);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(hops(run.events), [
      [c1, 'ipv0', 'request', 'net_dev_queue'],
      [n1, 'u1', 'request', 'net_dev_queue'],
      [n2, 'u2', 'request', 'netif_receive_skb'],
      [n2, 'u2', 'reply', 'net_dev_queue'],
      // As for macvlan: the frame is handed to the port in the parent's receive pass (the rx
      // handler says "another round"), and netif_receive_skb fires for u1 only.
      [n1, 'u1', 'reply', 'netif_receive_skb'],
    ]);
    assert.equal(run.summary!.verdict, 'delivered and answered');
  }));
