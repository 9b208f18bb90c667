/** Argument errors are reported before anything is loaded or sent: no root needed. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { main, USAGE } from '../../src/cli';
import { TracepktError } from '../../src/errors';
import type { Output } from '../../src/commands/output';

function capture(): Output & { lines: string[] } {
  const lines: string[] = [];
  return { lines, out: (l) => lines.push(l), write: (text) => lines.push(...String(text).slice(0, -1).split('\n')), err: (l) => lines.push(l) };
}

const bad: [string[], RegExp][] = [
  [[], /no target given/],
  [['a', 'b'], /one target only/],
  [['-c', '0', '10.0.0.1'], /--count must be a whole number from 1 to 65535, not "0"/],
  [['-c', '-1', '10.0.0.1'], /--count must be a whole number from 1 to 65535, not "-1"/],
  [['--timeout', '-3', '10.0.0.1'], /--timeout must be a number of seconds above 0, not "-3"/],
  [['--count=-1', '10.0.0.1'], /--count must be a whole number .* not "-1"/],
  [['-c', 'three', '10.0.0.1'], /--count must be a whole number/],
  [['-c', '1.5', '10.0.0.1'], /--count must be a whole number/],
  [['--timeout', '0', '10.0.0.1'], /--timeout must be a number of seconds above 0/],
  [['--timeout', 'soon', '10.0.0.1'], /--timeout must be/],
  [['-4', '-6', '10.0.0.1'], /-4 and -6 exclude each other/],
  [['--ttl', '0', '10.0.0.1'], /--ttl must be a whole number from 1 to 255, not "0"/],
  [['--ttl', '256', '10.0.0.1'], /--ttl must be a whole number from 1 to 255, not "256"/],
  [['--ttl', '-1', '10.0.0.1'], /--ttl must be a whole number from 1 to 255, not "-1"/],
  [['--size', '8', '10.0.0.1'], /--size must be a whole number from 32 to 65000, not "8"/],
  [['--tcp', '80', '--udp', '53', '10.0.0.1'], /--tcp and --udp exclude each other/],
  [['--tcp', '0', '10.0.0.1'], /--tcp must be a whole number from 1 to 65535, not "0"/],
  [['--tcp', '80', '-c', '2', '10.0.0.1'], /--count goes with ICMP probes only/],
  [['--filter', 'tcp', '10.0.0.1'], /--filter traces existing traffic: give no target with it/],
  [['--filter', 'tcp', '--tcp', '80'], /do not go with it/],
  [['--bogus', '10.0.0.1'], /Unknown option '--bogus' \(see tracepkt --help\)/],
  [['--filter', 'icmp', '--node', 'b=10.0.0.2:7447'], /--node needs --token-file FILE/],
  [['--filter', 'icmp', '--token-file', '/t'], /--token-file go with --node/],
  [['--filter', 'icmp', '--node', 'b=10.0.0.2:7447', '--cert', '/c', '--key', '/k'], /--cert, --key and --ca go together/],
  [['--filter', 'icmp', '--node', 'b=10.0.0.2:7447', '--token-file', '/t', '--cert', '/c', '--key', '/k', '--ca', '/a'], /one way to prove who is who, not both/],
  [['agent', '--listen', '10.0.0.1:7447', '--ca', '/a'], /agent: --cert, --key and --ca go together/],
  [['--filter', 'icmp', '--node', '10.0.0.2:7447', '--token-file', '/t'], /--node 10\.0\.0\.2:7447: give NAME=ADDR:PORT/],
  [['--filter', 'icmp', '--node', 'b=10.0.0.2', '--token-file', '/t'], /give NAME=ADDR:PORT/],
  [['--filter', 'icmp', '--node', 'b=10.0.0.2:0', '--token-file', '/t'], /give NAME=ADDR:PORT/],
  [['--filter', 'icmp', '--node', 'b=10.0.0.2:70000', '--token-file', '/t'], /give NAME=ADDR:PORT/],
  [['--filter', 'icmp', '--node', 'b\x1b[2J=10.0.0.2:7447', '--token-file', '/t'], /give NAME=ADDR:PORT/],
  [['--filter', 'icmp', '--node', 'b=10.0.0.2:7447', '--node', 'b=10.0.0.3:7447', '--token-file', '/t'], /--node b is given twice/],
  [['--node', 'b=10.0.0.2:7447', '10.0.0.2'], /--node needs --token-file FILE/],
  [['--node', 'b=10.0.0.2:7447', '--token-file', '/t', '--html', '/tmp/x.html', '10.0.0.2'], /--pcap and --html do not go with --node yet/],
  [['--token-file', '/t', '10.0.0.2'], /--token-file go with --node/],
  [['--cert', '/c', '--key', '/k', '--ca', '/a', '10.0.0.2'], /--cert, --key and --ca go with --node/],
  [['agent'], /agent: --listen ADDR:PORT is required/],
  [['agent', '--listen', '10.0.0.1:7447'], /agent: --token-file FILE \(or --cert, --key and --ca\) is required/],
  [['agent', '--listen', '10.0.0.1', '--token-file', '/t'], /--listen 10\.0\.0\.1: give ADDR:PORT/],
  [['agent', '--listen', 'example.com:7447', '--token-file', '/t'], /give ADDR:PORT/],
  [['agent', '--listen', '[zz::1]:7447', '--token-file', '/t'], /give ADDR:PORT|is not an IP address/],
  [['agent', '--listen', '999.1.1.1:7447', '--token-file', '/t'], /999\.1\.1\.1 is not an IP address/],
  [['agent', '--listen', '10.0.0.1:7447', '--token-file', '/t', '--name', 'a b'], /--name takes letters/],
  [['agent', '--listen', '10.0.0.1:7447', '--token-file', '/t', '--bogus'], /agent: Unknown option '--bogus' \(see tracepkt agent --help\)/],
];

test('--node and agent addresses: names, IPv4, IPv6 and host names', async () => {
  const { parseCommand } = await import('../../src/cli');
  const c = parseCommand(['--filter', 'icmp', '--node', 'b=10.0.0.2:7447', '--node', 'c.d_e-1=[fd00::3]:1', '--node', 'w=worker-2.example:7447', '--token-file', '/t']);
  assert.equal(c.kind, 'passive');
  assert.deepEqual(c.kind === 'passive' && c.options.nodes, [
    { name: 'b', host: '10.0.0.2', port: 7447 },
    { name: 'c.d_e-1', host: 'fd00::3', port: 1 },
    { name: 'w', host: 'worker-2.example', port: 7447 },
  ]);
  const probe = parseCommand(['--node', 'b=10.0.0.2:7447', '--token-file', '/t', '--tcp', '80', '10.1.0.2']);
  assert.ok(probe.kind === 'trace');
  assert.deepEqual([probe.options.nodes, probe.options.credentials, probe.options.service], [[{ name: 'b', host: '10.0.0.2', port: 7447 }], { tokenFile: '/t' }, { proto: 'tcp', port: 80 }]);
  const mtls = parseCommand(['--node', 'b=10.0.0.2:7447', '--cert', '/c', '--key', '/k', '--ca', '/a', '10.1.0.2']);
  assert.deepEqual(mtls.kind === 'trace' && mtls.options.credentials, { certFile: '/c', keyFile: '/k', caFile: '/a' });
  assert.deepEqual(parseCommand(['agent', '--listen', '[::]:7447', '--token-file', '/t']), { kind: 'agent', options: { host: '::', port: 7447, credentials: { tokenFile: '/t' }, name: undefined } });
  assert.deepEqual(parseCommand(['agent', '--listen', '[::]:7447', '--cert', '/c', '--key', '/k', '--ca', '/a']), { kind: 'agent', options: { host: '::', port: 7447, credentials: { certFile: '/c', keyFile: '/k', caFile: '/a' }, name: undefined } });
  assert.equal(parseCommand(['agent', '--help']).kind, 'print');
});

for (const [args, message] of bad) {
  test(`rejects ${JSON.stringify(args)}`, async () => {
    await assert.rejects(main(args, capture()), (err: unknown) => {
      assert.ok(err instanceof TracepktError);
      assert.equal(err.exitCode, 2);
      assert.match(err.message, message);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
  });
}

test('--help prints the usage and succeeds', async () => {
  const io = capture();
  assert.equal(await main(['--help'], io), 0);
  assert.deepEqual(io.lines, [USAGE]);
});

test('--version prints the package version', async () => {
  const io = capture();
  assert.equal(await main(['--version'], io), 0);
  assert.equal(io.lines[0], require('../../../package.json').version);
});
