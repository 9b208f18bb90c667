/**
 * deploy/kubernetes/tracepkt.yaml against the Kubernetes API's own models
 * (test/kubernetes/validate.py: Debian's python3-kubernetes, generated from
 * the OpenAPI specification), strictly: unknown fields, wrong types and
 * missing required fields are errors. No cluster runs here; the checker is
 * shown to catch each kind of mistake, and what the agent will be started
 * with is parsed by tracepkt's own option parser.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAgentArgs } from '../../src/commands/agent';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const MANIFEST = path.join(ROOT, 'deploy', 'kubernetes', 'tracepkt.yaml');
const VALIDATE = path.join(ROOT, 'test', 'kubernetes', 'validate.py');
// Debian's Python, where python3-kubernetes is (not a python3 of another installation first on PATH).
const PYTHON = '/usr/bin/python3';

const problems = (file: string): string[] => JSON.parse(execFileSync(PYTHON, [VALIDATE, file], { encoding: 'utf8' }));
const documents = (file: string): Record<string, any>[] =>
  JSON.parse(execFileSync(PYTHON, ['-c', 'import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))', file], { encoding: 'utf8' }));

test('the manifest is valid against the Kubernetes API models, strictly', () => {
  assert.deepEqual(problems(MANIFEST), []);
  assert.deepEqual(documents(MANIFEST).map((d) => `${d.apiVersion} ${d.kind}`), ['v1 Namespace', 'v1 ServiceAccount', 'apps/v1 DaemonSet', 'rbac.authorization.k8s.io/v1 ClusterRole', 'rbac.authorization.k8s.io/v1 Role']);
});

test('the checker catches a misspelt field, a wrong type, a missing required field (or it would prove nothing)', () => {
  const text = fs.readFileSync(MANIFEST, 'utf8');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-k8s-'));
  try {
    const cases: [string, string, RegExp][] = [
      ['privileged: true', 'privilegd: true', /securityContext\.privilegd: no such field in V1SecurityContext/],
      ['hostPID: true', 'hostPID: "true"', /spec\.hostPID: bool expected, got str/],
      ['containerPort: 7447', 'containerPort: "7447"', /containerPort: int expected, got str/],
      ['secretName: tracepkt-token', 'secretNam: tracepkt-token', /secret\.secretNam: no such field/],
      ['- name: agent\n', '- nme: agent\n', /containers\[0\]: Invalid value for `name`, must not be `None`/],
    ];
    for (const [from, to, why] of cases) {
      assert.ok(text.includes(from), from);
      const file = path.join(dir, 'bad.yaml');
      fs.writeFileSync(file, text.replace(from, to));
      const found = problems(file);
      assert.ok(found.some((p) => why.test(p)), `${to}: ${found.join('; ')}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the DaemonSet runs the image the release builds, as tracepkt expects to be run', () => {
  const docs = documents(MANIFEST);
  const ds = docs.find((d) => d.kind === 'DaemonSet')!;
  const pod = ds.spec.template.spec;
  const [agent] = pod.containers;
  const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
  assert.equal(agent.image, `tracepkt-agent:${version}`, 'tools/image.sh tags tracepkt-agent:VERSION');
  assert.equal(agent.imagePullPolicy, 'Never', 'loaded on the nodes, no registry');
  assert.deepEqual([pod.hostNetwork, pod.hostPID, agent.securityContext.privileged, pod.automountServiceAccountToken], [true, true, true, false]);
  // The arguments, as the kubelet expands them, are what `tracepkt agent` takes.
  for (const [ip, name] of [['192.0.2.11', 'node-a'], ['fd00::11', `ip-10-0-1-17.eu-west-1.compute.internal`]]) {
    // IPv6 nodes too: the kubelet writes $(HOST_IP):7447 as fd00::11:7447.
    const env: Record<string, string> = { HOST_IP: ip, NODE_NAME: name };
    const args = agent.args.map((a: string) => a.replace(/\$\((\w+)\)/g, (_: string, v: string) => env[v]));
    assert.deepEqual(parseAgentArgs(args), { host: ip, port: 7447, credentials: { tokenFile: '/etc/tracepkt/token' }, name });
  }
  assert.equal(agent.ports[0].containerPort, 7447);
  assert.equal(agent.readinessProbe, undefined, 'a TCP probe would be a refused peer in the log every 10 s');
  // The token: a regular file (subPath), root's, readable by no one else, where --token-file says.
  const token = agent.volumeMounts.find((m: any) => m.name === 'token');
  assert.deepEqual([token.mountPath, token.subPath, token.readOnly], ['/etc/tracepkt/token', 'token', true]);
  const secret = pod.volumes.find((v: any) => v.name === 'token').secret;
  assert.deepEqual([secret.secretName, secret.defaultMode], ['tracepkt-token', 0o400]);
  // Read-only host paths for names: ip netns names, pod names.
  assert.deepEqual(agent.volumeMounts.filter((m: any) => m.name !== 'token').map((m: any) => [m.mountPath, m.readOnly]), [['/run/netns', true], ['/var/log/pods', true]]);
  // The plugin's rights: get the pods named, list and exec into the agents; nothing more.
  const rules = docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role').map((d) => [d.kind, d.metadata.namespace ?? '*', JSON.stringify(d.rules)]);
  assert.deepEqual(rules, [
    ['ClusterRole', '*', JSON.stringify([{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }])],
    ['Role', 'tracepkt', JSON.stringify([{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }, { apiGroups: [''], resources: ['pods/exec'], verbs: ['create', 'get'] }])],
  ]);
  // The plugin looks for the agents by this label, in this namespace.
  const plugin = fs.readFileSync(path.join(ROOT, 'deploy', 'kubernetes', 'kubectl-tracepkt'), 'utf8');
  assert.ok(plugin.includes(`SELECTOR=app.kubernetes.io/name=${ds.spec.template.metadata.labels['app.kubernetes.io/name']}`));
  assert.ok(plugin.includes(`AGENTS_NS=\${TRACEPKT_AGENTS_NAMESPACE:-${ds.metadata.namespace}}`));
});
