/**
 * What a user types for a namespace → the namespace. Names in are names out:
 * whatever tracepkt prints to name a namespace is accepted back.
 *   a path            /run/netns/blue, /proc/4242/ns/net, /var/run/docker/netns/…
 *   host              the initial namespace (PID 1's)
 *   pid:PID           the namespace process PID lives in
 *   NAME              an `ip netns` name; else a container's name or id (prefix), if one only
 *   docker:NAME|ID    a Docker container by name, id or unique id prefix (podman:, containerd: likewise)
 *   pod:NAME          a Kubernetes pod by name; pod:NAMESPACE/NAME where names repeat across namespaces
 * An unknown name is refused with the names closest to it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TracepktError } from '../errors';
import { containerName, containerRef, nameFile, podOf, SYSTEM_CONTAINER_ROOTS, type ContainerRoots } from './containers';

export interface NetnsRootsForSpec extends ContainerRoots {
  netnsDir: string;
  /** Kubernetes' pod log directories, NAMESPACE_NAME_UID: where a pod's namespace is written. */
  podLogDir: string;
}

export const SYSTEM_SPEC_ROOTS: NetnsRootsForSpec = { ...SYSTEM_CONTAINER_ROOTS, netnsDir: '/run/netns', podLogDir: '/var/log/pods' };

/** A namespace found: a path to enter it by, and the name tracepkt shows for it. */
export interface ResolvedNetns {
  path: string;
  name: string;
}

/** A running container: every name it answers to, and a process of it (its namespace). */
interface Container {
  runtime: string;
  id: string | null;
  names: string[];
  pid: number;
}

/** The containers whose processes run now, one entry per container (its lowest pid). */
function runningContainers(roots: NetnsRootsForSpec): Container[] {
  const byKey = new Map<string, Container>();
  let entries: string[];
  try {
    entries = fs.readdirSync(roots.procDir).filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  for (const entry of entries.sort((a, b) => Number(a) - Number(b))) {
    const pid = Number(entry);
    const cgroup = readOrNull(path.join(roots.procDir, entry, 'cgroup'));
    const ref = cgroup ? containerRef(cgroup) : null;
    if (!ref) continue;
    if (ref.runtime === 'kubernetes') {
      const pod = podOf(cgroup!, pid, roots, readOrNull);
      if (!pod) continue;
      const key = `pod ${pod.uid ?? pod.name}`;
      if (!byKey.has(key)) byKey.set(key, { runtime: 'pod', id: pod.uid, names: pod.namespace ? [pod.name, `${pod.namespace}/${pod.name}`] : [pod.name], pid });
      continue;
    }
    const key = `${ref.runtime} ${ref.id}`;
    if (byKey.has(key)) continue;
    const file = nameFile(ref, pid, roots);
    const shown = containerName(ref, file ? readOrNull(file) : null) ?? '';
    const name = shown.slice(shown.indexOf(':') + 1);
    byKey.set(key, { runtime: ref.runtime, id: ref.id, names: name === ref.id.slice(0, 12) ? [] : [name], pid });
  }
  return [...byKey.values()];
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** How tracepkt prints a container: its runtime and first name, or its short id. */
const label = (c: Container) => `${c.runtime}:${c.names[0] ?? c.id?.slice(0, 12)}`;

/** Containers that `name` (after any runtime prefix) names: by a name, or by an id prefix of 4+ hex digits. */
function matching(containers: Container[], runtime: string | null, name: string): Container[] {
  const inRuntime = containers.filter((c) => runtime === null || c.runtime === runtime);
  const byName = inRuntime.filter((c) => c.names.includes(name));
  if (byName.length > 0) return byName;
  return /^[0-9a-f]{4,64}$/.test(name) ? inRuntime.filter((c) => c.id?.startsWith(name)) : [];
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment), for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Up to five known names closest to what was typed: small edits, or one containing the other. */
export function closeMatches(typed: string, known: readonly string[]): string[] {
  const bare = (s: string) => s.slice(s.indexOf(':') + 1).toLowerCase();
  const t = bare(typed);
  return [...new Set(known)]
    .map((k) => ({ k, d: distance(t, bare(k)) }))
    .filter(({ k, d }) => d <= Math.max(1, Math.floor(t.length / 3)) || (t.length >= 3 && bare(k).includes(t)) || (bare(k).length >= 3 && t.includes(bare(k))))
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k))
    .slice(0, 5)
    .map(({ k }) => k);
}

function netnsNames(roots: NetnsRootsForSpec): string[] {
  try {
    return fs.readdirSync(roots.netnsDir);
  } catch {
    return [];
  }
}

/** Is `spec` written as a namespace rather than an address or host name (runtime:NAME, pid:N, a path)? */
export function looksLikeNetns(spec: string): boolean {
  return spec.includes('/') || /^(docker|podman|containerd|pod|pid):./.test(spec) || spec === 'host';
}

/**
 * The namespace `spec` names, or a TracepktError saying why not (one line,
 * with the close matches). `enterable` checks a path really is a network
 * namespace (nsenter); tests give their own.
 */
export function resolveNetns(spec: string, roots: NetnsRootsForSpec = SYSTEM_SPEC_ROOTS, enterable: (file: string) => boolean = () => true): ResolvedNetns {
  if (spec === '') throw new TracepktError('empty network namespace name');
  const found = (file: string, name: string): ResolvedNetns => {
    if (!fs.existsSync(file)) throw new TracepktError(`no network namespace at ${file}`);
    if (!enterable(file)) throw new TracepktError(`${file} is not a network namespace`);
    return { path: file, name };
  };
  if (spec.includes('/') && !/^pod:/.test(spec)) return found(spec, spec);
  if (spec === 'host') return found(path.join(roots.procDir, '1', 'ns', 'net'), 'host');
  const pid = /^pid:(\d+)$/.exec(spec);
  if (pid) {
    if (!fs.existsSync(path.join(roots.procDir, pid[1]))) throw new TracepktError(`no process ${pid[1]}`);
    return found(path.join(roots.procDir, pid[1], 'ns', 'net'), spec);
  }
  if (/^pid:/.test(spec)) throw new TracepktError(`pid:${spec.slice(4)}: a process id is a number`);

  const ipNetns = netnsNames(roots);
  const prefixed = /^(docker|podman|containerd|pod):(.+)$/.exec(spec);
  if (!prefixed && ipNetns.includes(spec)) return found(path.join(roots.netnsDir, spec), spec);

  const containers = runningContainers(roots);
  const runtime = prefixed ? prefixed[1] : null;
  const hits = matching(containers, runtime, prefixed ? prefixed[2] : spec);
  if (hits.length === 1) return found(path.join(roots.procDir, String(hits[0].pid), 'ns', 'net'), label(hits[0]));
  if (hits.length > 1) {
    throw new TracepktError(`"${spec}" names ${hits.length} containers: ${hits.map(label).join(', ')}; give more of its id${runtime === 'pod' ? ' or pod:NAMESPACE/NAME' : ''}`);
  }
  const known = ['host', ...ipNetns, ...containers.flatMap((c) => c.names.map((n) => `${c.runtime}:${n}`))];
  const close = closeMatches(spec, known);
  throw new TracepktError(
    `unknown network namespace "${spec}"${close.length ? ` (close: ${close.join(', ')})` : ''}: give an \`ip netns\` name, docker:NAME, podman:NAME, pod:NAME, pid:PID or a path`,
  );
}
