/**
 * The credential options of the command line: which files prove who is who
 * (read and checked by src/cluster/credentials.ts once a command needs them;
 * this file loads nothing else, for the command line's sake).
 */
import { TracepktError } from '../errors';

/** As given on the command line: --token-file, or --cert, --key and --ca. */
export type CredentialFiles = { tokenFile: string } | { certFile: string; keyFile: string; caFile: string };

/**
 * The credential options of a command line (--token-file FILE, or --cert, --key and --ca
 * together), checked for consistency; undefined when none was given.
 */
export function credentialFiles(v: { 'token-file'?: string; cert?: string; key?: string; ca?: string }, prefix = ''): CredentialFiles | undefined {
  const certs = [v.cert, v.key, v.ca].filter((x) => x !== undefined).length;
  if (v['token-file'] !== undefined && certs > 0) throw new TracepktError(`${prefix}--token-file or --cert/--key/--ca: one way to prove who is who, not both`);
  if (certs > 0 && certs < 3) throw new TracepktError(`${prefix}--cert, --key and --ca go together (this side's certificate, its key, the CA that signs the others')`);
  if (v['token-file'] !== undefined) return { tokenFile: v['token-file'] };
  return certs === 3 ? { certFile: v.cert!, keyFile: v.key!, caFile: v.ca! } : undefined;
}
