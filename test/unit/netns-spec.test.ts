/**
 * Names in are names out: what tracepkt prints for a namespace is accepted
 * back by --from and as TARGET. A fake /proc, Docker, podman and kubelet
 * tree stands for the system (the integration tests use a real dockerd).
 */
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { closeMatches, looksLikeNetns, resolveNetns, type NetnsRootsForSpec } from '../../src/names/netns-spec';
import { chooseAddress, globalAddresses } from '../../src/probe/target';
import { TracepktError } from '../../src/errors';
import { dataRootOf } from '../../src/names/containers';

const WEB = 'a1b2c3d4'.repeat(8);
const WEB2 = 'a1b2ffff'.repeat(8);
const DB = 'dbdbdbdb'.repeat(8);
const POD_DEFAULT = '0f8e7d6c-1111-2222-3333-444455556666';
const POD_PROD = '9a8b7c6d-aaaa-bbbb-cccc-ddddeeeeffff';

/** The fake systems' directories, removed when the file's tests are done. */
const made: string[] = [];
after(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

function fakeSystem(): NetnsRootsForSpec {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tracepkt-spec-'));
  made.push(root);
  const at = (...p: string[]) => path.join(root, ...p);
  const proc = (pid: number, cgroup: string, environ = '') => {
    fs.mkdirSync(at('proc', String(pid), 'ns'), { recursive: true });
    fs.writeFileSync(at('proc', String(pid), 'ns', 'net'), '');
    fs.writeFileSync(at('proc', String(pid), 'cgroup'), cgroup);
    fs.writeFileSync(at('proc', String(pid), 'environ'), environ);
  };
  proc(1, '0::/init.scope\n');
  proc(100, `0::/system.slice/docker-${WEB}.scope\n`);
  proc(101, `0::/system.slice/docker-${WEB}.scope\n`); // a second process of the same container
  proc(200, `0::/system.slice/docker-${WEB2}.scope\n`);
  proc(300, `0::/machine.slice/libpod-${DB}.scope\n`);
  proc(400, `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_DEFAULT.replace(/-/g, '_')}.slice/cri-containerd-${'c'.repeat(64)}.scope\n`, 'HOSTNAME=api\0');
  proc(500, `0::/kubepods/besteffort/pod${POD_PROD}/${'d'.repeat(64)}\n`, 'HOSTNAME=api\0');
  for (const [id, name] of [[WEB, '/web'], [WEB2, '/web2']]) {
    fs.mkdirSync(at('docker', id), { recursive: true });
    fs.writeFileSync(at('docker', id, 'config.v2.json'), JSON.stringify({ Name: name }));
  }
  fs.mkdirSync(at('podman'));
  fs.writeFileSync(at('podman', 'containers.json'), JSON.stringify([{ id: DB, names: ['db'] }]));
  fs.mkdirSync(at('pods', `default_api_${POD_DEFAULT}`), { recursive: true });
  fs.mkdirSync(at('pods', `prod_api_${POD_PROD}`), { recursive: true });
  fs.mkdirSync(at('netns'));
  fs.writeFileSync(at('netns', 'blue'), '');
  return { procDir: at('proc'), dockerDir: at('docker'), podmanDir: at('podman'), netnsDir: at('netns'), podLogDir: at('pods') };
}

const refused = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof TracepktError && pattern.test(err.message) && !err.message.includes('\n'));

test('every name tracepkt prints resolves back to its namespace', () => {
  const roots = fakeSystem();
  const ns = (pid: number) => path.join(roots.procDir, String(pid), 'ns', 'net');
  assert.deepEqual(resolveNetns('blue', roots), { path: path.join(roots.netnsDir, 'blue'), name: 'blue' });
  assert.deepEqual(resolveNetns('host', roots), { path: ns(1), name: 'host' });
  assert.deepEqual(resolveNetns('docker:web', roots), { path: ns(100), name: 'docker:web' });
  assert.deepEqual(resolveNetns('web', roots), { path: ns(100), name: 'docker:web' }, 'a container name alone, when one container has it');
  assert.deepEqual(resolveNetns(`docker:${WEB.slice(0, 12)}`, roots), { path: ns(100), name: 'docker:web' }, 'the short id docker ps shows');
  assert.deepEqual(resolveNetns('docker:a1b2c3', roots), { path: ns(100), name: 'docker:web' }, 'a unique id prefix');
  assert.deepEqual(resolveNetns('podman:db', roots), { path: ns(300), name: 'podman:db' });
  assert.deepEqual(resolveNetns('pod:prod/api', roots), { path: ns(500), name: 'pod:api' });
  assert.deepEqual(resolveNetns('pod:default/api', roots), { path: ns(400), name: 'pod:api' });
  assert.deepEqual(resolveNetns('pid:300', roots), { path: ns(300), name: 'pid:300' });
  assert.equal(resolveNetns(ns(200), roots).path, ns(200), 'a path as given');
});

test('a name that fits several containers, or none, is refused with one line saying which are close', () => {
  const roots = fakeSystem();
  refused(() => resolveNetns('docker:a1b2', roots), /names 2 containers: docker:web, docker:web2/);
  refused(() => resolveNetns('pod:api', roots), /names 2 containers: pod:api, pod:api.*pod:NAMESPACE\/NAME/);
  refused(() => resolveNetns('docker:wbe', roots), /unknown network namespace "docker:wbe" \(close: docker:web/);
  refused(() => resolveNetns('docker:api', roots), /unknown network namespace "docker:api" \(close: pod:api/);
  refused(() => resolveNetns('nothing-like-it', roots), /^unknown network namespace "nothing-like-it": give an `ip netns` name/);
  refused(() => resolveNetns('pid:99999', roots), /no process 99999/);
  refused(() => resolveNetns('pid:x', roots), /a process id is a number/);
  refused(() => resolveNetns('', roots), /empty/);
  refused(() => resolveNetns('/nonexistent/ns', roots), /no network namespace at \/nonexistent\/ns/);
  refused(() => resolveNetns('blue', roots, () => false), /is not a network namespace/);
});

test('close matches: small edits and containment, closest first, five at most', () => {
  assert.deepEqual(closeMatches('docker:wbe', ['docker:web', 'docker:db', 'host']), ['docker:web']);
  assert.deepEqual(closeMatches('api', ['pod:api', 'pod:api-gateway', 'docker:db']), ['pod:api', 'pod:api-gateway']);
  assert.equal(closeMatches('n', Array.from({ length: 20 }, (_, i) => `n${i}`)).length, 5);
});

test('namespace forms are told from host names', () => {
  for (const s of ['docker:web', 'pod:a/b', 'pid:1', '/run/netns/x', 'host', 'podman:db', 'containerd:abc']) assert.ok(looksLikeNetns(s), s);
  for (const s of ['example.com', 'web', 'localhost']) assert.ok(!looksLikeNetns(s), s);
});

test('a namespace as TARGET: its global address of the family asked, the first of several named in a note', () => {
  const json = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'ip-addr-two-v4.json'), 'utf8');
  const addresses = globalAddresses(json);
  assert.deepEqual(addresses.map((a) => `${a.ifname} ${a.address}`), ['d0 10.9.0.2', 'd0 10.9.1.2', 'd0 fd00:9::2'], 'loopback and link-local left out');
  const ns = { path: '/x', name: 'docker:web' };
  const v4 = chooseAddress(ns, addresses);
  assert.equal(v4.address, '10.9.0.2');
  assert.match(v4.note ?? '', /docker:web has 2 IPv4 addresses \(d0 10\.9\.0\.2, d0 10\.9\.1\.2\): tracing to 10\.9\.0\.2/);
  assert.deepEqual(chooseAddress(ns, addresses, 6), { address: 'fd00:9::2', family: 6, note: undefined });
  refused(() => chooseAddress(ns, [], 4), /docker:web has no global IPv4 address/);
  assert.deepEqual(globalAddresses('not json'), []);
});

test('a dockerd started with its own --data-root is where its containers are named', () => {
  assert.equal(dataRootOf('dockerd\0--data-root\0/tmp/d\0-H\0unix:///s'), '/tmp/d');
  assert.equal(dataRootOf('/usr/sbin/dockerd\0--data-root=/srv/docker\0'), '/srv/docker');
  assert.equal(dataRootOf('dockerd\0-g\0/old/graph'), '/old/graph');
  assert.equal(dataRootOf('dockerd\0-H\0fd://'), null);
});
