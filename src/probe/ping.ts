/**
 * The probe: iputils ping, run with a payload pattern that marks its packets.
 *
 * Why a payload marker and not ping's ICMP id or pid: with ICMP datagram
 * sockets (net.ipv4.ping_group_range) the kernel picks the id, and other
 * pings may run at the same moment. The kernel filter matches 8 random bytes
 * at a fixed place instead, which echo replies carry back unchanged.
 *
 * Where: ping fills its payload with `-p PATTERN` from the first data byte,
 * then writes its 16-byte timestamp over the start. With a 16-byte pattern
 * (the marker twice), bytes 16..23 of the data, i.e. ICMP offset 24, always
 * hold the marker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from '../random';
import { inNetns } from '../names/netns-path';

export const MARKER_OFFSET = 8 /* ICMP echo header */ + 16; /* ping's timestamp */

export function newMarker(): Buffer {
  return randomBytes(8);
}

export interface PingOptions {
  address: string;
  family: 4 | 6;
  count: number;
  /** Seconds to wait for each reply. */
  timeout: number;
  marker: Buffer;
  /** A path to a network namespace to send from (bind mount or /proc/PID/ns/net). */
  netnsPath?: string;
  ttl?: number;
  /** ICMP payload bytes (default 56). At least 24 + 8, so the marker fits. */
  size?: number;
}

/**
 * The command line that sends the probe. Not quiet: ping's line per reply
 * says which probes were answered, a witness beside the trace. `-M do`: the
 * probes carry DF and are never fragmented by their sender, so a link too
 * small on the way, the sender's own included, is found and named.
 */
export function pingCommand(o: PingOptions): string[] {
  const ping = [
    'ping',
    `-${o.family}`,
    '-n',
    '-c', String(o.count),
    '-i', '0.2',
    '-W', String(o.timeout),
    '-M', 'do',
    '-p', o.marker.toString('hex').repeat(2),
  ];
  if (o.ttl !== undefined) ping.push('-t', String(o.ttl));
  if (o.size !== undefined) ping.push('-s', String(o.size));
  ping.push(o.address);
  return inNetns(o.netnsPath, ping);
}

/**
 * A probe command started under a shell that waits for a line on its stdin
 * before it execs the command, keeping its pid: the tracer registers the pid
 * in between, so not even the probe's first route lookup escapes.
 */
export function gatedCommand(argv: string[], netnsPath?: string): string[] {
  const gated = ['sh', '-c', 'read _ && exec "$@"', 'tracepkt-probe', ...argv];
  return inNetns(netnsPath, gated);
}

export function launchCommand(o: PingOptions): string[] {
  return gatedCommand(pingCommand({ ...o, netnsPath: undefined }), o.netnsPath);
}

/** What ping itself reported: which probes it got an answer to, and the errors it met sending. */
export interface PingReport {
  /** Sequence numbers ping received an echo reply for (duplicates once). */
  answered: Set<number>;
  /** Probes ping says it sent ("N packets transmitted"); null if it never said. */
  transmitted: number | null;
  /** "local error" lines: the kernel refused to send (EMSGSIZE: larger than the MTU on the way out). */
  localErrors: string[];
  /** The MTU a local error named, if any. */
  localMtu: number | null;
}

/** Reads iputils ping's output (its reply lines, its statistics, its local errors on stderr). */
export function parsePingOutput(stdout: string, stderr: string): PingReport {
  const answered = new Set<number>();
  for (const m of stdout.matchAll(/^\d+ bytes from \S+: icmp_seq=(\d+) /gm)) answered.add(Number(m[1]));
  const stats = /^(\d+) packets transmitted/m.exec(stdout);
  const localErrors = stderr.split('\n').filter((l) => /local error/.test(l));
  const mtu = /local error: message too long, mtu[=:] ?(\d+)/.exec(stderr);
  return { answered, transmitted: stats ? Number(stats[1]) : null, localErrors, localMtu: mtu ? Number(mtu[1]) : null };
}

/** The Debian packages that provide the commands we run. */
const PROVIDERS: Record<string, string> = { ping: 'iputils-ping', nsenter: 'util-linux', sh: 'dash' };

export interface ProbeRun {
  child: ChildProcess;
  /** The probe's exit status (0: an answer came, 1: none), what it said on stdout and on stderr. */
  done: Promise<{ status: number; stdout: string; stderr: string }>;
}

/**
 * A probe must not outlive us, even when we are killed with SIGKILL. The
 * kernel's parent-death signal would do, but ping carries file capabilities
 * and exec clears the signal for such programs; so a small shell of ours
 * waits on a pipe only we hold: when we die, however, the kernel closes it,
 * its read returns and it kills the probe. No polling: it sleeps in read.
 * When the probe ends first, we kill the shell.
 */
function guardChild(pid: number): ChildProcess | undefined {
  const guard = spawn('sh', ['-c', 'read _; kill -KILL "$0" 2>/dev/null', String(pid)], { stdio: ['pipe', 'ignore', 'ignore'] });
  guard.on('error', () => undefined); // without a shell: no guard, the probe ends with its count
  guard.stdin?.on('error', () => undefined);
  return guard;
}

/** Starts a gated command (gatedCommand); `register(pid)` runs before the command does. */
export interface GatedProbe extends ProbeRun {
  /** Registers the probe's pid (`register` runs before the command does), then lets it go. */
  open(register: (pid: number) => void): void;
}

/**
 * Starts a gated command (gatedCommand), held at its gate: the fork and
 * exec cost the event loop tens of milliseconds, so the caller starts it
 * while the kernel verifies the programs, and opens the gate once they are
 * attached. Never opened: it ends when its stdin closes (killed with us).
 */
export function spawnGated(argv: string[]): GatedProbe {
  const [cmd, ...args] = argv;
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const guard = child.pid === undefined ? undefined : guardChild(child.pid);
  child.on('close', () => guard?.kill('SIGKILL')); // the probe is gone: nothing for the guard to do
  child.stdin?.on('error', () => undefined); // a child that died early: reported by its exit
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      resolve({
        status: 127,
        stdout: '',
        stderr: err.code === 'ENOENT' ? `${cmd} not found: install ${PROVIDERS[cmd] ?? cmd}` : `${cmd}: ${err.message}`,
      }),
    );
    child.on('close', (code, signal) => resolve({ status: code ?? (signal ? 128 : 2), stdout: stdout.trim(), stderr: stderr.trim() }));
  });
  const open = (register: (pid: number) => void) => {
    try {
      if (child.pid !== undefined) register(child.pid);
    } catch (err) {
      child.kill('SIGKILL'); // never let it go on, unregistered
      throw err;
    }
    child.stdin?.end('\n');
  };
  return { child, done, open };
}

export function startGated(argv: string[], register: (pid: number) => void): ProbeRun {
  const probe = spawnGated(argv);
  probe.open(register);
  return probe;
}
