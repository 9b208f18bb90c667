import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { encodeConfig } from '../../src/bpf/config';
import { CONFIG } from '../../src/bpf/layout';
import { launchCommand, MARKER_OFFSET, newMarker, parsePingOutput, pingCommand } from '../../src/probe/ping';
import { resolveTarget } from '../../src/probe/target';
import { TracepktError } from '../../src/errors';

const marker = Buffer.from('0011223344556677', 'hex');

test('ping carries the marker twice as its 16-byte pattern, and DF (-M do): never fragmented by its sender', () => {
  const args = pingCommand({ address: '10.0.0.2', family: 4, count: 3, timeout: 2, marker });
  assert.deepEqual(args, ['ping', '-4', '-n', '-c', '3', '-i', '0.2', '-W', '2', '-M', 'do', '-p', '00112233445566770011223344556677', '10.0.0.2']);
});

test('ping’s own report: the probes it got replies to, what it sent, its local errors and their MTU', () => {
  // iputils ping 20221126, as Debian 12 ships it (recorded).
  const stdout = [
    'PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.',
    '64 bytes from 10.0.2.2: icmp_seq=1 ttl=63 time=0.061 ms',
    '64 bytes from 10.0.2.2: icmp_seq=3 ttl=63 time=0.070 ms',
    '64 bytes from 10.0.2.2: icmp_seq=3 ttl=63 time=0.072 ms (DUP!)',
    'From 10.0.1.1 icmp_seq=4 Time to live exceeded',
    '',
    '--- 10.0.2.2 ping statistics ---',
    '4 packets transmitted, 2 received, +1 duplicates, +1 errors, 50% packet loss, time 603ms',
  ].join('\n');
  const r = parsePingOutput(stdout, '');
  assert.deepEqual([...r.answered].sort(), [1, 3]);
  assert.equal(r.transmitted, 4);
  assert.deepEqual(r.localErrors, []);
  const tooBig = parsePingOutput('2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 202ms', 'ping: local error: message too long, mtu=1300\nping: local error: message too long, mtu=1300');
  assert.deepEqual([tooBig.answered.size, tooBig.localErrors.length, tooBig.localMtu], [0, 2, 1300]);
  assert.equal(parsePingOutput('', 'ping: local error: message too long, mtu: 1280').localMtu, 1280, 'IPv6 words it with a colon');
});

test('ping from another namespace runs under nsenter; -t sets the TTL', () => {
  const args = pingCommand({ address: 'fd00::2', family: 6, count: 1, timeout: 1.5, marker, netnsPath: '/run/netns/x', ttl: 3 });
  assert.deepEqual(args.slice(0, 3), ['nsenter', '--net=/run/netns/x', '--']);
  assert.deepEqual(args.slice(3, 5), ['ping', '-6']);
  assert.deepEqual(args.slice(-3), ['-t', '3', 'fd00::2']);
  assert.ok(args.includes('1.5'));
});

test('ping starts under a shell that waits for the go, keeping its pid; nsenter wraps the whole', () => {
  const o = { address: '10.0.0.2', family: 4 as const, count: 1, timeout: 2, marker };
  assert.deepEqual(launchCommand(o), ['sh', '-c', 'read _ && exec "$@"', 'tracepkt-probe', ...pingCommand(o)]);
  const inNs = launchCommand({ ...o, netnsPath: '/run/netns/x', size: 1400 });
  assert.deepEqual(inNs.slice(0, 4), ['nsenter', '--net=/run/netns/x', '--', 'sh']);
  assert.deepEqual(inNs.slice(-3), ['-s', '1400', '10.0.0.2']);
});

test('the marker sits after the ICMP echo header and ping’s 16-byte timestamp', () => {
  assert.equal(MARKER_OFFSET, 24);
  const a = newMarker();
  const b = newMarker();
  assert.equal(a.length, 8);
  assert.notDeepEqual(a, b, 'each run has its own marker');
});

test('config: marker bytes in packet order, offset and family', () => {
  const buf = encodeConfig({ marker, markerOffset: MARKER_OFFSET, family: 6 });
  assert.equal(buf.length, CONFIG.$size);
  assert.deepEqual(buf.subarray(0, 8), marker);
  assert.equal(buf.readUInt16LE(CONFIG.marker_offset[0]), 24);
  assert.equal(buf[CONFIG.family[0]], 6);
  assert.throws(() => encodeConfig({ marker: Buffer.alloc(4), markerOffset: 0, family: 0 }), RangeError);
});

test('targets: addresses pass through, names resolve, bad input is named', async () => {
  assert.deepEqual(await resolveTarget('10.1.2.3'), { input: '10.1.2.3', address: '10.1.2.3', family: 4 });
  assert.deepEqual(await resolveTarget('fd00::1', 6), { input: 'fd00::1', address: 'fd00::1', family: 6 });
  assert.equal((await resolveTarget('localhost', 4)).address, '127.0.0.1');
  const rejects = (p: Promise<unknown>, re: RegExp) =>
    assert.rejects(p, (e: unknown) => e instanceof TracepktError && re.test(e.message));
  await rejects(resolveTarget('300.1.1.1'), /^malformed address: 300\.1\.1\.1$/);
  await rejects(resolveTarget('10.0.0'), /^malformed address/);
  await rejects(resolveTarget('fd00:::1'), /^malformed address/);
  await rejects(resolveTarget('10.0.0.1', 6), /is an IPv4 address, but -6 asks for IPv6/);
  await rejects(resolveTarget('no-such-host.invalid'), /^cannot resolve host no-such-host\.invalid$/);
  await rejects(resolveTarget(''), /empty target/);
});
