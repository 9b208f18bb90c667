import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { MANGLE_CONFIG as M, MangleAction, MangleSelect } from '../../src/bpf/layout';
import { describeSpec, mangleCommand, parseMangleArgs } from '../../src/commands/mangle';
import { TracepktError } from '../../src/errors';
import { compilePcapFilter } from '../../src/filter/pcap';
import { loadNative } from '../../src/native';
import { checkSpec, encodeMangleConfig, parseRatio, parseTcpFlags, parseTtl, type MangleSpec } from '../../src/mangle/spec';

test('TCP flags by name, alone or comma-separated, any case', () => {
  assert.equal(parseTcpFlags('PSH'), 0x08);
  assert.equal(parseTcpFlags('psh,urg'), 0x28);
  assert.throws(() => parseTcpFlags('PUSH'), /unknown TCP flag "PUSH" \(one of FIN, SYN, RST, PSH, ACK, URG, ECE, CWR/);
});

test('ratio and TTL: what is allowed and what is refused', () => {
  assert.equal(parseRatio('0.1'), 0.1);
  assert.equal(parseRatio('1'), 1);
  assert.equal(parseRatio('.5'), 0.5);
  for (const bad of ['0', '2', '-0.1', 'x', '1.5', '']) assert.throws(() => parseRatio(bad), TracepktError, bad);
  assert.equal(parseTtl('random'), 'random');
  assert.equal(parseTtl('1'), 1);
  assert.equal(parseTtl('255'), 255);
  for (const bad of ['0', '256', 'rand', '-1']) assert.throws(() => parseTtl(bad), TracepktError, bad);
});

test('combinations that make no sense are refused before anything is loaded', () => {
  const spec = (x: Partial<MangleSpec>): MangleSpec => ({ ratio: 1, egress: false, ...x });
  assert.throws(() => checkSpec(spec({})), /nothing to do/);
  assert.throws(() => checkSpec(spec({ drop: true, ttl: 5 })), /--drop cannot be combined/);
  assert.throws(() => checkSpec(spec({ tcpFlags: 8 })), /--set-tcp-flags needs --egress/);
  checkSpec(spec({ tcpFlags: 8, egress: true }));
  checkSpec(spec({ ttl: 'random' }));
  checkSpec(spec({ drop: true }));
});

test('the config the kernel reads: action bits, TTL, flags, ratio in millionths, selection, the filter', () => {
  const random = encodeMangleConfig({ ttl: 'random', ratio: 1, egress: false });
  assert.equal(random.readUInt32LE(M.ratio_ppm[0]), 1_000_000);
  assert.equal(random[M.action[0]], MangleAction.TTL);
  assert.equal(random[M.ttl[0]], 0, 'random is 0');
  assert.equal(random[M.select[0]], MangleSelect.ECHO_REPLIES, '--ttl without --filter: echo replies');
  assert.equal(random[M.filter[0]], 0);

  const pcap = compilePcapFilter(loadNative(), 'tcp and dst port 5001 and tcp[100] = 1', 'ethernet');
  const psh = encodeMangleConfig({ tcpFlags: 0x08, ratio: 0.1, egress: true, pcap });
  assert.equal(psh.readUInt32LE(M.ratio_ppm[0]), 100_000);
  assert.equal(psh[M.action[0]], MangleAction.TCP_FLAGS);
  assert.equal(psh[M.tcp_flags[0]], 0x08);
  assert.equal(psh[M.select[0]], MangleSelect.ALL);
  assert.equal(psh[M.filter[0]], 1, 'a filter is placed');
  assert.equal(psh.readUInt16LE(M.filter_reach[0]), 14 + 60 + 100 + 1, 'the transmit path makes the bytes it reads readable: Ethernet, the longest IPv4 header, tcp[100]');
  assert.throws(() => encodeMangleConfig({ drop: true, ratio: 1, egress: false, pcap: compilePcapFilter(loadNative(), 'icmp', 'raw') }), /compile the filter for Ethernet/);

  const ttl = encodeMangleConfig({ ttl: 9, ratio: 1, egress: false, pcap: compilePcapFilter(loadNative(), 'icmp', 'ethernet') });
  assert.equal(ttl[M.ttl[0]], 9);
  assert.equal(ttl[M.select[0]], MangleSelect.ALL, 'with a filter, the filter selects');
  assert.equal(encodeMangleConfig({ drop: true, ratio: 0.2, egress: false })[M.action[0]], MangleAction.DROP);
});

test('mangle arguments: parsed into a checked spec, or one clear error', async () => {
  const o = parseMangleArgs(['rb', '--netns', 'r', '--egress', '--set-tcp-flags', 'PSH', '--ratio', '0.1', '--filter', 'tcp']);
  assert.ok(o !== 'help');
  assert.deepEqual([o.dev, o.netns, o.spec.egress, o.spec.tcpFlags, o.spec.ratio, o.filter], ['rb', 'r', true, 8, 0.1, 'tcp']);
  assert.equal(parseMangleArgs(['--help']), 'help');
  assert.throws(() => parseMangleArgs(['--ttl', 'random']), /no interface given/);
  assert.throws(() => parseMangleArgs(['a', 'b', '--drop']), /one interface only/);
  assert.throws(() => parseMangleArgs(['eth0', '--bogus']), /Unknown option '--bogus' \(see tracepkt mangle --help\)/);
  // Compiled by the command, before privileges are checked or anything is loaded.
  const bad = parseMangleArgs(['eth0', '--drop', '--filter', 'tcp and']);
  assert.ok(bad !== 'help');
  await assert.rejects(mangleCommand(bad, { out: () => assert.fail('no output'), write: () => assert.fail('no output'), err: () => assert.fail('no output') }), /^TracepktError: bad filter "tcp and": can't parse filter expression: syntax error$/);
});

test('what a run does, in words', () => {
  assert.equal(describeSpec({ ttl: 'random', ratio: 1, egress: false }), 'set the TTL to a random value on ICMP echo replies');
  assert.equal(describeSpec({ tcpFlags: 8, ratio: 0.1, egress: true }, 'tcp port 80'), 'set TCP flags on 10% of packets matching "tcp port 80"');
  assert.equal(describeSpec({ drop: true, ratio: 0.2, egress: false }), 'drop on 20% of IP packets');
});
