/**
 * The command line: parse, run one command, report one error once, exit.
 * A thin layer over the commands and the library.
 */
import { shown } from './render/shown';
import { parseArgs } from 'node:util';
import { TracepktError } from './errors';
import { processOutput, type Output } from './commands/output';
import { colourWanted } from './render/colour';
import type { NodeAddress } from './cluster/remote';
import { credentialFiles, type CredentialFiles } from './cluster/credential-files';

export const USAGE = `Usage:
  tracepkt [options] TARGET   trace probes to TARGET (an IP address, a host name, or a
                              namespace as NETNS below: its address): ICMP echo,
                              or a TCP connection attempt / UDP datagram with --tcp / --udp
  tracepkt --filter EXPR      trace existing traffic matching EXPR, everywhere, until Ctrl-C
  tracepkt demo               trace a ping into a throwaway Docker-like lab
  tracepkt mangle DEV ...     alter packets on DEV (TTL, TCP flags, drops) to reproduce field
                              bugs, until Ctrl-C (tracepkt mangle --help)
  tracepkt agent ...          serve traces of this host to other nodes' tracepkt, until Ctrl-C
                              (tracepkt agent --help)
  tracepkt doctor             check what this kernel allows
  tracepkt cleanup            remove what a killed run left behind

Options:
  -c, --count N          probes to send (default 1; ICMP only)
      --tcp PORT         send one TCP connection attempt to PORT (SYN; SYN-ACK or RST back)
      --udp PORT         send one UDP datagram to PORT
  -4, -6                 use IPv4 / IPv6 only
      --from NETNS       send from network namespace NETNS, named as tracepkt names it:
                         an ip netns name, host, docker:NAME|ID, podman:NAME, pod:NAME or
                         pod:NAMESPACE/NAME, pid:PID, or a path such as /proc/PID/ns/net
      --timeout SECONDS  time to wait for each reply (default 2)
      --ttl N            TTL / hop limit of the probes (1-255)
      --size BYTES       ICMP payload size (32-65000, default 56)
      --filter EXPR      with no TARGET: passive tracing. EXPR is a tcpdump filter (man pcap-filter,
                         compiled by libpcap), on the packet from its IP header; it also selects an
                         ICMP error by the packet it quotes, and a tunnelled packet by either its
                         outer or its inner packet. With -c N: stop after N journeys. Examples:
                           'tcp port 443 and host 10.0.0.2'     'icmp[icmptype] == icmp-echo'
                           'tcp[tcpflags] & tcp-syn != 0'       'udp portrange 9990-9999'
                           'ip6 and greater 1000'               'ip[8] < 5' (TTL below 5)
      --node NAME=ADDR:PORT  trace node NAME too, through its agent (tracepkt agent) at
                         ADDR:PORT; repeat for more nodes. A probe's journey is stitched across
                         them by its packets (and a tunnel's outer headers); events carry their node
      --token-file FILE  the token the agents were started with (with --node)
      --cert FILE --key FILE --ca FILE  instead of a token (mutual TLS): this side's certificate
                         and key, and the CA that signs the agents' (whose certificates must name
                         the address dialled)
      --json             JSON Lines on stdout: one event per line (docs/json.md)
  -q, --quiet            only the summary (with --json: the start and summary lines only)
      --pcap FILE        also write every sighted packet to FILE (pcapng, for Wireshark/tshark)
      --html FILE        also write the journey to FILE: one self-contained page with a diagram
  -h, --help             this help
      --version          the version

Exit status: 0 an answer came back (echo reply; SYN-ACK or RST; UDP datagram), 1 none did,
2 or more tracepkt could not run.`;

/** The --node options given, checked: each name once, and the token with them. */
function nodesOf(given: string[] | undefined, credentials: CredentialFiles | undefined): NodeAddress[] | undefined {
  const nodes = given?.map(nodeAddress);
  if (nodes && credentials === undefined) throw new TracepktError('--node needs --token-file FILE (the token its agent was started with), or --cert, --key and --ca');
  if (!nodes && credentials !== undefined) throw new TracepktError(`${'tokenFile' in credentials ? '--token-file' : '--cert, --key and --ca'} go with --node`);
  const names = new Set<string>();
  for (const n of nodes ?? []) {
    if (names.has(n.name)) throw new TracepktError(`--node ${n.name} is given twice`);
    names.add(n.name);
  }
  return nodes;
}

/** --node NAME=ADDR:PORT: a node's name in journeys, and where its agent listens (ADDR an address or a host name). */
function nodeAddress(text: string): NodeAddress {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,252})=(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[4]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new TracepktError(`--node ${text}: give NAME=ADDR:PORT, e.g. node2=192.0.2.12:7447 (NAME: letters, digits, ".", "_", "-")`);
  }
  return { name: m[1], host: m[2] ?? m[3], port };
}

function intInRange(name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new TracepktError(`${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  }
  return Number(value);
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  return value === undefined ? fallback : intInRange(name, value, 1, 65535);
}

function positiveSeconds(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > 3600) {
    throw new TracepktError(`${name} must be a number of seconds above 0, not "${value}"`);
  }
  return n;
}

/**
 * parseArgs reads `-c -1` as an option missing its value; join such pairs so
 * the user hears that -1 is not a valid count rather than a parser riddle.
 */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (['-c', '--count', '--timeout', '--ttl', '--size'].includes(argv[i]) && /^-\d/.test(argv[i + 1] ?? '')) {
      out.push(`${argv[i] === '-c' ? '--count' : argv[i]}=${argv[++i]}`);
    } else out.push(argv[i]);
  }
  return out;
}

function service(tcp: string | undefined, udp: string | undefined): { proto: 'tcp' | 'udp'; port: number } | undefined {
  if (tcp !== undefined && udp !== undefined) throw new TracepktError('--tcp and --udp exclude each other');
  if (tcp !== undefined) return { proto: 'tcp', port: intInRange('--tcp', tcp, 1, 65535) };
  if (udp !== undefined) return { proto: 'udp', port: intInRange('--udp', udp, 1, 65535) };
  return undefined;
}

/** What the command line asks for, checked: nothing has run yet. */
export type Command =
  | { kind: 'print'; text: string }
  | { kind: 'mangle'; options: import('./commands/mangle').MangleCommandOptions }
  | { kind: 'agent'; options: import('./commands/agent').AgentCommandOptions }
  | { kind: 'passive'; options: { filter: string; count: number | undefined; json: boolean; quiet: boolean | undefined; nodes?: NodeAddress[]; credentials?: CredentialFiles } }
  | { kind: 'demo' | 'doctor' | 'cleanup' }
  | { kind: 'trace'; options: Omit<import('./commands/trace').TraceCommandOptions, 'colour'> };

/**
 * Reads the command line: every error the user can make with it is a
 * TracepktError here, before anything is loaded or sent (the fuzz tests
 * hold it to that).
 */
export function parseCommand(argv: string[]): Command {
  // Each command's code is loaded when it runs, not before: a traced ping's start waits on every module loaded first.
  if (argv[0] === 'agent') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { parseAgentArgs, AGENT_USAGE } = require('./commands/agent') as typeof import('./commands/agent');
    const options = parseAgentArgs(argv.slice(1));
    return options === 'help' ? { kind: 'print', text: AGENT_USAGE } : { kind: 'agent', options };
  }
  if (argv[0] === 'mangle') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { parseMangleArgs, MANGLE_USAGE } = require('./commands/mangle') as typeof import('./commands/mangle');
    const options = parseMangleArgs(argv.slice(1));
    return options === 'help' ? { kind: 'print', text: MANGLE_USAGE } : { kind: 'mangle', options };
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(argv),
      allowPositionals: true,
      options: {
        count: { type: 'string', short: 'c' },
        timeout: { type: 'string' },
        from: { type: 'string' },
        ttl: { type: 'string' },
        tcp: { type: 'string' },
        udp: { type: 'string' },
        filter: { type: 'string' },
        node: { type: 'string', multiple: true },
        'token-file': { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        ca: { type: 'string' },
        size: { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        pcap: { type: 'string' },
        html: { type: 'string' },
        '4': { type: 'boolean', short: '4' },
        '6': { type: 'boolean', short: '6' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new TracepktError(`${(err as Error).message.split(/\.\s|\n/)[0]} (see tracepkt --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: 'print', text: USAGE };
  if (values.version) return { kind: 'print', text: require('../../package.json').version };
  if (values['4'] && values['6']) throw new TracepktError('-4 and -6 exclude each other');
  if (values.filter !== undefined) {
    if (positionals.length > 0) throw new TracepktError('--filter traces existing traffic: give no target with it');
    if (values.pcap !== undefined || values.html !== undefined) throw new TracepktError('--pcap and --html go with probes, not with --filter (yet)');
    if (values.from !== undefined || values.tcp !== undefined || values.udp !== undefined) {
      throw new TracepktError('--filter traces every namespace and sends nothing: --from, --tcp and --udp do not go with it');
    }
    const count = values.count === undefined ? undefined : positiveInt('--count', values.count, 1);
    const credentials = credentialFiles(values);
    const nodes = nodesOf(values.node, credentials);
    return { kind: 'passive', options: { filter: values.filter, count, json: values.json ?? false, quiet: values.quiet, nodes, credentials } };
  }
  const credentials = credentialFiles(values);
  const nodes = nodesOf(values.node, credentials);
  if (nodes && (values.pcap !== undefined || values.html !== undefined)) throw new TracepktError('--pcap and --html do not go with --node yet');
  if (positionals.length !== 1) {
    throw new TracepktError(positionals.length === 0 ? 'no target given (see tracepkt --help)' : `one target only, got: ${positionals.join(' ')}`);
  }
  const [command] = positionals;
  if (command === 'demo' || command === 'doctor' || command === 'cleanup') return { kind: command };
  const options = {
    target: command,
    family: values['4'] ? (4 as const) : values['6'] ? (6 as const) : undefined,
    count: positiveInt('--count', values.count, 1),
    timeout: positiveSeconds('--timeout', values.timeout, 2),
    from: values.from,
    ttl: values.ttl === undefined ? undefined : intInRange('--ttl', values.ttl, 1, 255),
    size: values.size === undefined ? undefined : intInRange('--size', values.size, 32, 65000),
    json: values.json ?? false,
    quiet: values.quiet,
    pcap: values.pcap,
    html: values.html,
    service: service(values.tcp, values.udp),
    nodes,
    credentials,
  };
  if (options.service && values.count !== undefined) throw new TracepktError('--count goes with ICMP probes only: --tcp and --udp send one');
  return { kind: 'trace', options };
}

export async function main(argv: string[], io: Output = processOutput, signal?: AbortSignal): Promise<number> {
  const command = parseCommand(argv);
  // Colour only for a person at a terminal: never piped, never with NO_COLOR.
  const colour = io === processOutput && colourWanted(process.stdout);
  switch (command.kind) {
    case 'print':
      io.out(command.text);
      return 0;
    case 'mangle':
      return (await import('./commands/mangle')).mangleCommand(command.options, io, signal);
    case 'agent':
      return (await import('./commands/agent')).agentCommand(command.options, io, signal);
    case 'passive':
      return (await import('./commands/passive')).passiveCommand({ ...command.options, colour }, io, signal);
    case 'demo':
      return (await import('./commands/demo')).demoCommand(io, signal, colour);
    case 'doctor':
      return (await import('./commands/doctor')).doctorCommand(io);
    case 'cleanup':
      return (await import('./commands/cleanup')).cleanupCommand(io);
    case 'trace':
      return (await import('./commands/trace')).traceCommand({ ...command.options, colour }, io, signal);
  }
}

/** Entry point of bin/tracepkt. */
export function run(): void {
  const abort = new AbortController();
  const signals: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [sig, code] of Object.entries(signals)) {
    process.on(sig, () => {
      // First signal: stop the probe and clean up. Second: leave now; the
      // kernel still frees our programs and links with our file descriptors.
      if (abort.signal.aborted) process.exit(code);
      process.exitCode = code;
      abort.abort();
    });
  }
  /** Many lines from elsewhere (a verifier log, a stack naming the message): each shown, the line breaks kept. */
  const shownLines = (text: string) => text.split('\n').map(shown).join('\n');
  main(process.argv.slice(2), processOutput, abort.signal).then(
    (code) => {
      if (!abort.signal.aborted) process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof TracepktError) {
        // Messages quote what the user typed and what the system said (names, other programs): shown, never obeyed.
        process.stderr.write(`tracepkt: ${shown(err.message)}\n`);
        // The kernel verifier's log and libbpf's messages, for whoever debugs the programs.
        if (process.env.TRACEPKT_DEBUG && 'log' in err && err.log) process.stderr.write(`${shownLines(String(err.log))}\n`);
        process.exitCode = err.exitCode;
      } else {
        process.stderr.write(`tracepkt: internal error: ${shown(String((err as Error)?.message ?? err))}\n`);
        if (process.env.TRACEPKT_DEBUG) process.stderr.write(`${shownLines(String((err as Error)?.stack))}\n`);
        process.exitCode = 70;
      }
    },
  );
}
