/**
 * TLS between agents and coordinators. Keyed by the shared token: TLS 1.2
 * with a pre-shared key (RFC 4279) and an ephemeral ECDH exchange, sealed
 * with ChaCha20-Poly1305. Both sides prove the token by completing the
 * handshake (a wrong one fails it: bad record MAC); nobody sends it; a
 * recorded session stays sealed even if the token leaks later (ECDHE).
 * Node offers PSK in TLS 1.2 only, hence the version. With certificates
 * (mutual TLS): TLS 1.3, each side's certificate checked against the CA
 * given, the agent's also against the address the coordinator dialled.
 */
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import type { Credentials } from './credentials';
import { pskOf } from './token';

/** The PSK identity both sides name: the protocol, so that another one's key is never tried. */
const IDENTITY = 'tracepkt/1';
const TLS_OPTIONS = { ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;

export function agentTlsOptions(c: Credentials): tls.TlsOptions {
  // The peer's certificate is asked for and checked, and one that fails is refused by the agent with a
  // line saying why (src/cluster/agent.ts): TLS 1.3 would only close the connection on the coordinator.
  if (!('token' in c)) return { cert: c.cert, key: c.key, ca: c.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' };
  const psk = pskOf(c.token);
  return { ...TLS_OPTIONS, pskIdentityHint: IDENTITY, pskCallback: (_socket, identity) => (identity === IDENTITY ? psk : null) };
}

export function coordinatorTlsOptions(c: Credentials, host: string, port: number): tls.ConnectionOptions {
  if (!('token' in c)) {
    // The default check: the agent's certificate must name `host` (an IP address SAN for an address).
    return { host, port, cert: c.cert, key: c.key, ca: c.ca, rejectUnauthorized: true, minVersion: 'TLSv1.3', ...(isIP(host) ? {} : { servername: host }) };
  }
  const psk = pskOf(c.token);
  return {
    ...TLS_OPTIONS,
    host,
    port,
    pskCallback: () => ({ psk, identity: IDENTITY }),
    // The key proves the agent: there is no certificate to check.
    checkServerIdentity: () => undefined,
  };
}

/** A TLS failure in words: what a wrong token or certificate looks like from either side. */
export function tlsFailure(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (/BAD_RECORD_MAC|DECRYPTION_FAILED/.test(code)) return 'the token does not match';
  if (/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|ALERT_UNKNOWN_CA|CERT_SIGNATURE_FAILURE|ALERT_BAD_CERTIFICATE|ALERT_DECRYPT_ERROR/.test(code)) return 'its certificate is not signed by the CA given, or ours is not by its CA';
  if (/CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ALERT_CERTIFICATE_EXPIRED/.test(code)) return 'a certificate has expired or is not valid yet';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'its certificate does not name the address dialled';
  if (/CERTIFICATE_REQUIRED|PEER_DID_NOT_RETURN_A_CERTIFICATE/.test(code)) return 'no certificate offered (the other side uses a token?)';
  if (/NO_SHARED_CIPHER|UNSUPPORTED_PROTOCOL|WRONG_VERSION_NUMBER|HANDSHAKE_FAILURE|UNKNOWN_PROTOCOL|NO_CIPHERS|PROTOCOL_VERSION|NO_SUITABLE/.test(code)) return 'not a tracepkt agent or coordinator, or one side uses a token and the other certificates (TLS handshake failed)';
  if (code === 'ECONNREFUSED') return 'connection refused (no agent listening there)';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'the connection was reset';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'no route to it';
  if (code === 'ETIMEDOUT') return 'timed out';
  return err.message.split('\n')[0];
}
