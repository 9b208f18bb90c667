/**
 * How agents and coordinators prove themselves to each other: a shared
 * token (the default: one secret for the whole cluster, src/cluster/
 * token.ts), or certificates (mutual TLS): each side holds a key and a
 * certificate, and accepts only a peer whose certificate the CA given signs.
 * A coordinator also checks that the agent's certificate names the address
 * it dialled (an IP address SAN for an address, a DNS name for a host name).
 * Give agents certificates for servers only (extendedKeyUsage serverAuth) and
 * coordinators for clients only (clientAuth), or sign each side's with a CA
 * of its own: an agent's key, stolen, then cannot order traces elsewhere.
 */
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { TracepktError } from '../errors';
import { readPrivateFile, readTokenFile } from './token';
import type { CredentialFiles } from './credential-files';

/** What TLS is keyed with (src/cluster/tls.ts). */
export type Credentials = { token: string } | { cert: string; key: string; ca: string };

/** PEM files are a few kilobytes; a chain of several certificates stays well below this. */
const PEM_MAX_BYTES = 256 * 1024;

function readPem(file: string, what: string, label: RegExp): string {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new TracepktError(`${what} ${file}: not a regular file`);
    if (st.size > PEM_MAX_BYTES) throw new TracepktError(`${what} ${file}: longer than ${PEM_MAX_BYTES} bytes`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof TracepktError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new TracepktError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code)}`);
  }
  if (!label.test(text)) throw new TracepktError(`${what} ${file}: no PEM ${what === 'key file' ? 'private key' : 'certificate'} in it`);
  return text;
}

/** The credentials in the files given, checked: the key held to a private key's rules (as the token). */
export function readCredentials(files: CredentialFiles): Credentials {
  if ('tokenFile' in files) return { token: readTokenFile(files.tokenFile) };
  const key = readPrivateFile(files.keyFile, 'key file', PEM_MAX_BYTES);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new TracepktError(`key file ${files.keyFile}: no PEM private key in it`);
  const c = {
    cert: readPem(files.certFile, 'certificate file', /-----BEGIN CERTIFICATE-----/),
    key,
    ca: readPem(files.caFile, 'CA file', /-----BEGIN CERTIFICATE-----/),
  };
  // What OpenSSL makes of them, now: a key of another certificate, one with a passphrase, a broken file.
  try {
    tls.createSecureContext(c);
  } catch (err) {
    const why = (err as Error).message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/i, '');
    throw new TracepktError(`--cert ${files.certFile}, --key ${files.keyFile}, --ca ${files.caFile}: OpenSSL refuses them: ${why}`);
  }
  return c;
}

