/**
 * Network namespace inode → a name a person recognises:
 *   1. its `ip netns` name (a bind mount under /run/netns),
 *   2. "host" for the initial namespace (PID 1's),
 *   3. the container or pod whose processes live in it ("docker:web", "pod:nginx-7c9f"),
 *   4. else a process living in it, "comm[pid]" (lowest pid: usually a container's init).
 * The file system roots are injectable so tests can feed a fake /proc tree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { containerOf, containerOfAsync, SYSTEM_CONTAINER_ROOTS, type ContainerRoots } from './containers';

/** Namespaces remembered as nameless, at most (beyond it the list starts again from the last scan's). */
const NAMELESS_MAX = 4096;

export interface NetnsRoots {
  procDir: string;
  netnsDir: string;
}

export const SYSTEM_ROOTS: NetnsRoots = { procDir: '/proc', netnsDir: '/run/netns' };

/** Reads the inode out of an nsfs link target such as "net:[4026531833]". */
export function parseNsLink(target: string): number | null {
  const m = /^net:\[(\d+)\]$/.exec(target);
  return m ? Number(m[1]) : null;
}

/** A namespace tracepkt can enter: `path` is null for the one it runs in. */
export interface KnownNetns {
  inode: number;
  name: string | null;
  path: string | null;
}

export class NetnsResolver {
  private names = new Map<number, string>();
  private paths = new Map<number, string>();
  private lastScan = -Infinity;

  constructor(
    private readonly roots: NetnsRoots & Partial<ContainerRoots> = SYSTEM_ROOTS,
    /** A miss rescans at most this often: namespaces appear while we trace. */
    private readonly rescanMs = 200,
  ) {}

  /** The name for a namespace inode, or null if nothing names it. */
  name(inode: number): string | null {
    const known = this.names.get(inode);
    if (known !== undefined) return known;
    if (performance.now() - this.lastScan >= this.rescanMs) {
      this.scan();
      return this.names.get(inode) ?? null;
    }
    return null;
  }

  /**
   * The name as far as the cache knows, never touching the file system:
   * undefined while it does not know (a namespace no scan has looked for
   * yet: scanAsync will), null when the last scan, recent enough (5 ×
   * rescanMs), looked for it and found nothing to name it by.
   */
  cached(inode: number): string | null | undefined {
    const known = this.names.get(inode);
    if (known !== undefined) return known;
    // A namespace nothing names stays so for a while: not a full /proc scan per batch.
    return this.nameless.has(inode) && performance.now() - this.lastScan < 5 * this.rescanMs ? null : undefined;
  }

  /** Namespaces the last scan found no name for. */
  private nameless = new Set<number>();
  private scanning: Promise<void> | undefined;

  /** scan() without blocking the event loop: /proc is read with promises. One at a time. */
  scanAsync(): Promise<void> {
    this.scanning ??= this.scanOnce().finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const started = performance.now();
    const wanted = new Set(this.asked);
    this.asked.clear();
    const names = new Map<number, string>();
    const paths = new Map<number, string>();
    const containers = { ...SYSTEM_CONTAINER_ROOTS, ...this.roots };
    const entries = (await fs.promises.readdir(this.roots.procDir).catch(() => [] as string[])).filter((e) => /^\d+$/.test(e));
    const links = await Promise.all(entries.map((e) => fs.promises.readlink(path.join(this.roots.procDir, e, 'ns', 'net')).catch(() => null)));
    const lowest = new Map<number, number>();
    entries.forEach((entry, i) => {
      const inode = parseNsLink(links[i] ?? '');
      const pid = Number(entry);
      if (inode !== null && (lowest.get(inode) ?? Infinity) > pid) lowest.set(inode, pid);
    });
    await Promise.all([...lowest].map(async ([inode, pid]) => {
      const container = await containerOfAsync(pid, containers);
      const comm = container ?? ((await fs.promises.readFile(path.join(this.roots.procDir, String(pid), 'comm'), 'utf8').catch(() => '')).trim() || 'pid');
      names.set(inode, container ?? `${comm}[${pid}]`);
      paths.set(inode, path.join(this.roots.procDir, String(pid), 'ns', 'net'));
    }));
    const host = this.hostInode();
    if (host !== null) names.set(host, 'host');
    for (const entry of await fs.promises.readdir(this.roots.netnsDir).catch(() => [] as string[])) {
      const file = path.join(this.roots.netnsDir, entry);
      const st = await fs.promises.stat(file).catch(() => null);
      if (!st) continue; // removed while we looked
      names.set(st.ino, entry);
      paths.set(st.ino, file);
    }
    this.names = names;
    this.paths = paths;
    // Those asked about before stay nameless too unless this scan named them: namespaces asked about in
    // turn (two nothing names, their events alternating) must not each undo the other's scan.
    // (Bounded: namespaces come and go, and one gone is never named.)
    const before = this.nameless.size < NAMELESS_MAX ? [...this.nameless] : [];
    this.nameless = new Set([...before, ...wanted].filter((inode) => !names.has(inode)));
    this.lastScan = started;
  }

  /** Namespaces asked about that the next scan must look for. */
  private asked = new Set<number>();

  /** Notes that `inode` needs a name: the next scanAsync looks for it. */
  want(inode: number): void {
    this.asked.add(inode);
  }

  /** "name (inode)", or just the inode when nothing names it. */
  label(inode: number): string {
    const name = this.name(inode);
    return name === null ? String(inode) : `${name} (${inode})`;
  }

  /** Inode of the namespace named by `ip netns` name or path, if it exists. */
  inodeOf(spec: string): number | null {
    const file = spec.includes('/') ? spec : path.join(this.roots.netnsDir, spec);
    try {
      const link = readlinkOrNull(file);
      return (link === null ? null : parseNsLink(link)) ?? fs.statSync(file).ino;
    } catch {
      return null;
    }
  }

  /** Every network namespace on the system, once each, ours first. */
  list(): KnownNetns[] {
    this.scan();
    return this.known();
  }

  /** list() without blocking the event loop. */
  async listAsync(): Promise<KnownNetns[]> {
    await this.scanAsync();
    return this.known();
  }

  /** The namespaces the last scan found, ours first. */
  private known(): KnownNetns[] {
    const own = parseNsLink(readlinkOrNull(path.join(this.roots.procDir, 'self', 'ns', 'net')) ?? '');
    const out: KnownNetns[] = [];
    if (own !== null) out.push({ inode: own, name: this.names.get(own) ?? null, path: null });
    for (const [inode, file] of this.paths) {
      if (inode !== own) out.push({ inode, name: this.names.get(inode) ?? null, path: file });
    }
    return out;
  }

  scan(): void {
    this.lastScan = performance.now();
    const names = new Map<number, string>();
    const paths = new Map<number, string>();
    // Lowest priority first: later entries overwrite earlier ones.
    const containers = { ...SYSTEM_CONTAINER_ROOTS, ...this.roots };
    for (const [inode, pid] of this.processes()) {
      names.set(inode, containerOf(pid, containers) ?? `${this.comm(pid)}[${pid}]`);
      paths.set(inode, path.join(this.roots.procDir, String(pid), 'ns', 'net'));
    }
    const host = this.hostInode();
    if (host !== null) names.set(host, 'host');
    for (const entry of readdirOrEmpty(this.roots.netnsDir)) {
      const file = path.join(this.roots.netnsDir, entry);
      try {
        const inode = fs.statSync(file).ino;
        names.set(inode, entry);
        paths.set(inode, file);
      } catch {
        // removed while we looked
      }
    }
    this.names = names;
    this.paths = paths;
  }

  /**
   * The initial namespace: PID 1's, or where a sandbox hides PID 1's links,
   * kthreadd's (PID 2): kernel threads always live in the initial namespaces.
   */
  private hostInode(): number | null {
    for (const pid of ['1', '2']) {
      const inode = parseNsLink(readlinkOrNull(path.join(this.roots.procDir, pid, 'ns', 'net')) ?? '');
      if (inode !== null) return inode;
    }
    return null;
  }

  /** The lowest pid in each namespace. */
  private processes(): Map<number, number> {
    const lowest = new Map<number, number>();
    for (const entry of readdirOrEmpty(this.roots.procDir)) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      const inode = parseNsLink(readlinkOrNull(path.join(this.roots.procDir, entry, 'ns', 'net')) ?? '');
      if (inode === null) continue;
      const seen = lowest.get(inode);
      if (seen === undefined || pid < seen) lowest.set(inode, pid);
    }
    return lowest;
  }

  private comm(pid: number): string {
    try {
      return fs.readFileSync(path.join(this.roots.procDir, String(pid), 'comm'), 'utf8').trim() || 'pid';
    } catch {
      return 'pid';
    }
  }
}

function readlinkOrNull(file: string): string | null {
  try {
    return fs.readlinkSync(file);
  } catch {
    return null;
  }
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
