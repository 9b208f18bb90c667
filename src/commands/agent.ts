/**
 * `tracepkt agent --listen ADDR:PORT --token-file FILE`: serve traces of
 * this host to coordinators holding the token (src/cluster/agent.ts), until
 * Ctrl-C or SIGTERM. One line when ready; one line per connection refused
 * and per trace begun and ended.
 */
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { withPort } from '../addr';
import { TracepktError } from '../errors';
import { requireTracingPrivileges } from '../privileges';
import { shown } from '../render/shown';
import type { Output } from './output';
import { credentialFiles, type CredentialFiles } from '../cluster/credential-files';

export const AGENT_USAGE = `Usage: tracepkt agent --listen ADDR:PORT --token-file FILE [--name NAME]
       tracepkt agent --listen ADDR:PORT --cert FILE --key FILE --ca FILE [--name NAME]

Serves traces of this host to a coordinator (tracepkt --node NAME=ADDR:PORT ...) that holds the
same token, or a certificate the same CA signs, until Ctrl-C or SIGTERM.

      --listen ADDR:PORT   where to listen: 192.0.2.10:7447, [2001:db8::10]:7447, 0.0.0.0:7447
      --token-file FILE    the shared token: one line of at least 22 random characters, in a file
                           only its owner (this user) can read: head -c 32 /dev/urandom | base64 > FILE
      --cert FILE          instead of a token (mutual TLS): this agent's certificate (PEM), which
                           must name the address coordinators dial (an IP address SAN);
      --key FILE           its private key (PEM; a file only its owner can read);
      --ca FILE            the CA certificate(s) that sign the coordinators' certificates
      --name NAME          this node's name in journeys (default: the host name)

With a token, connections are TLS 1.2 keyed by it (ECDHE-PSK, ChaCha20-Poly1305): a peer without it
fails the handshake; with certificates, TLS 1.3, and a peer without a certificate the CA signs fails
it. A coordinator may only ask for traces: a tcpdump filter, or a probe it sends (known by its
marker or flow), for a bounded time and number of events; what a trace attaches goes when it ends,
also when its coordinator goes silent for its lease.`;

export interface AgentCommandOptions {
  host: string;
  port: number;
  credentials: CredentialFiles;
  name?: string;
}

/** "192.0.2.10:7447", "[2001:db8::1]:7447" → host and port. */
export function parseListen(text: string): { host: string; port: number } {
  // An IPv6 address without brackets too, as an orchestrator writes $(HOST_IP):7447: what is before the last colon.
  const bare = /^([0-9a-fA-F:.]+):(\d{1,5})$/.exec(text);
  if (bare && isIP(bare[1]) === 6 && Number(bare[2]) >= 1 && Number(bare[2]) <= 65535) return { host: bare[1], port: Number(bare[2]) };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new TracepktError(`--listen ${text}: give ADDR:PORT, e.g. 0.0.0.0:7447 or [::]:7447`);
  const host = m[1] ?? m[2];
  if (!isIP(host)) throw new TracepktError(`--listen ${text}: ${host} is not an IP address`);
  return { host, port };
}

export function parseAgentArgs(argv: string[]): AgentCommandOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string' }, 'token-file': { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' },
        name: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new TracepktError(`agent: ${(err as Error).message.split(/\.\s|\n/)[0]} (see tracepkt agent --help)`);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.listen === undefined) throw new TracepktError('agent: --listen ADDR:PORT is required (see tracepkt agent --help)');
  const credentials = credentialFiles(v, 'agent: ');
  if (!credentials) throw new TracepktError('agent: --token-file FILE (or --cert, --key and --ca) is required (see tracepkt agent --help)');
  // A Kubernetes node's name is a DNS subdomain: up to 253 characters.
  if (v.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(v.name)) {
    throw new TracepktError('agent: --name takes letters, digits, ".", "_" and "-" (at most 253)');
  }
  return { ...parseListen(v.listen), credentials, name: v.name };
}

export async function agentCommand(o: AgentCommandOptions, io: Output, signal?: AbortSignal): Promise<number> {
  const { readCredentials } = await import('../cluster/credentials'); // node:crypto: loaded by the commands that need it
  const credentials = readCredentials(o.credentials);
  requireTracingPrivileges();
  const [{ Agent }, { openPassiveTracer }, { openProbeWitness }] = await Promise.all([import('../cluster/agent'), import('./passive'), import('../probe/witness')]);
  const agent = new Agent({
    host: o.host,
    port: o.port,
    credentials,
    node: o.name,
    openTrace: (what) => ('probe' in what ? openProbeWitness(what.probe) : openPassiveTracer(what.filter)),
    log: (line) => io.err(shown(`tracepkt agent: ${line}`)),
  });
  const address = await agent.listen();
  io.err(shown(`tracepkt agent: listening on ${withPort(address.address, address.port)} as node ${agent.node}; Ctrl-C to stop`));
  await new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  await agent.close();
  return 0;
}
