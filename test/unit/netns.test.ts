/** The namespace resolver on a fake /proc and /run/netns tree. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NetnsResolver, parseNsLink } from '../../src/names/netns';

/** Builds proc/<pid>/{ns/net -> "net:[inode]", comm} and run/netns/<name> files. */
function fakeTree(procs: Record<number, [inode: number, comm: string]>, named: string[] = []) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-netns-'));
  const procDir = path.join(root, 'proc');
  const netnsDir = path.join(root, 'run', 'netns');
  fs.mkdirSync(netnsDir, { recursive: true });
  const addProc = (pid: number, inode: number, comm: string) => {
    fs.mkdirSync(path.join(procDir, String(pid), 'ns'), { recursive: true });
    fs.symlinkSync(`net:[${inode}]`, path.join(procDir, String(pid), 'ns', 'net'));
    fs.writeFileSync(path.join(procDir, String(pid), 'comm'), `${comm}\n`);
  };
  for (const [pid, [inode, comm]] of Object.entries(procs)) addProc(Number(pid), inode, comm);
  fs.mkdirSync(path.join(procDir, 'self'), { recursive: true }); // not a pid: ignored
  const inodes: Record<string, number> = {};
  for (const name of named) {
    fs.writeFileSync(path.join(netnsDir, name), '');
    inodes[name] = fs.statSync(path.join(netnsDir, name)).ino; // what a bind mount's stat shows
  }
  return { roots: { procDir, netnsDir }, inodes, addProc, cleanup: () => fs.rmSync(root, { recursive: true }) };
}

test('parses nsfs links', () => {
  assert.equal(parseNsLink('net:[4026531833]'), 4026531833);
  assert.equal(parseNsLink('mnt:[4026531833]'), null);
  assert.equal(parseNsLink('garbage'), null);
});

test('names the initial namespace "host", others by ip netns name or by their lowest pid', () => {
  const t = fakeTree({ 1: [100, 'systemd'], 2: [100, 'kthreadd'], 4242: [200, 'nginx'], 4000: [200, 'containerd-shim'], 77: [300, 'sleep'] }, ['blue']);
  try {
    const r = new NetnsResolver(t.roots);
    assert.equal(r.name(100), 'host');
    assert.equal(r.name(200), 'containerd-shim[4000]');
    assert.equal(r.name(t.inodes.blue), 'blue');
    assert.equal(r.name(999), null);
    assert.equal(r.label(200), 'containerd-shim[4000] (200)');
    assert.equal(r.label(999), '999');
  } finally {
    t.cleanup();
  }
});

test('an ip netns name wins over a process living in the namespace', () => {
  const t = fakeTree({ 1: [100, 'init'] }, ['red']);
  try {
    t.addProc(50, t.inodes.red, 'sleep');
    assert.equal(new NetnsResolver(t.roots).name(t.inodes.red), 'red');
  } finally {
    t.cleanup();
  }
});

test('falls back to kthreadd when PID 1 cannot be read', () => {
  const t = fakeTree({ 2: [100, 'kthreadd'], 9: [150, 'bash'] });
  try {
    assert.equal(new NetnsResolver(t.roots).name(100), 'host');
  } finally {
    t.cleanup();
  }
});

test('finds namespaces created after the first lookup, rescanning at most every rescanMs', () => {
  const t = fakeTree({ 1: [100, 'init'] });
  try {
    const slow = new NetnsResolver(t.roots, 60_000);
    const fast = new NetnsResolver(t.roots, 0);
    assert.equal(slow.name(500), null);
    assert.equal(fast.name(500), null);
    t.addProc(900, 500, 'dockerd');
    assert.equal(slow.name(500), null, 'no rescan inside the interval');
    assert.equal(fast.name(500), 'dockerd[900]');
  } finally {
    t.cleanup();
  }
});

test('inodeOf reads a name under netnsDir or a /proc link', () => {
  const t = fakeTree({ 1: [100, 'init'], 33: [321, 'sleep'] }, ['green']);
  try {
    const r = new NetnsResolver(t.roots);
    assert.equal(r.inodeOf('green'), t.inodes.green);
    assert.equal(r.inodeOf(path.join(t.roots.procDir, '33', 'ns', 'net')), 321);
    assert.equal(r.inodeOf('missing'), null);
  } finally {
    t.cleanup();
  }
});

test('containers and pods are named from their processes’ cgroups and their runtimes’ records', () => {
  const id = (c: string) => c.repeat(64);
  const t = fakeTree({
    1: [100, 'systemd'],
    200: [210, 'nginx'], // Docker, cgroup v1 path
    300: [310, 'postgres'], // Docker, systemd scope, no record: the short id
    400: [410, 'redis'], // podman
    500: [510, 'pause'], // a Kubernetes pod
    600: [610, 'coredns'], // containerd without Kubernetes
    700: [710, 'sshd'], // a plain process in its own namespace
  });
  try {
    const proc = t.roots.procDir;
    const write = (pid: number, file: string, text: string) => fs.writeFileSync(path.join(proc, String(pid), file), text);
    write(1, 'cgroup', '0::/init.scope\n');
    write(200, 'cgroup', `12:memory:/docker/${id('a')}\n0::/docker/${id('a')}\n`);
    write(300, 'cgroup', `0::/system.slice/docker-${id('b')}.scope\n`);
    write(400, 'cgroup', `0::/machine.slice/libpod-${id('c')}.scope/container\n`);
    write(500, 'cgroup', `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-${id('d')}.scope\n`);
    write(500, 'environ', 'PATH=/bin\0HOSTNAME=web-7c9f8d6b5-x2kq4\0');
    write(600, 'cgroup', `0::/system.slice/containerd.service/cri-containerd-${id('e')}.scope\n`);
    write(700, 'cgroup', '0::/system.slice/ssh.service\n');
    const root = path.dirname(proc);
    const dockerDir = path.join(root, 'docker');
    fs.mkdirSync(path.join(dockerDir, id('a')), { recursive: true });
    fs.writeFileSync(path.join(dockerDir, id('a'), 'config.v2.json'), JSON.stringify({ ID: id('a'), Name: '/web' }));
    const podmanDir = path.join(root, 'podman');
    fs.mkdirSync(podmanDir);
    fs.writeFileSync(path.join(podmanDir, 'containers.json'), JSON.stringify([{ id: id('c'), names: ['cache'] }]));
    const r = new NetnsResolver({ ...t.roots, dockerDir, podmanDir });
    assert.equal(r.name(100), 'host');
    assert.equal(r.name(210), 'docker:web');
    assert.equal(r.name(310), `docker:${id('b').slice(0, 12)}`);
    assert.equal(r.name(410), 'podman:cache');
    assert.equal(r.name(510), 'pod:web-7c9f8d6b5-x2kq4');
    assert.equal(r.name(610), `containerd:${id('e').slice(0, 12)}`);
    assert.equal(r.name(710), 'sshd[700]');
  } finally {
    t.cleanup();
  }
});

test('namespaces nothing names, asked about in turn, stay known as nameless: one scan does not undo the other', async () => {
  const t = fakeTree({ 1: [100, 'init'] });
  try {
    const r = new NetnsResolver(t.roots, 60_000);
    r.want(700);
    await r.scanAsync();
    r.want(800);
    await r.scanAsync();
    assert.equal(r.cached(700), null, 'still known as nameless: no scan per batch for it');
    assert.equal(r.cached(800), null);
    t.addProc(900, 700, 'late');
    r.want(700);
    await r.scanAsync();
    assert.equal(r.cached(700), 'late[900]', 'named once something names it');
  } finally {
    t.cleanup();
  }
});
