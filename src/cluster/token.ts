/**
 * The shared token that agents and coordinators prove to each other. It is
 * never sent: both sides derive a TLS pre-shared key from it (src/cluster/
 * tls.ts), so a peer without the token fails the handshake itself, before a
 * byte of ours is read, and the connection is encrypted by the same key
 * exchange (ECDHE-PSK: forward secret).
 *
 * The file is held to what ssh holds a private key to: a regular file of
 * the user running tracepkt, that nobody else can read or write. An agent
 * runs as root and trusts whoever holds this token with tracing its host.
 */
import * as fs from 'node:fs';
import { scryptSync } from 'node:crypto';
import { TracepktError } from '../errors';

/**
 * Fewer characters than this cannot hold 128 random bits (22 in base64). Whoever answers at a
 * node's address sees a handshake it can try guesses of the token against offline: a token must
 * be random and long, and the key is derived slowly (below).
 */
export const TOKEN_MIN_CHARS = 22;
const TOKEN_MAX_BYTES = 4096;

const derived = new Map<string, Buffer>();

/**
 * The TLS pre-shared key both sides derive from the token: scrypt (N 2^14, 16 MB, ~50 ms once per
 * process), so that each guess of an offline attack costs as much; the salt names the protocol,
 * so a new one never reuses the key.
 */
export function pskOf(token: string): Buffer {
  let key = derived.get(token);
  if (!key) derived.set(token, (key = scryptSync(Buffer.from(token, 'utf8'), 'tracepkt agent psk v1', 32, { N: 2 ** 14, r: 8, p: 1 })));
  return key;
}

/**
 * FILE opened as a private file (the token, a private key): a regular file of this user that
 * nobody else can read or write, not a symbolic link, at most `maxBytes`; its text. `what` names
 * it in the one line that says what is wrong (never its content).
 */
export function readPrivateFile(file: string, what: string, maxBytes: number, uid = process.getuid?.() ?? 0): string {
  let fd: number;
  try {
    // O_NOFOLLOW: the file itself, not where a link planted next to it points.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'ELOOP' ? 'it is a symbolic link' : code === 'EACCES' ? 'permission denied' : String(code);
    throw new TracepktError(`${what} ${file}: ${why}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new TracepktError(`${what} ${file}: not a regular file`);
    if (st.uid !== uid) throw new TracepktError(`${what} ${file}: owned by uid ${st.uid}, not by this user (${uid}): chown it`);
    if (st.mode & 0o077) {
      throw new TracepktError(`${what} ${file}: others can read or write it (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
    }
    if (st.size > maxBytes) throw new TracepktError(`${what} ${file}: longer than ${maxBytes} bytes`);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The token in FILE: its text without the trailing newline, checked. Every
 * way it can be wrong is one line naming the file (shown to the user; never
 * the token itself).
 */
export function readTokenFile(file: string, uid = process.getuid?.() ?? 0): string {
  const text = readPrivateFile(file, 'token file', TOKEN_MAX_BYTES, uid).replace(/\r?\n$/, '');
  if (/[\r\n]/.test(text)) throw new TracepktError(`token file ${file}: more than one line; a token is one line`);
  if (text.trim() !== text) throw new TracepktError(`token file ${file}: the token begins or ends with spaces`);
  if ([...text].length < TOKEN_MIN_CHARS) {
    throw new TracepktError(`token file ${file}: a token needs at least ${TOKEN_MIN_CHARS} characters (e.g. head -c 32 /dev/urandom | base64 > ${file})`);
  }
  return text;
}
