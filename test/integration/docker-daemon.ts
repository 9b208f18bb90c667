/**
 * A real Docker engine (Debian's docker.io) for the tests, kept to a network
 * namespace of the test's own: dockerd runs under `nsenter --net=` (not `ip
 * netns exec`, which remounts /sys and hides the cgroups), with its own data
 * and exec roots, socket and containerd namespace, so its bridge and its
 * iptables rules live in that namespace and the host's stay untouched. Its
 * one image is imported from a busybox root built here (no registry).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const DOCKER = '/usr/bin/docker';
export const IMAGE = 'tracepkt-busybox:test';

export interface DaemonOptions {
  /**
   * Containers on the host network only: no bridge, no iptables rules of Docker's (whose FORWARD
   * policy would also judge the namespace's own bridged traffic).
   */
  hostNetworkOnly?: boolean;
}

export class DockerDaemon {
  private daemon: ChildProcess | undefined;
  readonly dir: string;
  readonly socket: string;

  private constructor(
    readonly netns: string,
    private readonly o: DaemonOptions = {},
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-docker-'));
    this.socket = path.join(this.dir, 'docker.sock');
  }

  /** Starts dockerd in /run/netns/NETNS and imports the busybox image; stop() undoes all of it. */
  static async start(netns: string, o: DaemonOptions = {}): Promise<DockerDaemon> {
    const d = new DockerDaemon(netns, o);
    try {
      await d.boot();
      d.importImage();
      return d;
    } catch (err) {
      await d.stop();
      throw err;
    }
  }

  private async boot(): Promise<void> {
    const log = fs.openSync(path.join(this.dir, 'dockerd.log'), 'w');
    const ns = `tp${path.basename(this.dir).slice(-6)}`;
    // An empty configuration of its own: the host's /etc/docker/daemon.json must not change this daemon.
    const config = path.join(this.dir, 'daemon.json');
    fs.writeFileSync(config, '{}\n');
    this.daemon = spawn('nsenter', [`--net=/run/netns/${this.netns}`, '--', 'dockerd',
      '--data-root', path.join(this.dir, 'data'), '--exec-root', path.join(this.dir, 'exec'),
      '--pidfile', path.join(this.dir, 'dockerd.pid'), '-H', `unix://${this.socket}`,
      '--containerd-namespace', ns, '--containerd-plugins-namespace', `${ns}p`, '--config-file', config,
      ...(this.o.hostNetworkOnly ? ['--bridge=none', '--iptables=false'] : [])], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    for (let i = 0; i < 120; i++) {
      if (this.daemon.exitCode !== null) break;
      try {
        this.docker('info');
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new Error(`dockerd did not start: ${fs.readFileSync(path.join(this.dir, 'dockerd.log'), 'utf8').slice(-2000)}`);
  }

  /** A root file system of busybox alone, imported as an image. */
  private importImage(): void {
    const root = path.join(this.dir, 'rootfs');
    fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
    fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
    for (const applet of ['sh', 'sleep', 'httpd', 'nc', 'ping', 'ip']) fs.symlinkSync('busybox', path.join(root, 'bin', applet));
    const tar = path.join(this.dir, 'rootfs.tar');
    execFileSync('tar', ['-C', root, '-cf', tar, '.']);
    this.docker('import', tar, IMAGE);
  }

  docker(...args: string[]): string {
    return execFileSync(DOCKER, ['-H', `unix://${this.socket}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }).trim();
  }

  /** Loads an image from a `docker save` archive (a release's, say); returns what docker said. */
  load(archive: string): string {
    return execFileSync(DOCKER, ['-H', `unix://${this.socket}`, 'load', '-i', archive], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 }).trim();
  }

  /** Runs a container of the busybox image, detached; returns its id. */
  run(name: string, args: string[], command: string[]): string {
    return this.docker('run', '-d', '--name', name, ...args, IMAGE, ...command);
  }

  /** The container's address on a network (docker inspect: the runtime's own word). */
  address(name: string, network = 'bridge'): string {
    return this.docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name);
  }

  pid(name: string): number {
    return Number(this.docker('inspect', '-f', '{{.State.Pid}}', name));
  }

  /** Removes every container, stops the daemon (and the containerd it started), removes its files. */
  async stop(): Promise<void> {
    try {
      const ids = this.docker('ps', '-aq').split('\n').filter(Boolean);
      if (ids.length) this.docker('rm', '-f', ...ids);
    } catch {
      // the daemon never came up
    }
    if (this.daemon && this.daemon.exitCode === null && this.daemon.signalCode === null) {
      const exited = new Promise((r) => this.daemon!.once('exit', r));
      this.daemon.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (this.daemon.exitCode === null && this.daemon.signalCode === null) this.daemon.kill('SIGKILL');
    }
    // Overlay mounts the daemon left under its data root, then the files.
    const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m?.startsWith(this.dir));
    for (const m of mounts.reverse()) {
      try {
        execFileSync('umount', ['-l', m]);
      } catch {
        // gone already
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
