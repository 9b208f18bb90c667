/**
 * Throwaway network labs made of network namespaces: the demo's
 * Docker-like host and container, and the integration tests' topologies.
 * Every namespace a Lab creates is named "tpk-<id>-<role>" and removed by
 * destroy() (deleting a namespace takes its interfaces with it);
 * `tracepkt cleanup` removes those a killed run left behind (a record with
 * the owner's pid tells them from those of a run still going).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from '../random';
import * as fs from 'node:fs';
import { alive, readRecords, removeRecord, writeRecord } from '../records';

export const LAB_PREFIX = 'tpk-';
const LAB_NAME = /^tpk-[0-9a-f]{4}-[a-z0-9]+$/;

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

export class Lab {
  readonly id = randomBytes(2).toString('hex');
  private readonly created: string[] = [];

  /**
   * Creates a namespace with its loopback up; returns its name. Duplicate
   * address detection is off for every interface created in it, link-local
   * addresses included: otherwise IPv6 neighbour discovery stalls for a
   * second after set-up and the first probe goes unanswered.
   */
  netns(role: string): string {
    const name = `${LAB_PREFIX}${this.id}-${role}`;
    if (this.created.length === 0) writeRecord(`lab-${this.id}`, {});
    run('ip', ['netns', 'add', name]);
    this.created.push(name);
    this.sysctl(name, 'net.ipv6.conf.default.accept_dad', 0);
    this.sysctl(name, 'net.ipv6.conf.all.accept_dad', 0);
    this.ip(name, 'link', 'set', 'lo', 'up');
    return name;
  }

  ip(ns: string, ...args: string[]): string {
    return run('ip', ['-n', ns, ...args]);
  }

  /** Runs a command inside a namespace. */
  exec(ns: string, cmd: string, ...args: string[]): string {
    return run('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  sysctl(ns: string, key: string, value: string | number): void {
    this.exec(ns, 'sysctl', '-qw', `${key}=${value}`);
  }

  /** A veth pair from (nsA, a) to (nsB, b), both up. */
  veth(nsA: string, a: string, nsB: string, b: string): void {
    this.ip(nsA, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', nsB);
    this.ip(nsA, 'link', 'set', a, 'up');
    this.ip(nsB, 'link', 'set', b, 'up');
  }

  bridge(ns: string, name: string, ...ports: string[]): void {
    this.ip(ns, 'link', 'add', name, 'type', 'bridge');
    this.ip(ns, 'link', 'set', name, 'up');
    for (const port of ports) this.ip(ns, 'link', 'set', port, 'master', name);
  }

  /** An address; IPv6 ones skip duplicate address detection so they work at once. */
  addr(ns: string, dev: string, cidr: string): void {
    this.ip(ns, 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : []));
  }

  route(ns: string, ...args: string[]): void {
    this.ip(ns, ...(args.some((a) => a.includes(':')) ? ['-6'] : []), 'route', 'add', ...args);
  }

  /** A router: forwards IPv4 and IPv6. */
  forwarding(ns: string): void {
    this.sysctl(ns, 'net.ipv4.ip_forward', 1);
    this.sysctl(ns, 'net.ipv6.conf.all.forwarding', 1);
  }

  path(ns: string): string {
    return `/run/netns/${ns}`;
  }

  /** Removes every namespace this lab created. Safe to call twice. */
  destroy(): void {
    while (this.created.length > 0) {
      const ns = this.created.pop()!;
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
    removeRecord(`lab-${this.id}`);
  }
}

/** Namespaces that labs of killed runs left behind: not those of a lab whose owner still runs. */
export function leftoverLabNamespaces(netnsDir = '/run/netns'): string[] {
  const running = new Set(readRecords<{ pid: number }>('lab-').filter((r) => alive(r.data.pid)).map((r) => r.name.slice(4)));
  try {
    return fs.readdirSync(netnsDir).filter((n) => LAB_NAME.test(n) && !running.has(n.split('-')[1]));
  } catch {
    return [];
  }
}

/** Forgets the records of labs whose namespaces cleanup removed. */
export function forgetLab(id: string): void {
  removeRecord(`lab-${id}`);
}

export function removeNamespace(name: string): void {
  run('ip', ['netns', 'del', name]);
}
