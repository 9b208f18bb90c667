/** --pcap: every sighted packet in a pcapng file that tshark reads without a complaint. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bridgeLab, capture, runCli, withLab } from './helpers';

function tshark(args: string[]): { stdout: string; stderr: string } {
  const r = spawnSync('tshark', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // tshark's own notice about running as root says nothing about the file.
  return { stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => l && !/Running as user "root"/.test(l)).join('\n') };
}

test('a journey across a bridge and a veth pair, packet by packet, with the hop in each comment', () =>
  withLab(async (lab) => {
    const topo = bridgeLab(lab);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-pcap-')), 'journey.pcapng');
    try {
      const before = Date.now();
      const run = await runCli(['--json', '--pcap', file, '--from', topo.host, topo.v4]);
      assert.equal(run.status, 0, run.stderr);
      const fields = tshark(['-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.interface_name', '-e', 'frame.comment', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'icmp.type', '-e', 'frame.time_epoch']);
      assert.equal(fields.stderr, '', 'no warnings');
      const rows = fields.stdout.trim().split('\n').map((l) => l.split('|'));
      assert.deepEqual(rows.map((r) => [r[0], r[2], r[3], r[4]]), [
        [`${topo.host}/docker0`, '172.17.0.1', '172.17.0.2', '8'],
        [`${topo.host}/${topo.veth}`, '172.17.0.1', '172.17.0.2', '8'],
        [`${topo.ctr}/eth0`, '172.17.0.1', '172.17.0.2', '8'],
        [`${topo.ctr}/eth0`, '172.17.0.2', '172.17.0.1', '0'],
        [`${topo.host}/${topo.veth}`, '172.17.0.2', '172.17.0.1', '0'],
        [`${topo.host}/docker0`, '172.17.0.2', '172.17.0.1', '0'],
      ]);
      // One packet per hop the JSON reports, with the hop's hook in its comment.
      assert.deepEqual(rows.map((r) => r[1].split(' ').slice(-2).join(' ')), run.events.map((e) => `${e.hook} ${e.dir}`));
      const times = rows.map((r) => Number(r[5]) * 1000);
      assert.ok(times.every((t, i) => t >= before - 1000 && t <= Date.now() + 1000 && (i === 0 || t >= times[i - 1])), 'wall-clock times, in order');
      // Wireshark's own checks: nothing malformed, no warning of its expert system.
      assert.equal(tshark(['-r', file, '-Y', '_ws.malformed || _ws.expert.severity >= "warning"']).stdout.trim(), '');
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  }));

/** The packets of a capture file as tcpdump reads them: hex of each packet's bytes, from the IP header on (`linkHeader` bytes skipped). */
function packetBytes(file: string, linkHeader: number): Buffer[] {
  const out = spawnSync('tcpdump', ['-r', file, '-nn', '-xx'], { encoding: 'utf8' }).stdout;
  return out.split(/\n(?=\S)/).filter((p) => /^\d/.test(p)).map((p) => Buffer.from([...p.matchAll(/^\s+0x[0-9a-f]+:\s+((?:[0-9a-f]{4}\s?|[0-9a-f]{2}\s?)+)/gm)].map((m) => m[1].replace(/\s/g, '')).join(''), 'hex').subarray(linkHeader));
}

for (const size of [3000, 20000]) {
  test(`a ${size}-byte probe: each captured packet is the bytes the probe carried (tcpdump on the same interface), and a short capture says it is short`, () =>
    withLab(async (lab) => {
      const topo = bridgeLab(lab);
      for (const [ns, dev] of [[topo.host, 'docker0'], [topo.host, topo.veth], [topo.ctr, 'eth0']]) lab.ip(ns, 'link', 'set', dev, 'mtu', '65000');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-pcap-'));
      const file = path.join(dir, 'journey.pcapng');
      const dump = await capture(topo.ctr, 'eth0', 'icmp', { keep: path.join(dir, 'witness.pcap') });
      try {
        const run = await runCli(['--pcap', file, '--size', String(size), '--from', topo.host, topo.v4]);
        assert.equal(run.status, 0, run.stderr);
        await dump.stop();
        const witness = packetBytes(path.join(dir, 'witness.pcap'), 14); // Ethernet there, raw IP in ours
        assert.equal(witness.length, 2, 'tcpdump saw the request and the reply');
        const ours = tshark(['-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.interface_name', '-e', 'frame.len', '-e', 'frame.cap_len']).stdout.trim().split('\n').map((l) => l.split('|'));
        const bytes = packetBytes(file, 16); // the cooked header before the IP bytes
        assert.equal(bytes.length, ours.length);
        let compared = 0;
        for (const [i, [iface, len, caplen]] of ours.entries()) {
          // The packet's own length, and a capture that says it is shorter: never filled up to it.
          assert.equal(Number(len), 16 + size + 28, `${iface}: the probe's IP length behind the cooked header`);
          assert.ok(Number(caplen) < Number(len) && Number(caplen) === 16 + bytes[i].length, `${iface}: ${caplen} of ${len} bytes captured`);
          if (iface !== `${topo.ctr}/eth0`) continue;
          // On the same interface, tcpdump's copy of the same packet holds the same bytes, as far as ours goes.
          const same = witness.find((w) => w.subarray(12, 20).equals(bytes[i].subarray(12, 20))); // by its addresses: request or reply
          assert.ok(same, `${iface}: tcpdump has the packet ${bytes[i].subarray(0, 24).toString('hex')} in ${witness.map((w) => w.subarray(0, 24).toString('hex')).join(' ')}`);
          // tcpdump's own snapshot is 256 bytes of frame: compare what both hold. Ours stops where the sk_buff's
          // linear part does (a 20000-byte probe arrives with its payload in pages: the IP header alone).
          const n = Math.min(bytes[i].length, same!.length);
          assert.ok(n >= (size > 4000 ? 20 : 200) && bytes[i].subarray(0, n).equals(same!.subarray(0, n)), `${iface}: the same ${n} bytes`);
          compared++;
        }
        assert.equal(compared, 2, 'request and reply compared');
      } finally {
        await dump.stop().catch(() => {});
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }));
}

test('--pcap into a directory that does not exist: one clear line, nothing attached', async () => {
  // Program ids only grow: one of ours above the highest id now would have been loaded by this run
  // (an earlier run's may still be on its way out: the kernel frees programs after an RCU period).
  const ids = () => (JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' }) || '[]') as { id: number; name?: string }[]);
  const before = Math.max(0, ...ids().map((p) => p.id));
  const run = await runCli(['--pcap', '/nonexistent-dir/x.pcapng', '127.0.0.1']);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /^tracepkt: cannot write \/nonexistent-dir\/x\.pcapng: \/nonexistent-dir is not a writable directory\n$/);
  assert.deepEqual(ids().filter((p) => p.id > before && /^tp_/.test(p.name ?? '')), [], 'nothing loaded');
});
