/**
 * `npm run bench`: tracepkt's speed, each figure against a baseline measured
 * in the same run on the same machine (never a fixed number: shared machines
 * vary). Run as root after `make`. Prints a report and writes it to
 * bench/results.md with the date and the machine.
 *
 *   1. start-up: launch to attached, tracepkt vs bpftrace on the same two tracepoints
 *   2. cost to traffic that is not traced: TCP throughput through veth + bridge, without
 *      a tracer, with tracepkt attached (its filter not matching), with the bpftrace script
 *   3. cost when everything matches: events per second through the ring buffer, decoded
 *      in user space, lost events counted, resident memory
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab } from '../src/lab/lab';
import { MARKER_OFFSET, newMarker } from '../src/probe/ping';
import { createTracer } from '../src/tracer';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'tracepkt');
const BPFTRACE_SCRIPT = 'tracepoint:net:net_dev_queue, tracepoint:net:netif_receive_skb { @[probe] = count(); }';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Milliseconds from spawn until `ready` matches the process's output; then it is killed. */
function timeToReady(cmd: string, args: string[], ready: RegExp): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    const check = (chunk: Buffer) => {
      seen += chunk.toString();
      if (ready.test(seen)) {
        resolve(Number(process.hrtime.bigint() - started) / 1e6);
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.on('exit', () => reject(new Error(`${cmd} exited before it was ready: ${seen.slice(0, 300)}`)));
  }).finally(() => new Promise((r) => setTimeout(r, 200))) as Promise<number>;
}

/** bpftrace's tracepoints need tracefs; mount it for the run if it is not. */
function withTracefs<T>(fn: () => Promise<T>): Promise<T> {
  const mounted = fs.existsSync('/sys/kernel/tracing/events');
  if (!mounted) execFileSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing']);
  return fn().finally(() => {
    if (!mounted) execFileSync('umount', ['/sys/kernel/tracing']);
  });
}

async function startup(runs: number) {
  const tracepkt: number[] = [];
  const bpftrace: number[] = [];
  for (let i = 0; i < runs; i++) {
    tracepkt.push(await timeToReady(BIN, ['--json', '--filter', 'icmp and host 192.0.2.1'], /"kind":"start"/));
    bpftrace.push(await timeToReady('bpftrace', ['-e', BPFTRACE_SCRIPT], /Attaching 2 probes/));
  }
  return { tracepkt: median(tracepkt), bpftrace: median(bpftrace) };
}

/** Events per second delivered, decoded and queued by the library, while ping floods loopback. */
async function throughput(packets: number) {
  const marker = newMarker();
  const tracer = await createTracer({ filter: { marker, markerOffset: MARKER_OFFSET, family: 4 }, ringBytes: 16 << 20 });
  let events = 0;
  const reading = (async () => {
    for await (const _ of tracer) events++;
  })();
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const ping = spawn('ping', ['-4', '-f', '-q', '-c', String(packets), '-p', marker.toString('hex').repeat(2), '127.0.0.1'], { stdio: 'ignore' });
    ping.on('exit', () => resolve());
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const lost = tracer.lost();
  tracer.close();
  await reading;
  return { events, lost, seconds, perSecond: events / seconds, rssMb: process.memoryUsage().rss / 2 ** 20 };
}

/** iperf3 between two namespaces through a veth + bridge path: Gbit/s. */
function iperf(lab: Lab, client: string, serverAddr: string, seconds: number): number {
  const out = execFileSync('ip', ['netns', 'exec', client, 'iperf3', '-c', serverAddr, '-t', String(seconds), '-J'], { encoding: 'utf8' });
  return (JSON.parse(out).end.sum_received.bits_per_second as number) / 1e9;
}

async function overhead(seconds: number) {
  const lab = new Lab();
  try {
    const host = lab.netns('host');
    const a = lab.netns('a');
    const b = lab.netns('b');
    lab.veth(host, `va${lab.id}`, a, 'eth0');
    lab.veth(host, `vb${lab.id}`, b, 'eth0');
    lab.bridge(host, 'br0', `va${lab.id}`, `vb${lab.id}`);
    lab.addr(a, 'eth0', '10.77.0.1/24');
    lab.addr(b, 'eth0', '10.77.0.2/24');
    const server = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    try {
      const baseline = iperf(lab, a, '10.77.0.2', seconds);
      const tracer = spawn(BIN, ['--json', '--filter', 'icmp and host 192.0.2.1'], { stdio: ['ignore', 'pipe', 'ignore'] });
      await new Promise((r) => tracer.stdout.once('data', r));
      const withTracepkt = iperf(lab, a, '10.77.0.2', seconds);
      tracer.kill('SIGINT');
      await new Promise((r) => tracer.once('exit', r));
      const withBpftrace = await withTracefs(async () => {
        const bt = spawn('bpftrace', ['-e', BPFTRACE_SCRIPT], { stdio: ['ignore', 'pipe', 'ignore'] });
        await new Promise((r) => bt.stdout.once('data', r));
        const gbps = iperf(lab, a, '10.77.0.2', seconds);
        bt.kill('SIGINT');
        await new Promise((r) => bt.once('exit', r));
        return gbps;
      });
      return { baseline, withTracepkt, withBpftrace };
    } finally {
      server.kill('SIGKILL');
    }
  } finally {
    lab.destroy();
  }
}

async function main() {
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`;
  const s = await withTracefs(() => startup(10));
  const t = await throughput(200_000);
  const o = await overhead(5);
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  const speed = (ratio: number) => (ratio >= 1 ? `${ratio.toFixed(1)}x faster` : `${(1 / ratio).toFixed(1)}x slower`);
  const report = [
    `# tracepkt benchmark, ${new Date().toISOString().slice(0, 10)}`,
    '',
    `Machine: ${machine}.`,
    '',
    '| what | tracepkt | baseline | ratio |',
    '| --- | --- | --- | --- |',
    `| start-up, launch to attached (median of 10) | ${s.tracepkt.toFixed(0)} ms | bpftrace ${s.bpftrace.toFixed(0)} ms | ${speed(s.bpftrace / s.tracepkt)} |`,
    `| TCP throughput, veth + bridge, filter not matching | ${o.withTracepkt.toFixed(2)} Gbit/s | untraced ${o.baseline.toFixed(2)} Gbit/s | ${pct(o.withTracepkt / o.baseline)} of untraced |`,
    `| same, bpftrace script attached | bpftrace ${o.withBpftrace.toFixed(2)} Gbit/s | untraced ${o.baseline.toFixed(2)} Gbit/s | ${pct(o.withBpftrace / o.baseline)} of untraced |`,
    `| events delivered, decoded (ping flood on loopback) | ${Math.round(t.perSecond).toLocaleString('en')} events/s | ${t.events.toLocaleString('en')} events in ${t.seconds.toFixed(1)} s | ${t.lost.toLocaleString('en')} lost (${pct(t.lost / (t.events + t.lost))}) |`,
    `| resident memory after the flood | ${t.rssMb.toFixed(0)} MB | | |`,
    '',
  ].join('\n');
  process.stdout.write(report);
  fs.writeFileSync(path.join(ROOT, 'bench', 'results.md'), report);
}

main().catch((err) => {
  console.error(`bench: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
});
