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

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function dockerName(roots: ContainerRoots, id: string): string {
  const config = read(path.join(roots.dockerDir, id, 'config.v2.json'));
  try {
    const name = config && (JSON.parse(config) as { Name?: string }).Name;
    if (name) return name.replace(/^\//, '');
  } catch {
    // unreadable: fall back to the id
  }
  return id.slice(0, 12);
}

function podmanName(roots: ContainerRoots, id: string): string {
  const list = read(path.join(roots.podmanDir, 'containers.json'));
  try {
    const entry = list ? (JSON.parse(list) as { id: string; names?: string[] }[]).find((c) => c.id === id) : undefined;
    if (entry?.names?.[0]) return entry.names[0];
  } catch {
    // unreadable: fall back to the id
  }
  return id.slice(0, 12);
}

function hostnameOf(roots: ContainerRoots, pid: number): string | null {
  const env = read(path.join(roots.procDir, String(pid), 'environ'));
  const m = env && /(?:^|\0)HOSTNAME=([^\0]+)/.exec(env);
  return m ? m[1] : null;
}

/** "docker:web", "podman:db", "pod:nginx-7c9f", "containerd:4f1c2a9b03de"; null if not in a container. */
export function containerOf(pid: number, roots: ContainerRoots = SYSTEM_CONTAINER_ROOTS): string | null {
  const cgroup = read(path.join(roots.procDir, String(pid), 'cgroup'));
  if (!cgroup) return null;
  if (/kubepods/.test(cgroup)) {
    const pod = hostnameOf(roots, pid);
    if (pod) return `pod:${pod}`;
  }
  let m = new RegExp(`(?:/docker/|docker-)${ID}`).exec(cgroup);
  if (m) return `docker:${dockerName(roots, m[1])}`;
  m = new RegExp(`libpod-${ID}`).exec(cgroup);
  if (m) return `podman:${podmanName(roots, m[1])}`;
  m = new RegExp(`(?:cri-containerd-|/containerd/|crio-)${ID}`).exec(cgroup);
  if (m) return `containerd:${m[1].slice(0, 12)}`;
  return null;
}
