/**
 * `npm run bench`: tracepkt's speed, each figure against a baseline measured
 * in the same run on the same machine (never a fixed number: shared machines
 * vary). Run as root after `make`; needs bpftrace, iperf3 and sockperf
 * (setup.sh installs them). Prints a report and writes it to
 * bench/results.md with the date and the machine.
 *
 *   1. start-up: launch to the first packet traced, tracepkt vs bpftrace on
 *      the same two tracepoints, while a ping runs every 2 ms (a packet seen
 *      proves everything is attached; "Attaching N probes" comes before that)
 *   2. cost to traffic that is not traced: TCP throughput (iperf3) and TCP
 *      request/response rate (sockperf ping-pong) through veth + bridge,
 *      untraced / tracepkt attached with its filter not matching / bpftrace
 *      attached / empty programs on tracepkt's hooks (bench/floor.bpf.c: the
 *      floor, the cost of hooking at all); rounds interleaved, medians kept
 *   3. cost when everything matches: the tracepkt command under a ping flood,
 *      events delivered, decoded and grouped per second, losses, resident
 *      memory sampled over the run; and user space alone: recorded ring
 *      batches decoded and grouped on one core
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BpfObject } from '../src/bpf/object';
import { decodeBatch } from '../src/decode';
import { FlowJourneys } from '../src/flows';
import { Lab } from '../src/lab/lab';
import { loadNative } from '../src/native';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'tracepkt');
const UNMATCHED = 'icmp and host 192.0.2.1';
/** bpftrace's equivalent of tracepkt's hop hooks: the same two tracepoints, a count per probe. */
const BPFTRACE_COUNT = 'tracepoint:net:net_dev_queue, tracepoint:net:netif_receive_skb { @[probe] = count(); }';
/** The same, saying so at its first packet (start-up measurement). */
const BPFTRACE_FIRST = 'tracepoint:net:net_dev_queue, tracepoint:net:netif_receive_skb { printf("seen\\n"); exit(); }';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exited = (child: ChildProcess) => new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));

/** Milliseconds from spawn until `ready` matches the process's output; then it is stopped. */
async function timeToOutput(cmd: string, args: string[], ready: RegExp): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  try {
    return await new Promise<number>((resolve, reject) => {
      const check = (chunk: Buffer) => {
        seen += chunk.toString();
        if (ready.test(seen)) resolve(Number(process.hrtime.bigint() - started) / 1e6);
      };
      child.stdout!.on('data', check);
      child.stderr!.on('data', check);
      child.on('exit', () => reject(new Error(`${cmd} exited before it was ready: ${seen.slice(0, 300)}`)));
    });
  } finally {
    child.kill('SIGINT');
    await exited(child);
  }
}

/** bpftrace's tracepoints need tracefs; mount it for the run if it is not. */
async function withTracefs<T>(fn: () => Promise<T>): Promise<T> {
  const mounted = fs.existsSync('/sys/kernel/tracing/events');
  if (!mounted) execFileSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing']);
  try {
    return await fn();
  } finally {
    if (!mounted) execFileSync('umount', ['/sys/kernel/tracing']);
  }
}

async function startup(runs: number) {
  // Something to see: a ping on loopback every 2 ms for the whole measurement.
  const ping = spawn('ping', ['-q', '-i', '0.002', '127.0.0.1'], { stdio: 'ignore' });
  const tracepkt: number[] = [];
  const ready: number[] = [];
  const bpftrace: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      tracepkt.push(await timeToOutput(BIN, ['--json', '--filter', 'icmp and host 127.0.0.1'], /"kind":"hop"/));
      ready.push(await timeToOutput(BIN, ['--json', '--filter', UNMATCHED], /"kind":"start"/));
      bpftrace.push(await timeToOutput('bpftrace', ['-e', BPFTRACE_FIRST], /seen/));
    }
  } finally {
    ping.kill();
  }
  return { tracepkt: median(tracepkt), ready: median(ready), bpftrace: median(bpftrace) };
}

/** A running tracer, as the user would start it; stopped with Ctrl-C. */
async function withTracer<T>(cmd: string, args: string[], fn: () => T): Promise<T> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  child.stderr!.on('data', (c) => (said += c));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve()); // tracepkt's start line; bpftrace's "Attaching"
    child.once('exit', () => reject(new Error(`${cmd} ended before it was attached: ${said.trim().slice(-300)}`)));
  });
  await sleep(300); // bpftrace prints before it attaches
  try {
    return fn();
  } finally {
    child.kill('SIGINT');
    await exited(child);
  }
}

/** Empty programs on tracepkt's 4 hooks (bench/floor.bpf.c) while fn runs. */
function withFloor<T>(fn: () => T): T {
  const obj = new BpfObject(loadNative(), path.join(ROOT, 'dist', 'bench', 'floor.bpf.o'));
  try {
    obj.load();
    for (const prog of obj.programs()) obj.attach(prog);
    return fn();
  } finally {
    obj.close();
  }
}

/** Gbit/s through the path, iperf3 for `seconds`. */
function throughput(client: string, server: string, seconds: number): number {
  const out = execFileSync('ip', ['netns', 'exec', client, 'iperf3', '-c', server, '-t', String(seconds), '-J'], { encoding: 'utf8' });
  return (JSON.parse(out).end.sum_received.bits_per_second as number) / 1e9;
}

/** TCP request/response transactions per second (1-byte messages, one in flight), sockperf ping-pong. */
function requestRate(client: string, server: string, seconds: number): number {
  const out = execFileSync('ip', ['netns', 'exec', client, 'sockperf', 'pp', '--tcp', '-i', server, '-p', '11111', '-m', '14', '-t', String(seconds)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const m = /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=\d+; ReceivedMessages=(\d+)/.exec(out);
  if (!m) throw new Error(`sockperf said: ${out.slice(-300)}`);
  return Number(m[2]) / Number(m[1]);
}

async function overhead(seconds: number, rounds: number) {
  const lab = new Lab();
  const servers: ChildProcess[] = [];
  try {
    const host = lab.netns('host');
    const a = lab.netns('a');
    const b = lab.netns('b');
    lab.veth(host, `va${lab.id}`, a, 'eth0');
    lab.veth(host, `vb${lab.id}`, b, 'eth0');
    lab.bridge(host, 'br0', `va${lab.id}`, `vb${lab.id}`);
    lab.addr(a, 'eth0', '10.77.0.1/24');
    lab.addr(b, 'eth0', '10.77.0.2/24');
    servers.push(spawn('ip', ['netns', 'exec', b, 'iperf3', '-s'], { stdio: 'ignore' }));
    servers.push(spawn('ip', ['netns', 'exec', b, 'sockperf', 'sr', '--tcp', '-i', '10.77.0.2', '-p', '11111'], { stdio: 'ignore' }));
    await sleep(500);
    const measure = () => ({ gbps: throughput(a, '10.77.0.2', seconds), rate: requestRate(a, '10.77.0.2', seconds) });
    const runs: Record<'untraced' | 'tracepkt' | 'bpftrace' | 'empty', { gbps: number; rate: number }[]> = { untraced: [], tracepkt: [], bpftrace: [], empty: [] };
    for (let i = 0; i < rounds; i++) {
      runs.untraced.push(measure());
      runs.tracepkt.push(await withTracer(BIN, ['--json', '--filter', UNMATCHED], measure));
      runs.bpftrace.push(await withTracer('bpftrace', ['-e', BPFTRACE_COUNT], measure));
      runs.empty.push(withFloor(measure));
    }
    const summary = (xs: { gbps: number; rate: number }[]) => ({ gbps: median(xs.map((x) => x.gbps)), rate: median(xs.map((x) => x.rate)) });
    return { untraced: summary(runs.untraced), tracepkt: summary(runs.tracepkt), bpftrace: summary(runs.bpftrace), empty: summary(runs.empty) };
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    lab.destroy();
  }
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * The tracepkt command (-q: decoded and grouped, nothing printed per packet)
 * while ping floods loopback for `seconds`: sightings delivered per second,
 * records lost, and its resident memory every second.
 */
async function flood(seconds: number) {
  const child = spawn(BIN, ['--json', '-q', '--filter', 'icmp and host 127.0.0.1'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  await new Promise((r) => child.stdout!.once('data', r));
  const ping = spawn('ping', ['-f', '-q', '127.0.0.1'], { stdio: 'ignore' });
  const rss: number[] = [];
  const started = process.hrtime.bigint();
  for (let s = 0; s < seconds; s++) {
    await sleep(1000);
    rss.push(rssMb(child.pid!));
  }
  ping.kill('SIGINT');
  await exited(ping);
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  child.kill('SIGINT');
  await exited(child);
  const summary = JSON.parse(out.trim().split('\n').pop()!);
  const delivered = (summary.journeys as { packets: number }[]).reduce((n, j) => n + j.packets, 0);
  const lost = summary.lost_events as number;
  return { delivered, lost, perSecond: delivered / elapsed, seconds: elapsed, rss };
}

/** User space alone, on one core: recorded ring batches decoded and grouped into journeys. */
function replay(seconds: number) {
  const one = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'demo-ipv4.batch'));
  const batch = Buffer.concat(Array(1024).fill(one)); // one wake-up's worth of records
  const journeys = new FlowJourneys(1000);
  const names = new Map<number, string>();
  let events = 0;
  const started = process.hrtime.bigint();
  const until = started + BigInt(seconds * 1e9);
  while (process.hrtime.bigint() < until) {
    decodeBatch(batch, (ev) => {
      ev.netns_name = names.get(ev.netns) ?? null;
      if (ev.kind !== 'route') journeys.add(ev);
      events++;
    });
  }
  return events / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** The tools the baselines run: one line and exit 2 when one is missing. */
function requireTools(): void {
  const missing = ['bpftrace', 'iperf3', 'sockperf', 'ping'].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    console.error(`bench: needs ${missing.join(', ')} (apt-get install -y bpftrace iperf3 sockperf iputils-ping)`);
    process.exit(2);
  }
}

async function main() {
  requireTools();
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`;
  const s = await withTracefs(() => startup(10));
  const o = await withTracefs(() => overhead(3, 5));
  const f = await flood(30);
  const r = replay(5);
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  const faster = (ratio: number) => (ratio >= 1 ? `${ratio.toFixed(1)}x faster` : `${(1 / ratio).toFixed(1)}x slower`);
  const n = (x: number) => Math.round(x).toLocaleString('en');
  const steady = f.rss.slice(2); // after the first two seconds: buffers sized, code optimised
  const report = [
    `# tracepkt benchmark, ${new Date().toISOString().slice(0, 10)}`,
    '',
    `Machine: ${machine}. Each ratio is against a baseline measured in the same run.`,
    '',
    '| what | tracepkt | baseline | ratio |',
    '| --- | --- | --- | --- |',
    `| start-up: launch to first packet traced (median of 10) | ${s.tracepkt.toFixed(0)} ms | bpftrace ${s.bpftrace.toFixed(0)} ms | ${faster(s.bpftrace / s.tracepkt)} |`,
    `| start-up: launch to the "start" line (attached, median of 10) | ${s.ready.toFixed(0)} ms | | |`,
    `| TCP throughput, veth + bridge, filter not matching (median of 5) | ${o.tracepkt.gbps.toFixed(2)} Gbit/s | untraced ${o.untraced.gbps.toFixed(2)} Gbit/s | ${pct(o.tracepkt.gbps / o.untraced.gbps)} of untraced |`,
    `| same, bpftrace attached | ${o.bpftrace.gbps.toFixed(2)} Gbit/s | untraced ${o.untraced.gbps.toFixed(2)} Gbit/s | ${pct(o.bpftrace.gbps / o.untraced.gbps)} of untraced |`,
    `| same, empty programs on tracepkt's 4 hooks: the cost of hooking at all | ${o.empty.gbps.toFixed(2)} Gbit/s | untraced ${o.untraced.gbps.toFixed(2)} Gbit/s | ${pct(o.empty.gbps / o.untraced.gbps)} of untraced |`,
    `| TCP request/response rate, same path (median of 5) | ${n(o.tracepkt.rate)} /s | untraced ${n(o.untraced.rate)} /s | ${pct(o.tracepkt.rate / o.untraced.rate)} of untraced |`,
    `| same, empty programs on tracepkt's 4 hooks | ${n(o.empty.rate)} /s | untraced ${n(o.untraced.rate)} /s | ${pct(o.empty.rate / o.untraced.rate)} of untraced |`,
    `| same, bpftrace attached | ${n(o.bpftrace.rate)} /s | untraced ${n(o.untraced.rate)} /s | ${pct(o.bpftrace.rate / o.untraced.rate)} of untraced |`,
    `| events delivered, decoded, grouped (ping flood on loopback, ${f.seconds.toFixed(0)} s) | ${n(f.perSecond)} events/s | ${n(f.delivered)} delivered | ${n(f.lost)} lost (${pct(f.lost / (f.delivered + f.lost))}) |`,
    `| resident memory during the flood, per second | ${Math.min(...steady).toFixed(0)}-${Math.max(...steady).toFixed(0)} MB | first ${f.rss[0].toFixed(0)} MB, last ${f.rss[f.rss.length - 1].toFixed(0)} MB | |`,
    `| user space alone: recorded batches decoded and grouped, one core | ${n(r)} events/s | | |`,
    '',
  ].join('\n');
  process.stdout.write(report);
  fs.writeFileSync(path.join(ROOT, 'bench', 'results.md'), report);
}

main().catch((err) => {
  console.error(`bench: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
});
