/**
 * tcpdump's language in this kernel's verifier: the expressions the docs and
 * --help give, and the shapes the translation emits (scratch memory, offsets
 * computed from the packet, shifts and divisions by X, no packet read at
 * all), placed in the tracing programs and in mangle's, each loaded here.
 * Loading is what the verifier judges; what the filters select is the
 * business of passive.test.ts, mangle.test.ts and the unit tests. In the
 * kernel matrix on every kernel (5.10 loads the compat objects).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { loadTracingObject } from '../../src/bpf/tracing-object';
import { compilePcapFilter } from '../../src/filter/pcap';
import { Mangler } from '../../src/mangle/mangler';
import { loadNative } from '../../src/native';
import { ourKernelObjects, withLab } from './helpers';

const native = loadNative();

/** For the tracing programs (raw IP); the help's examples first. */
const TRACING = [
  'tcp port 443 and host 10.0.0.2',
  'icmp[icmptype] == icmp-echo',
  'tcp[tcpflags] & tcp-syn != 0',
  'udp portrange 9990-9999',
  'ip6 and greater 1000',
  'ip[8] < 5',
  'icmp and ip[2:2] - ((ip[0] & 0xf) << 2) > 1000', // scratch memory
  'tcp[(tcp[12] & 0xf0) >> 2] == 0x47', // an offset computed from the packet: the whole 256 bytes fetched
  'ip[0] << ip[1] == 0 or ip[2:2] / ip[1] > 3 or ip[2:2] % ip[1] == 1', // shifts and divisions by X
  'udp[150:4] == 0x01020304', // past the 128 bytes fetched first
];

/** For mangle (Ethernet frames), on receive (XDP) and transmit (tc). */
const MANGLE = ['icmp[icmptype] == icmp-echoreply and greater 1000', 'vlan 10 and udp portrange 5000-5010', 'greater 1000', 'tcp[tcpflags] & tcp-push != 0', 'ether proto 0x86dd and ip6[6] == 58'];

test('every example and shape loads in the tracing programs on this kernel', async () => {
  const before = ourKernelObjects().progs;
  for (const expr of TRACING) {
    const pcap = compilePcapFilter(native, expr, 'raw');
    const obj = await loadTracingObject({ filter: { match: 'filter', pcap, marker: Buffer.alloc(8), markerOffset: 0, family: 0 }, routes: false, native }).catch((err) => {
      assert.fail(`${expr}: ${err.message}\n${(err.log ?? '').split('\n').slice(-8).join('\n')}`);
    });
    obj.close();
  }
  assert.deepEqual(ourKernelObjects().progs, before, 'nothing left loaded');
});

test('every example and shape loads in mangle\'s programs, receive and transmit, on this kernel', () =>
  withLab(async (lab) => {
    const a = lab.netns('a');
    const b = lab.netns('b');
    lab.veth(a, 'eth0', b, 'eth0');
    for (const expr of MANGLE) {
      const pcap = compilePcapFilter(native, expr, 'ethernet');
      for (const egress of [false, true]) {
        const m = await Mangler.attach({ dev: 'eth0', netns: lab.path(a) }, { drop: true, ratio: 1, egress, pcap }, native).catch((err) => {
          assert.fail(`${expr} (${egress ? 'transmit' : 'receive'}): ${err.message}\n${(err.log ?? '').split('\n').slice(-8).join('\n')}`);
        });
        m.close();
      }
    }
  }));
