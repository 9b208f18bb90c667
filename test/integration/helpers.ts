/** Running the real CLI against labs of real namespaces, and looking at what the kernel holds. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
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

/** Two namespaces joined by a veth pair (eth0 each side): a at NET.1, b at NET.2 of a /24. */
export function pairLab(lab: Lab, net = '10.88.0', roles: [string, string] = ['a', 'b']) {
  const a = lab.netns(roles[0]);
  const b = lab.netns(roles[1]);
  lab.veth(a, 'eth0', b, 'eth0');
  lab.addr(a, 'eth0', `${net}.1/24`);
  lab.addr(b, 'eth0', `${net}.2/24`);
  return { a, b };
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

/** The running kernel is at least a.b (from uname, not from tracepkt's own measurements). */
export function kernelAtLeast(a: number, b: number): boolean {
  const [major, minor] = os.release().split('.').map(Number);
  return major > a || (major === a && minor >= b);
}

/**
 * Names of our programs (bpftool gives them whole, from BTF) and maps. Before
 * 5.17 kfree_skb has no reason (the program that reads the place alone);
 * before 5.12 the compat object passes subprogram arguments in two maps.
 */
export const OUR_PROGRAMS = ['tp_net_dev_queue', 'tp_netif_receive_skb', kernelAtLeast(5, 17) ? 'tp_kfree_skb' : 'tp_kfree_skb_no_reason', 'tp_consume_skb', 'tp_fib_table_lookup', 'tp_fib6_table_lookup'];
export const OUR_MAPS = ['tp_events', 'tp_stats', 'tp_current', 'tp_stacks', 'tp_senders', 'tp_skbs', 'tp_flows', 'tp_frags', 'tp_echoes', 'tp_bytes', 'tp_depth',
  ...(kernelAtLeast(5, 12) ? [] : ['tp_args', 'tp_args_depth']), 'tracepkt.rodata', 'tracepkt.bss'];

/** The ids of every BPF program, map and link of ours that the kernel holds now (checkpoints included). */
export function ourKernelObjects(): { progs: number[]; maps: number[]; links: number[]; names: string[] } {
  const json = (what: string) => JSON.parse(execFileSync('bpftool', ['-j', what, 'show'], { encoding: 'utf8' }) || '[]') as { id: number; name?: string; prog_id?: number }[];
  const progs = json('prog').filter((p) => /^tp_/.test(p.name ?? ''));
  const maps = json('map').filter((m) => OUR_MAPS.includes(m.name ?? ''));
  const ids = progs.map((p) => p.id);
  const links = json('link').filter((l) => ids.includes(l.prog_id ?? -1)).map((l) => l.id);
  return { progs: ids, maps: maps.map((m) => m.id), links, names: [...progs, ...maps].map((x) => x.name ?? '') };
}

/**
 * Waits until cond() holds, up to a generous limit: never a timing assertion. The limit is
 * minutes because the kernel matrix runs Node under software emulation, 10-20x slower (a
 * start-up that takes 0.4 s here took over 10 s in CI's 6.1 guest); a passing wait ends at once.
 */
export async function eventually(cond: () => boolean, limitMs = 120_000): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

/** Packets tcpdump may count as received but not write because they came while it stopped (see stop()). */
const ARRIVED_DURING_STOP_MAX = 2;

/**
 * tcpdump on one interface of one namespace: the independent witness of
 * what crossed it. Started and listening when this resolves; stop() waits
 * until the file stops growing, ends it, and returns the packets it saw
 * (its `-r` lines), having checked it dropped none.
 */
export async function capture(ns: string, iface: string, filter: string, o: { whole?: boolean; keep?: string } = {}): Promise<{ stop: () => Promise<string[]> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-cap-'));
  // keep: the capture file is the caller's, left where it says.
  const file = o.keep ?? path.join(dir, `${iface}.pcap`);
  // --immediate-mode: each packet is handed over (and, with -U, written) as it comes, not a block later.
  const dump = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', iface, '-nn', '--immediate-mode', '-U', '-s', '256', '-B', '16384', '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  dump.stderr!.on('data', (c) => (said += c));
  const closed = new Promise((resolve) => dump.once('close', resolve));
  if (!(await eventually(() => said.includes('listening')))) throw new Error(`tcpdump on ${iface} in ${ns} did not start: ${said}`);
  let stopped: Promise<string[]> | undefined;
  const stop = async (): Promise<string[]> => {
      try {
        // Written out when the file has not grown for half a second.
        for (let size = -1, still = 0, waited = 0; waited < 10_000 && still < 3; waited += 200) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          const now = fs.existsSync(file) ? fs.statSync(file).size : 0;
          still = now === size ? still + 1 : 0;
          size = now;
        }
        dump.kill('SIGINT');
        await closed;
        // Dropped by the kernel: lost. Received by the filter but not captured: still in tcpdump's buffer when
        // SIGINT came, i.e. arrived after the file had been still for 0.6 s (a periodic neighbour solicitation,
        // seen in CI's emulated guest). A few such are the stop's, not a loss; more would mean tcpdump was behind.
        const m = /(\d+) packets captured\n(\d+) packets received by filter\n(\d+) packets dropped by kernel/.exec(said);
        if (!m || m[3] !== '0' || Number(m[2]) - Number(m[1]) > ARRIVED_DURING_STOP_MAX) throw new Error(`tcpdump on ${iface} in ${ns} lost packets: ${said}`);
        const text = execFileSync('tcpdump', ['-r', file, '-nn', '-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        // whole: each packet on one line, what tcpdump decodes inside it (a tunnel's inner packet) included.
        if (o.whole) return text.replace(/\n(?!\d\d:)/g, ' ').split('\n').filter((l) => /^\d/.test(l));
        return text.split('\n').filter((l) => /^\d/.test(l));
      } finally {
        dump.kill('SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
      }
  };
  // Once: a test's finally may stop it again after a failure.
  return { stop: () => (stopped ??= stop()) };
}

/** A UDP server in a namespace that reads and discards; stopped by the returned function. */
export async function udpServer(ns: string, port: number, family: 4 | 6): Promise<() => void> {
  const code = `const s = require('dgram').createSocket('udp${family}'); s.on('message', () => {}); s.bind(${port}, () => console.log('ready'))`;
  const server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', () => reject(new Error(`UDP server on port ${port} in ${ns} did not start`)));
  });
  return () => server.kill('SIGKILL');
}

/**
 * Two nodes joined by an underlay, each with a bridge, a container behind a
 * veth pair, and a VXLAN device (VNI 42, port 4789) on the bridge: the shape
 * Docker Swarm, Flannel and Calico build. The underlay is a veth pair
 * between the nodes, or with `router` a router namespace between them; IPv4
 * (192.168.77.0/24) or, with `underlay6`, IPv6 (fd77::/64). The containers
 * have 10.99.0.1-2/24 and fd99::1-2/64.
 */
export function overlayLab(lab: Lab, o: { underlay6?: boolean; router?: boolean } = {}) {
  const n1 = lab.netns('n1');
  const n2 = lab.netns('n2');
  const c1 = lab.netns('c1');
  const c2 = lab.netns('c2');
  const under = (i: number) => (o.underlay6 ? `fd77::${i}` : `192.168.77.${i}`);
  const prefix = o.underlay6 ? 64 : 24;
  let r: string | null = null;
  if (o.router) {
    r = lab.netns('r');
    lab.veth(n1, 'u1', r, 'r1');
    lab.veth(n2, 'u2', r, 'r2');
    lab.forwarding(r);
    // Two underlay subnets: node 1 at .1 behind r1 (.11), node 2 at .2 behind r2 (.12).
    const sub = (i: number, host: number) => (o.underlay6 ? `fd7${i}::${host}` : `192.168.7${i}.${host}`);
    lab.addr(n1, 'u1', `${sub(1, 1)}/${prefix}`);
    lab.addr(r, 'r1', `${sub(1, 11)}/${prefix}`);
    lab.addr(n2, 'u2', `${sub(2, 2)}/${prefix}`);
    lab.addr(r, 'r2', `${sub(2, 12)}/${prefix}`);
    lab.route(n1, `${sub(2, 0)}/${prefix}`, 'via', sub(1, 11));
    lab.route(n2, `${sub(1, 0)}/${prefix}`, 'via', sub(2, 12));
  } else {
    lab.veth(n1, 'u1', n2, 'u2');
    lab.addr(n1, 'u1', `${under(1)}/${prefix}`);
    lab.addr(n2, 'u2', `${under(2)}/${prefix}`);
  }
  const endpoint = (i: number) => (o.router ? (o.underlay6 ? `fd7${i}::${i}` : `192.168.7${i}.${i}`) : under(i));
  const nodes = [n1, n2];
  const ctrs = [c1, c2];
  for (const i of [1, 2]) {
    const node = nodes[i - 1];
    const ctr = ctrs[i - 1];
    lab.veth(node, `vc${i}`, ctr, 'eth0');
    lab.addr(ctr, 'eth0', `10.99.0.${i}/24`);
    lab.addr(ctr, 'eth0', `fd99::${i}/64`);
    lab.ip(node, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', endpoint(i), 'remote', endpoint(3 - i), 'dstport', '4789', 'dev', `u${i}`);
    lab.bridge(node, 'br0', `vc${i}`, 'vx0');
    lab.ip(node, 'link', 'set', 'vx0', 'up');
  }
  // Orchestrators (Swarm, Flannel) program the containers' neighbours statically: no ARP or
  // neighbour discovery crosses the tunnel before the probe does.
  for (const i of [1, 2]) {
    const mac = (JSON.parse(lab.ip(ctrs[2 - i], '-j', 'link', 'show', 'eth0')) as { address: string }[])[0].address;
    lab.ip(ctrs[i - 1], 'neigh', 'replace', `10.99.0.${3 - i}`, 'lladdr', mac, 'dev', 'eth0', 'nud', 'permanent');
    lab.ip(ctrs[i - 1], '-6', 'neigh', 'replace', `fd99::${3 - i}`, 'lladdr', mac, 'dev', 'eth0', 'nud', 'permanent');
  }
  return { n1, n2, c1, c2, r, endpoints: [endpoint(1), endpoint(2)] as const };
}

/** A probe's round trip from c1 to c2 over the overlay, hop by hop; with `via`, the underlay's router hops. */
export function overlayJourney({ n1, n2, c1, c2, r }: { n1: string; n2: string; c1: string; c2: string; r: string | null }): string[][] {
  const request = [
    [c1, 'eth0', 'request', 'net_dev_queue'],
    [n1, 'vc1', 'request', 'netif_receive_skb'],
    [n1, 'vx0', 'request', 'net_dev_queue'],
    [n1, 'u1', 'request', 'net_dev_queue'],
    ...(r ? [[r, 'r1', 'request', 'netif_receive_skb'], [r, 'r2', 'request', 'net_dev_queue']] : []),
    [n2, 'u2', 'request', 'netif_receive_skb'],
    [n2, 'vx0', 'request', 'netif_receive_skb'],
    [n2, 'vc2', 'request', 'net_dev_queue'],
    [c2, 'eth0', 'request', 'netif_receive_skb'],
  ];
  const reply = [
    [c2, 'eth0', 'reply', 'net_dev_queue'],
    [n2, 'vc2', 'reply', 'netif_receive_skb'],
    [n2, 'vx0', 'reply', 'net_dev_queue'],
    [n2, 'u2', 'reply', 'net_dev_queue'],
    ...(r ? [[r, 'r2', 'reply', 'netif_receive_skb'], [r, 'r1', 'reply', 'net_dev_queue']] : []),
    [n1, 'u1', 'reply', 'netif_receive_skb'],
    [n1, 'vx0', 'reply', 'netif_receive_skb'],
    [n1, 'vc1', 'reply', 'net_dev_queue'],
    [c1, 'eth0', 'reply', 'netif_receive_skb'],
  ];
  return [...request, ...reply];
}

/**
 * A test PKI made with openssl: a CA, an agent certificate naming 127.0.0.1 and 10.61.0.2 (and one naming
 * 127.0.0.2), a coordinator's; another CA with a coordinator of its own.
 */
export function testPki(dir: string): (name: string, ca?: string) => { certFile: string; keyFile: string; caFile: string } {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const key = (name: string) => ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  const ca = (name: string) => {
    key(name);
    ssl('req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`);
  };
  const cert = (name: string, by: string, san?: string) => {
    key(name);
    ssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    // Agents' certificates for servers only, coordinators' for clients only (src/cluster/credentials.ts).
    fs.writeFileSync(path.join(dir, `${name}.ext`), san ? `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n` : 'extendedKeyUsage=clientAuth\n');
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.crt`, '-CAkey', `${by}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('rogue-ca');
  cert('agent', 'ca', 'IP:127.0.0.1,IP:10.61.0.2');
  cert('elsewhere', 'ca', 'IP:127.0.0.2');
  cert('coordinator', 'ca');
  cert('rogue', 'rogue-ca');
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.key')) fs.chmodSync(path.join(dir, f), 0o600);
  return (name, ca = 'ca') => ({ certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`), caFile: path.join(dir, `${ca}.crt`) });
}

