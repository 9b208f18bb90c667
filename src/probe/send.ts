/**
 * The TCP/UDP probe, run as its own process (like ping) so that it can be
 * started inside another namespace and tied to the trace by its pid:
 *
 *   node send.js tcp|udp ADDRESS PORT SOURCE_ADDRESS SOURCE_PORT TIMEOUT_SECONDS
 *
 * The source address and port are bound, not left to the kernel: the
 * tracer matches the flow exactly (src/probe/flow.ts chose them).
 * Prints one line saying what came back; exit status 0 when the target
 * answered (TCP: SYN-ACK or RST; UDP: a datagram), 1 when nothing did or an
 * ICMP error came instead, 3 when the probe could not be sent.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

const [proto, address, portArg, localAddressArg, sourcePortArg, timeoutArg] = process.argv.slice(2);
// The unspecified address: the sender had no route; let the kernel say so.
const localAddress = /^(0\.0\.0\.0|::)$/.test(localAddressArg) ? undefined : localAddressArg;
const port = Number(portArg);
const localPort = Number(sourcePortArg);
const timeoutMs = Number(timeoutArg) * 1000;
// A resolved address (the parent checked it): IPv6 has colons, IPv4 never (net.isIPv6 compiles a 12 ms regex).
const family = address.includes(':') ? 6 : 4;

function done(line: string, status: number): never {
  process.stdout.write(`${line}\n`);
  process.exit(status);
}

/** Errors the kernel reports from an ICMP error or a failed route. */
const NO_ANSWER = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'ECONNREFUSED', 'EACCES', 'EPERM', 'EMSGSIZE']);

if (proto === 'tcp') {
  const socket = net.connect({ host: address, port, localAddress, localPort, family });
  const timer = setTimeout(() => done('no answer', 1), timeoutMs);
  socket.on('connect', () => {
    clearTimeout(timer);
    // One connection attempt, no more: reset rather than a full close.
    socket.resetAndDestroy();
    done('SYN-ACK: port open', 0);
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    if (err.code === 'ECONNREFUSED') done('RST: port closed', 0);
    // The handshake completed and a reset followed before the connection was handed to us (a
    // server that accepts and resets at once): the target answered.
    if (err.code === 'ECONNRESET') done('SYN-ACK, then reset by the server', 0);
    if (err.code === 'EADDRINUSE') done(`source port ${localPort} in use`, 3);
    done(`${err.code ?? 'error'}: ${err.message}`, NO_ANSWER.has(err.code ?? '') ? 1 : 3);
  });
} else if (proto === 'udp') {
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  const timer = setTimeout(() => done('no answer', 1), timeoutMs);
  socket.on('message', () => done('UDP answer', 0));
  socket.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    if (err.code === 'ECONNREFUSED') done('ICMP port unreachable', 1);
    if (err.code === 'EADDRINUSE') done(`source port ${localPort} in use`, 3);
    done(`${err.code ?? 'error'}: ${err.message}`, NO_ANSWER.has(err.code ?? '') ? 1 : 3);
  });
  socket.bind(localPort, localAddress, () =>
    socket.connect(port, address, () => socket.send(Buffer.from('tracepkt probe\n'))),
  );
} else {
  done(`unknown protocol ${proto}`, 3);
}
