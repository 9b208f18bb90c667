/**
 * Which container a process runs in, from its cgroup path, and that
 * container's name, from where its runtime keeps it:
 *   Docker      …/docker/<id> or docker-<id>.scope        /var/lib/docker/containers/<id>/config.v2.json "Name"
 *   podman      …/libpod-<id>(.scope)                      /var/lib/containers/storage/overlay-containers/containers.json "names"
 *   Kubernetes  …/kubepods…                                the pod's hostname (HOSTNAME in the process environment)
 *   containerd  …/cri-containerd-<id>.scope, /containerd/…  the id (no name is kept)
 * Roots are injectable so tests can feed a fake tree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ContainerRoots {
  procDir: string;
  dockerDir: string;
  podmanDir: string;
}

export const SYSTEM_CONTAINER_ROOTS: ContainerRoots = {
  procDir: '/proc',
  dockerDir: '/var/lib/docker/containers',
  podmanDir: '/var/lib/containers/storage/overlay-containers',
};

const ID = '([0-9a-f]{64})';

/** What a cgroup path says of its container: which runtime, and the id. */
export type ContainerRef = { runtime: 'docker' | 'podman' | 'containerd'; id: string } | { runtime: 'kubernetes' };

export function containerRef(cgroup: string): ContainerRef | null {
  if (/kubepods/.test(cgroup)) return { runtime: 'kubernetes' };
  let m = new RegExp(`(?:/docker/|docker-)${ID}`).exec(cgroup);
  if (m) return { runtime: 'docker', id: m[1] };
  m = new RegExp(`libpod-${ID}`).exec(cgroup);
  if (m) return { runtime: 'podman', id: m[1] };
  m = new RegExp(`(?:cri-containerd-|/containerd/|crio-)${ID}`).exec(cgroup);
  if (m) return { runtime: 'containerd', id: m[1] };
  return null;
}

/** A daemon's --data-root (or -g) from its command line (NUL-separated), if given. */
export function dataRootOf(cmdline: string): string | null {
  const args = cmdline.split('\0');
  for (let i = 0; i < args.length; i++) {
    const m = /^(?:--data-root|--graph|-g)(?:=(.+))?$/.exec(args[i]);
    if (m) return m[1] ?? args[i + 1] ?? null;
  }
  return null;
}

let dockerdScan: { at: number; procDir: string; dirs: string[] } | undefined;

/**
 * Where Docker keeps its containers' configs: roots.dockerDir, and the
 * containers/ of each running dockerd started with its own --data-root.
 * Looked up at most once a second.
 */
export function dockerContainerDirs(roots: ContainerRoots): string[] {
  const now = performance.now();
  if (!dockerdScan || dockerdScan.procDir !== roots.procDir || now - dockerdScan.at > 1000) {
    const dirs: string[] = [];
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(roots.procDir).filter((e) => /^\d+$/.test(e));
    } catch {
      // no /proc: the default only
    }
    for (const e of entries) {
      try {
        if (fs.readFileSync(path.join(roots.procDir, e, 'comm'), 'utf8').trim() !== 'dockerd') continue;
        const root = dataRootOf(fs.readFileSync(path.join(roots.procDir, e, 'cmdline'), 'utf8'));
        if (root) dirs.push(path.join(root, 'containers'));
      } catch {
        // gone while we looked
      }
    }
    dockerdScan = { at: now, procDir: roots.procDir, dirs };
  }
  return [...new Set([roots.dockerDir, ...dockerdScan.dirs])];
}

/** The file that names such a container: Docker's config, podman's list, the pod's environment. */
export function nameFile(ref: ContainerRef, pid: number, roots: ContainerRoots): string | null {
  switch (ref.runtime) {
    case 'docker': {
      const dirs = dockerContainerDirs(roots);
      return dirs.map((d) => path.join(d, ref.id, 'config.v2.json')).find((f) => fs.existsSync(f)) ?? path.join(dirs[0], ref.id, 'config.v2.json');
    }
    case 'podman':
      return path.join(roots.podmanDir, 'containers.json');
    case 'kubernetes':
      return path.join(roots.procDir, String(pid), 'environ');
    default:
      return null;
  }
}

/** "docker:web", "podman:db", "pod:nginx-7c9f", "containerd:4f1c2a9b03de", from the ref and its name file's text. */
export function containerName(ref: ContainerRef, text: string | null): string | null {
  if (ref.runtime === 'kubernetes') {
    const m = text && /(?:^|\0)HOSTNAME=([^\0]+)/.exec(text);
    return m ? `pod:${m[1]}` : null;
  }
  const short = ref.id.slice(0, 12);
  try {
    if (ref.runtime === 'docker') {
      const name = text && (JSON.parse(text) as { Name?: string }).Name;
      return `docker:${name ? name.replace(/^\//, '') : short}`;
    }
    if (ref.runtime === 'podman') {
      const entry = text ? (JSON.parse(text) as { id: string; names?: string[] }[]).find((c) => c.id === ref.id) : undefined;
      return `podman:${entry?.names?.[0] ?? short}`;
    }
  } catch {
    // unreadable: the id stands for the name
  }
  return `${ref.runtime}:${short}`;
}

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The container process `pid` runs in, by name; null if none. */
export function containerOf(pid: number, roots: ContainerRoots = SYSTEM_CONTAINER_ROOTS): string | null {
  const cgroup = read(path.join(roots.procDir, String(pid), 'cgroup'));
  const ref = cgroup ? containerRef(cgroup) : null;
  if (!ref) return null;
  const file = nameFile(ref, pid, roots);
  return containerName(ref, file ? read(file) : null);
}

async function readAsync(file: string): Promise<string | null> {
  try {
    return await fs.promises.readFile(file, 'utf8');
  } catch {
    return null;
  }
}

/** containerOf without blocking the event loop. */
export async function containerOfAsync(pid: number, roots: ContainerRoots = SYSTEM_CONTAINER_ROOTS): Promise<string | null> {
  const cgroup = await readAsync(path.join(roots.procDir, String(pid), 'cgroup'));
  const ref = cgroup ? containerRef(cgroup) : null;
  if (!ref) return null;
  const file = nameFile(ref, pid, roots);
  return containerName(ref, file ? await readAsync(file) : null);
}

/** A Kubernetes pod: its name, and where the kubelet says so, its namespace and uid. */
export interface PodRef {
  name: string;
  namespace: string | null;
  uid: string | null;
}

/**
 * The pod a process of the kubepods cgroup belongs to. Its uid is in the
 * cgroup path (pod<uid>, with _ for - under systemd); the kubelet names its
 * log directory NAMESPACE_NAME_UID, which gives the namespace and the name;
 * else the name is the pod's hostname (HOSTNAME in the process environment).
 */
export function podOf(cgroup: string, pid: number, roots: ContainerRoots & { podLogDir: string }, read: (file: string) => string | null): PodRef | null {
  const m = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/.exec(cgroup);
  const uid = m ? m[1].replace(/_/g, '-') : null;
  if (uid) {
    let dirs: string[] = [];
    try {
      dirs = fs.readdirSync(roots.podLogDir);
    } catch {
      // no kubelet logs here
    }
    const dir = dirs.find((d) => d.endsWith(`_${uid}`));
    const parts = dir ? /^([^_]+)_(.+)_[^_]+$/.exec(dir) : null;
    if (parts) return { namespace: parts[1], name: parts[2], uid };
  }
  const env = read(path.join(roots.procDir, String(pid), 'environ'));
  const host = env && /(?:^|\0)HOSTNAME=([^\0]+)/.exec(env);
  return host ? { name: host[1], namespace: null, uid } : null;
}
