import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { renderPath } from '../../src/render/path';
import { formatDelta, netnsLabel, TableRenderer } from '../../src/render/table';
import { decodeFixture } from '../fixtures';
import { markHops } from '../../src/tidy';

test('table: a header, then one line per hop timed from the first event', () => {
  const events = decodeFixture('demo-ipv4.batch');
  events.forEach((e) => (e.netns_name = e.netns === events[0].netns ? 'lab-host' : 'lab-ctr'));
  const t = new TableRenderer();
  assert.match(t.header(), /^TIME\s+HOP\s+NETNS\s+INTERFACE\s+DIR\s+ADDRESSES\s+PACKET\s+HOOK$/);
  const lines = events.map((e) => t.line(e));
  assert.match(lines[0], /^\+0\.000ms\s+-\s+lab-host \(\d+\)\s+docker0\s+request\s+172\.17\.0\.1 -> 172\.17\.0\.2\s+id \d+ seq 1\s+net_dev_queue \(ct new\)$/);
  assert.match(lines[5], /^\+0\.\d{3}ms\s+-\s+lab-host \(\d+\)\s+docker0\s+reply\s+172\.17\.0\.2 -> 172\.17\.0\.1/);
  assert.ok(lines[2].includes('lab-ctr'));
  // Columns line up: the interface column starts at the same place on every line.
  const column = (l: string, word: string) => l.indexOf(word);
  assert.equal(column(lines[0], 'docker0'), column(t.header(), 'INTERFACE'));
  assert.equal(column(lines[2], 'eth0'), column(t.header(), 'INTERFACE'));
});

test('table: an interface name cut to its column never ends in half a character', () => {
  const [first] = decodeFixture('demo-ipv4.batch');
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  // Names whose cut falls on every place around a character beyond U+FFFF (an emoji), after escapes of various widths.
  for (let n = 0; n < 16; n++) {
    const ifname = `${'\x01'.repeat(n % 4)}${'a'.repeat(n)}\u{1F600}b`;
    const line = new TableRenderer().line({ ...first, ifname });
    assert.doesNotMatch(line, lone, JSON.stringify(ifname));
  }
});

test('time deltas in milliseconds with microsecond precision', () => {
  assert.equal(formatDelta(0), '+0.000ms');
  assert.equal(formatDelta(12_345), '+0.012ms');
  assert.equal(formatDelta(1_500_000_000), '+1500.000ms');
  assert.equal(formatDelta(-5_000), '-0.005ms', 'another node\'s event, placed by a clock offset known within a bound');
});

test('namespace labels: name and inode, long names shortened', () => {
  assert.equal(netnsLabel(4026531833, 'host'), 'host (4026531833)');
  assert.equal(netnsLabel(7, null), '7');
  assert.equal(netnsLabel(7, 'a-very-long-namespace-name'), 'a-very-long-nam… (7)');
  // Across nodes the node comes first, whole, and the name gives way to stay in the column.
  assert.equal(netnsLabel(7, 'tpk-ex-near', 'node2'), 'node2/tpk-ex-ne… (7)');
  assert.equal(netnsLabel(7, null, 'node2'), 'node2/7');
  assert.equal(netnsLabel(7, 'host', 'a-long-node-name-here'), 'a-long-node-name-here/host (7)');
  assert.equal(netnsLabel(7, 'host', 'evil\x1b[2J'), 'evil\\x1b[2J/host (7)', 'a node name is shown, not obeyed');
});

test('path picture: namespaces over their interfaces, a bar over the arrow that changes namespace', () => {
  const [top, bottom] = renderPath([
    { netns: 1, netnsName: 'host', ifname: 'br0', tunnel: null },
    { netns: 1, netnsName: 'host', ifname: 'veth1a2b', tunnel: null },
    { netns: 2, netnsName: 'accc1', ifname: 'eth0', tunnel: null },
  ]);
  assert.equal(top, 'host               |   accc1');
  assert.equal(bottom[top.indexOf('|')], '-');
  assert.equal(bottom, 'br0 ---> veth1a2b ---> eth0');
});

test('path picture: a label longer than its interfaces stretches the arrow', () => {
  const [top, bottom] = renderPath([
    { netns: 1, netnsName: 'a-long-namespace', ifname: 'eth0', tunnel: null },
    { netns: 2, netnsName: 'router', ifname: 'r0', tunnel: null },
    { netns: 2, netnsName: 'router', ifname: 'r1', tunnel: null },
    { netns: 3, netnsName: null, ifname: 'eth0', tunnel: null },
  ]);
  assert.equal(top, 'a-long-namespace  |   router      |   3');
  assert.equal(bottom, 'eth0 ---------------> r0 ---> r1 ---> eth0');
  // Every bar stands over a dash of the arrow below it.
  for (let i = top.indexOf('|'); i >= 0; i = top.indexOf('|', i + 1)) assert.equal(bottom[i], '-');
});

test('path picture: a tunnel is drawn with double arrows, the one that enters it names it', () => {
  const vxlan = { type: 'vxlan' as const, id: 42, family: 4 as const, src: '192.168.77.1', dst: '192.168.77.2', proto: 17, sport: 41000, dport: 4789, ttl: 64, len: 134 };
  const [top, bottom] = renderPath([
    { netns: 1, netnsName: 'c1', ifname: 'eth0', tunnel: null },
    { netns: 2, netnsName: 'n1', ifname: 'vc1', tunnel: null },
    { netns: 2, netnsName: 'n1', ifname: 'vx0', tunnel: null },
    { netns: 2, netnsName: 'n1', ifname: 'u1', tunnel: vxlan },
    { netns: 3, netnsName: 'n2', ifname: 'u2', tunnel: vxlan },
    { netns: 3, netnsName: 'n2', ifname: 'vx0', tunnel: null },
    { netns: 3, netnsName: 'n2', ifname: 'vc2', tunnel: null },
  ]);
  assert.equal(bottom, 'eth0 ---> vc1 ---> vx0 ==[vxlan 42: 192.168.77.1 -> 192.168.77.2]==> u1 ===> u2 ===> vx0 ---> vc2');
  assert.equal(top, 'c1    |   n1                                                             |   n2');
  for (let i = top.indexOf('|'); i >= 0; i = top.indexOf('|', i + 1)) assert.match(bottom[i], /[-=]/, 'a bar over a shaft');
  // Entering the tunnel right where the namespace changes: the label sits on the long arrow.
  const [top2, bottom2] = renderPath([
    { netns: 1, netnsName: 'n1', ifname: 'vx0', tunnel: null },
    { netns: 2, netnsName: 'r', ifname: 'ra', tunnel: vxlan },
  ]);
  assert.equal(bottom2, 'vx0 ==[vxlan 42: 192.168.77.1 -> 192.168.77.2]==> ra');
  assert.equal(top2.indexOf('r', 3), bottom2.indexOf('ra'), 'the next label over its interfaces');
});

test('path picture: one namespace, and nothing for an empty path', () => {
  assert.deepEqual(renderPath([{ netns: 1, netnsName: 'host', ifname: 'lo', tunnel: null }]), ['host', 'lo']);
  assert.deepEqual(renderPath([]), []);
});

test('per-hop latency: the time since the same packet’s previous hop, shown in the HOP column', () => {
  const events = decodeFixture('demo-ipv4.batch');
  markHops(events);
  // The request is one sk_buff across its three hops, the reply another.
  assert.deepEqual(events.map((e) => e.latency_ns), [
    null,
    events[1].time_ns - events[0].time_ns,
    events[2].time_ns - events[1].time_ns,
    null,
    events[4].time_ns - events[3].time_ns,
    events[5].time_ns - events[4].time_ns,
  ]);
  const t = new TableRenderer();
  const hopColumn = events.map((e) => t.line(e).split(/\s+/)[1]);
  assert.deepEqual(hopColumn.map((c) => c === '-'), [true, false, false, true, false, false]);
  assert.equal(hopColumn[1], formatDelta(events[1].time_ns - events[0].time_ns));
  assert.ok(events.every((e) => e.rewritten === undefined || e.rewritten === null), 'nothing rewritten on this path');
});

test('a reused sk_buff starts a new chain: no latency or NAT note across packets', () => {
  const events = decodeFixture('demo-ipv4.batch');
  // Pretend the reply reused the request's sk_buff, as the kernel may.
  const reused = events.map((e) => ({ ...e, skb: events[0].skb }));
  markHops(reused);
  assert.equal(reused[3].latency_ns, null, 'the reply’s first hop has no previous one');
  assert.equal(reused[3].rewritten, null, 'and no NAT note');
});
