import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { addressBytes } from '../../src/addr';
import { compileFilter, evaluate, FILTER_MAX } from '../../src/filter/compile';
import { FilterSyntaxError, parseFilter } from '../../src/filter/parse';
import { TracepktError } from '../../src/errors';

const pkt = (family: 4 | 6, proto: number, src: string, dst: string, sport = 0, dport = 0) => {
  const b = (a: string) => {
    const out = Buffer.alloc(16);
    addressBytes(a).copy(out);
    return out;
  };
  return { family, proto, src: b(src), dst: b(dst), sport, dport };
};
const matches = (expr: string, p: ReturnType<typeof pkt>) => evaluate(compileFilter(parseFilter(expr)), p);

const tcp = pkt(4, 6, '10.0.1.2', '10.0.2.2', 40000, 80);
const udp6 = pkt(6, 17, 'fd00:1::2', 'fd00:2::2', 5353, 53);
const icmp = pkt(4, 1, '10.0.1.2', '10.0.2.2');

const cases: [string, ReturnType<typeof pkt>, boolean][] = [
  ['tcp', tcp, true],
  ['udp', tcp, false],
  ['icmp', icmp, true],
  ['ip', udp6, false],
  ['ip6 and udp', udp6, true],
  ['host 10.0.2.2', tcp, true],
  ['src host 10.0.2.2', tcp, false],
  ['dst host 10.0.2.2', tcp, true],
  ['net 10.0.0.0/16', tcp, true],
  ['src net 10.0.2.0/24', tcp, false],
  ['net fd00::/16', udp6, true],
  ['net 10.0.0.0/8', udp6, false],
  ['port 80', tcp, true],
  ['src port 80', tcp, false],
  ['dst port 80 and src port 40000', tcp, true],
  ['port 80', icmp, false],
  ['not port 80', icmp, true],
  ['tcp and (port 22 or port 80)', tcp, true],
  ['tcp && !(port 22 || port 443)', tcp, true],
  ['udp or icmp and host 10.9.9.9', tcp, false],
  ['icmp or tcp and port 80', icmp, true], // and binds tighter than or
  ['not not tcp', tcp, true],
  ['net 0.0.0.0/0', icmp, true],
];

for (const [expr, p, want] of cases) {
  test(`filter "${expr}" ${want ? 'matches' : 'does not match'}`, () => assert.equal(matches(expr, p), want));
}

const bad: [string, number, RegExp][] = [
  ['', 1, /empty filter/],
  ['tcp and', 8, /expression ends too early/],
  ['tcp or or udp', 8, /unknown word "or"/],
  ['(tcp', 5, /expected "\)" to close the "\(" at column 1/],
  ['tcp)', 4, /unexpected "\)"/],
  ['host', 5, /expected an IP address/],
  ['host 10.0.0.300', 6, /"10.0.0.300" is not an IP address/],
  ['host 10.0.0.0/8', 6, /is not an IP address/],
  ['net 10.0.0.0/33', 5, /prefix length must be 0 to 32/],
  ['port 70000', 6, /expected a port number \(0-65535\), not "70000"/],
  ['src tcp', 5, /"src" does not go with "tcp"/],
  ['src foo', 5, /expected host, net or port after "src", not "foo"/],
  ['prot 80', 1, /unknown word "prot"/],
];

for (const [expr, column, message] of bad) {
  test(`rejects ${JSON.stringify(expr)} at column ${column}`, () => {
    assert.throws(() => parseFilter(expr), (err: unknown) => {
      assert.ok(err instanceof FilterSyntaxError);
      assert.equal(err.column, column);
      assert.match(err.message, message);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
  });
}

test('too long for the kernel: refused with the limit named', () => {
  const long = Array.from({ length: 20 }, (_, i) => `port ${i}`).join(' or ');
  assert.throws(() => compileFilter(parseFilter(long)), (e: unknown) => e instanceof TracepktError && new RegExp(`at most ${FILTER_MAX}`).test(e.message));
});

test('postfix program: tests push, and/or combine, not flips', () => {
  const prog = compileFilter(parseFilter('tcp and not port 22'));
  assert.deepEqual(prog.map((i) => i.op), [1, 1, 4, 2]);
});

test('addresses with a dotted IPv4 tail encode as IPv6 should', () => {
  assert.equal(addressBytes('::ffff:10.0.0.1').toString('hex'), '00000000000000000000ffff0a000001');
  assert.ok(matches('host ::ffff:10.0.0.1', pkt(6, 6, '::ffff:10.0.0.1', 'fd00::1', 1, 2)));
});

test('a network with an empty prefix length is refused, not read as /0', () => {
  assert.throws(() => parseFilter('net 10.0.0.0/'), (e: unknown) => e instanceof FilterSyntaxError && e.column === 5);
});
