/**
 * TLS between agents and coordinators, keyed by the shared token: TLS 1.2
 * with a pre-shared key (RFC 4279) and an ephemeral ECDH exchange, sealed
 * with ChaCha20-Poly1305. Both sides prove the token by completing the
 * handshake (a wrong one fails it: bad record MAC); nobody sends it; a
 * recorded session stays sealed even if the token leaks later (ECDHE).
 * Node offers PSK in TLS 1.2 only, hence the version.
 */
import * as tls from 'node:tls';
import { pskOf } from './token';

/** The PSK identity both sides name: the protocol, so that another one's key is never tried. */
const IDENTITY = 'tracepkt/1';
const TLS_OPTIONS = { ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;

export function agentTlsOptions(token: string): tls.TlsOptions {
  const psk = pskOf(token);
  return { ...TLS_OPTIONS, pskIdentityHint: IDENTITY, pskCallback: (_socket, identity) => (identity === IDENTITY ? psk : null) };
}

export function coordinatorTlsOptions(token: string, host: string, port: number): tls.ConnectionOptions {
  const psk = pskOf(token);
  return {
    ...TLS_OPTIONS,
    host,
    port,
    pskCallback: () => ({ psk, identity: IDENTITY }),
    // The key proves the agent: there is no certificate to check.
    checkServerIdentity: () => undefined,
  };
}

/** A TLS failure in words: what a wrong token looks like from either side. */
export function tlsFailure(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (/BAD_RECORD_MAC|DECRYPTION_FAILED/.test(code)) return 'the token does not match';
  if (/NO_SHARED_CIPHER|UNSUPPORTED_PROTOCOL|WRONG_VERSION_NUMBER|HANDSHAKE_FAILURE|UNKNOWN_PROTOCOL|NO_CIPHERS/.test(code)) return 'not a tracepkt agent or coordinator (TLS handshake failed)';
  if (code === 'ECONNREFUSED') return 'connection refused (no agent listening there)';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'the connection was reset';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'no route to it';
  if (code === 'ETIMEDOUT') return 'timed out';
  return err.message.split('\n')[0];
}
