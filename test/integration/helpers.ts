/** Running the real CLI against labs of real namespaces, and looking at what the kernel holds. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { HopEvent } from '../../src/events';
import { buildDemoLab, DEMO } from '../../src/commands/demo';
import { Lab } from '../../src/lab/lab';
import { NetnsResolver } from '../../src/names/netns';

export const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'tracepkt');

export interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Hop events only. */
  events: HopEvent[];
  /** Every JSON line. */
  lines: Record<string, any>[];
  summary: Record<string, any> | undefined;
}

export function startCli(args: string[], prefix: string[] = []): ChildProcess {
  const [cmd, ...rest] = [...prefix, BIN, ...args];
  return spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
}

export function finished(child: ChildProcess): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve) =>
    child.on('close', (status, signal) => {
      const lines = args(child).includes('--json') ? stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
      resolve({
        status,
        signal,
        stdout,
        stderr,
        events: lines.filter((l) => l.kind === 'hop'),
        lines,
        summary: lines.find((l) => l.kind === 'summary'),
      });
    }),
  );
}

function args(child: ChildProcess): string[] {
  return child.spawnargs;
}

export function runCli(args: string[], prefix: string[] = []): Promise<CliRun> {
  return finished(startCli(args, prefix));
}

/** [namespace name, interface, direction, hook] per hop: what the tests assert, in order. */
export function hops(events: readonly HopEvent[]): string[][] {
  return events.map((e) => [e.netns_name ?? String(e.netns), e.ifname, e.dir, e.hook]);
}

/** Runs fn with a fresh lab and always destroys it. */
export async function withLab<T>(fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = new Lab();
  try {
    return await fn(lab);
  } finally {
    lab.destroy();
  }
}

export function netnsInode(name: string): number {
  const inode = new NetnsResolver().inodeOf(name);
  if (inode === null) throw new Error(`no namespace ${name}`);
  return inode;
}

/** The demo's Docker-like host: bridge docker0 in `host`, a container `ctr` behind a veth pair. */
export function bridgeLab(lab: Lab) {
  const { host, container, veth } = buildDemoLab(lab);
  return { host, ctr: container, veth, v4: DEMO.container.v4, v6: DEMO.container.v6 };
}

/** What one probe's round trip into the bridge lab must look like, hop by hop. */
export function bridgeJourney({ host, ctr, veth }: { host: string; ctr: string; veth: string }): string[][] {
  return [
    [host, 'docker0', 'request', 'net_dev_queue'],
    [host, veth, 'request', 'net_dev_queue'],
    [ctr, 'eth0', 'request', 'netif_receive_skb'],
    [ctr, 'eth0', 'reply', 'net_dev_queue'],
    [host, veth, 'reply', 'netif_receive_skb'],
    [host, 'docker0', 'reply', 'netif_receive_skb'],
  ];
}

/**
 * The demo's Docker-like host with an outside network: namespace `out`
 * (10.99.0.2) reaches the host's `ext` (10.99.0.1); the host forwards.
 * The demo lab already masquerades the containers' traffic leaving docker0.
 */
export function natLab(lab: Lab) {
  const topo = bridgeLab(lab);
  const out = lab.netns('out');
  lab.veth(topo.host, 'ext', out, 'eth0');
  lab.addr(topo.host, 'ext', '10.99.0.1/24');
  lab.addr(out, 'eth0', '10.99.0.2/24');
  lab.forwarding(topo.host);
  return { ...topo, out, hostExt: '10.99.0.1', outAddr: '10.99.0.2' };
}

/** A TCP server in a namespace that accepts and closes; stopped by the returned function. */
export async function tcpServer(ns: string, port: number): Promise<() => void> {
  const server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', `require('net').createServer((s) => s.end()).listen(${port}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', () => reject(new Error(`server on port ${port} in ${ns} did not start`)));
  });
  return () => server.kill('SIGKILL');
}

/** a — router — b, each link its own subnet; IPv4 and IPv6 forwarding in the router. */
export function routerLab(lab: Lab) {
  const a = lab.netns('a');
  const r = lab.netns('r');
  const b = lab.netns('b');
  lab.veth(a, 'eth0', r, 'ra');
  lab.veth(b, 'eth0', r, 'rb');
  lab.forwarding(r);
  lab.addr(a, 'eth0', '10.0.1.2/24');
  lab.addr(a, 'eth0', 'fd00:1::2/64');
  lab.addr(r, 'ra', '10.0.1.1/24');
  lab.addr(r, 'ra', 'fd00:1::1/64');
  lab.addr(r, 'rb', '10.0.2.1/24');
  lab.addr(r, 'rb', 'fd00:2::1/64');
  lab.addr(b, 'eth0', '10.0.2.2/24');
  lab.addr(b, 'eth0', 'fd00:2::2/64');
  lab.route(a, 'default', 'via', '10.0.1.1');
  lab.route(a, 'default', 'via', 'fd00:1::1');
  lab.route(b, 'default', 'via', '10.0.2.1');
  lab.route(b, 'default', 'via', 'fd00:2::1');
  return { a, r, b, v4: '10.0.2.2', v6: 'fd00:2::2' };
}

/** One probe's round trip from a to b through the router, hop by hop. */
export function routerJourney({ a, r, b }: { a: string; r: string; b: string }): string[][] {
  return [
    [a, 'eth0', 'request', 'net_dev_queue'],
    [r, 'ra', 'request', 'netif_receive_skb'],
    [r, 'rb', 'request', 'net_dev_queue'],
    [b, 'eth0', 'request', 'netif_receive_skb'],
    [b, 'eth0', 'reply', 'net_dev_queue'],
    [r, 'rb', 'reply', 'netif_receive_skb'],
    [r, 'ra', 'reply', 'net_dev_queue'],
    [a, 'eth0', 'reply', 'netif_receive_skb'],
  ];
}

/** Names of our programs (bpftool gives them whole, from BTF) and maps. */
export const OUR_PROGRAMS = ['tp_net_dev_queue', 'tp_netif_receive_skb', 'tp_kfree_skb', 'tp_fib_table_lookup', 'tp_fib6_table_lookup'];
export const OUR_MAPS = ['tp_events', 'tp_stats', 'tp_current', 'tp_senders', 'tp_skbs', 'tracepkt.rodata', 'tracepkt.bss'];

/** The ids of every BPF program, map and link of ours that the kernel holds now (checkpoints included). */
export function ourKernelObjects(): { progs: number[]; maps: number[]; links: number[]; names: string[] } {
  const json = (what: string) => JSON.parse(execFileSync('bpftool', ['-j', what, 'show'], { encoding: 'utf8' }) || '[]') as { id: number; name?: string; prog_id?: number }[];
  const progs = json('prog').filter((p) => /^tp_/.test(p.name ?? ''));
  const maps = json('map').filter((m) => OUR_MAPS.includes(m.name ?? ''));
  const ids = progs.map((p) => p.id);
  const links = json('link').filter((l) => ids.includes(l.prog_id ?? -1)).map((l) => l.id);
  return { progs: ids, maps: maps.map((m) => m.id), links, names: [...progs, ...maps].map((x) => x.name ?? '') };
}

/** Waits until cond() holds, up to a generous limit: never a timing assertion. */
export async function eventually(cond: () => boolean, limitMs = 10_000): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}
