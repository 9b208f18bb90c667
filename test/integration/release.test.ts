/**
 * A release installs where there is no compiler: `npm run package` writes the
 * Debian package and the npm tarball; the .deb goes into a clean Debian 12
 * root made with `debootstrap --variant=minbase` (apt fetches its runtime
 * dependencies from the mirror) and `tracepkt demo` runs there, with the
 * host's kernel. The tarball is installed with npm and runs its prebuilt
 * addon, built nowhere on install.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const sh = (cmd: string, args: string[], o: { cwd?: string; timeout?: number } = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: o.timeout ?? 600_000, cwd: o.cwd });

/** The Debian mirror the system's apt uses (deb822 sources first). */
function mirror(): string {
  for (const file of fs.readdirSync('/etc/apt/sources.list.d').filter((f) => f.endsWith('.sources'))) {
    const uri = /^URIs:\s*(\S+)/m.exec(fs.readFileSync(path.join('/etc/apt/sources.list.d', file), 'utf8'))?.[1];
    if (uri && !uri.includes('security')) return uri;
  }
  const line = fs.readFileSync('/etc/apt/sources.list', 'utf8').split('\n').find((l) => /^deb\s/.test(l) && !l.includes('security'));
  if (!line) throw new Error('no Debian mirror in the apt sources');
  return line.split(/\s+/)[1];
}

let packages: { deb: string; tgz: string } | undefined;

/** npm run package, once for both tests. */
function built(): { deb: string; tgz: string } {
  if (!packages) {
    sh('npm', ['run', '--silent', 'package'], { cwd: ROOT });
    const files = fs.readdirSync(path.join(ROOT, 'release'));
    const deb = files.find((f) => /^tracepkt_.+_amd64\.deb$/.test(f));
    const tgz = files.find((f) => /^tracepkt-.+\.tgz$/.test(f));
    assert.ok(deb && tgz, `release/ holds ${files.join(', ')}`);
    packages = { deb: path.join(ROOT, 'release', deb), tgz: path.join(ROOT, 'release', tgz) };
  }
  return packages;
}

test('release: the .deb installs into a minimal Debian 12 without a compiler, and tracepkt demo runs there', { timeout: 1_200_000 }, () => {
  const { deb } = built();
  const fields = sh('dpkg-deb', ['-f', deb, 'Package', 'Architecture', 'Depends']);
  assert.match(fields, /^Package: tracepkt$/m);
  assert.match(fields, /^Architecture: amd64$/m);
  assert.doesNotMatch(fields, /clang|gcc|make|build-essential|-dev\b/, 'runtime dependencies only');
  const contents = sh('dpkg-deb', ['-c', deb]);
  assert.doesNotMatch(contents, /(\.c|(?<!\.d)\.ts|\.gyp)$/m, 'no sources in the package (declarations for the library only)');
  assert.match(contents, /prebuilds\/linux-x64\/tracepkt\.napi\.node$/m);

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-minbase-'));
  const mounted: string[] = [];
  try {
    sh('debootstrap', ['--variant=minbase', 'bookworm', root, mirror()], { timeout: 900_000 });
    for (const tool of ['gcc', 'cc', 'clang', 'make']) {
      assert.notEqual(spawnSync('chroot', [root, 'sh', '-c', `command -v ${tool}`]).status, 0, `${tool} is not in the root`);
    }
    // A mount point of its own (ip netns exec makes / a slave mount: it must be one), then the host's
    // kernel seen from inside: its /proc, /sys (BTF), /dev, and a /run of its own.
    // Private: nothing mounted or unmounted under it reaches the host's own mounts (a shared /dev would).
    sh('mount', ['--bind', root, root]);
    mounted.push(root);
    sh('mount', ['--make-rprivate', root]);
    for (const [fsType, dir] of [['proc', 'proc'], ['sysfs', 'sys'], ['tmpfs', 'run']] as const) {
      sh('mount', ['-t', fsType, fsType, path.join(root, dir)]);
      mounted.push(path.join(root, dir));
    }
    sh('mount', ['--rbind', '/dev', path.join(root, 'dev')]);
    mounted.push(path.join(root, 'dev'));
    sh('mount', ['--make-rslave', path.join(root, 'dev')]);
    fs.copyFileSync(deb, path.join(root, 'tmp', path.basename(deb)));
    sh('chroot', [root, 'apt-get', 'update', '-qq'], { timeout: 600_000 });
    sh('chroot', [root, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', `/tmp/${path.basename(deb)}`], { timeout: 900_000 });
    assert.notEqual(spawnSync('chroot', [root, 'sh', '-c', 'command -v cc || command -v gcc || command -v clang']).status, 0, 'installing pulled in no compiler');

    const demo = spawnSync('chroot', [root, 'tracepkt', 'demo'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(demo.status, 0, `${demo.stdout}\n${demo.stderr}`);
    assert.match(demo.stdout, /^Verdict: delivered and answered\.$/m);
    assert.match(demo.stdout, /eth0 .*request 172\.17\.0\.1 -> 172\.17\.0\.2/);
    // libpcap came with the package: its compiler answers (a bad expression, refused before anything loads).
    const filter = spawnSync('chroot', [root, 'tracepkt', '--filter', 'tcp and'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(filter.status, 2, filter.stderr);
    assert.equal(filter.stderr, 'tracepkt: bad filter "tcp and": can\'t parse filter expression: syntax error\n');
  } finally {
    for (const dir of mounted.reverse()) spawnSync('umount', ['-R', '-l', dir]);
    // Never delete through a mount that is still there (the host's /dev).
    const still = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1]?.startsWith(root));
    if (!still) fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    else assert.fail(`${root} still has mounts: left in place`);
  }
});

test('release: the npm tarball installs with its prebuilt addon and BPF objects, building nothing', { timeout: 600_000 }, () => {
  const { tgz } = built();
  const listing = sh('tar', ['-tzf', tgz]);
  assert.match(listing, /^package\/prebuilds\/linux-x64\/tracepkt\.napi\.node$/m);
  assert.match(listing, /^package\/dist\/bpf\/tracepkt\.bpf\.o$/m);
  assert.match(listing, /^package\/dist\/bpf\/tracepkt\.compat\.bpf\.o$/m);
  assert.doesNotMatch(listing, /binding\.gyp|^package\/native\/|^package\/bpf\//m, 'nothing to build from');
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-npm-'));
  try {
    sh('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', tgz], { timeout: 300_000 });
    const installed = path.join(prefix, 'lib', 'node_modules', 'tracepkt');
    assert.ok(!fs.existsSync(path.join(installed, 'build')), 'no addon built on install');
    const doctor = spawnSync(path.join(prefix, 'bin', 'tracepkt'), ['doctor'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(doctor.status, 0, `${doctor.stdout}\n${doctor.stderr}`);
    assert.match(doctor.stdout, /^tracepkt can trace on this kernel\.$/m);
  } finally {
    fs.rmSync(prefix, { recursive: true, force: true });
  }
});
