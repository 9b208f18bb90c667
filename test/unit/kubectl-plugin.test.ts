/**
 * deploy/kubernetes/kubectl-tracepkt, run against a stand-in for kubectl
 * (no cluster runs here): a recorded cluster of three nodes, an agent pod on
 * each (one not running), application pods in namespace shop. What the
 * plugin asks kubectl, and the tracepkt command it runs in which agent pod,
 * are asserted exactly; so are its refusals.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const PLUGIN = path.resolve(__dirname, '..', '..', '..', 'deploy', 'kubernetes', 'kubectl-tracepkt');

/**
 * The cluster as kubectl would answer: agent pods (name, node, hostIP, phase, deletionTimestamp;
 * separated by | as the plugin's jsonpath asks), and pods by namespace/name. node-d's agent is not
 * running, one more is not scheduled anywhere, and node-b's old agent is being replaced.
 */
const CLUSTER = [
  ['tracepkt-agent-x9k2f', 'node-c', '192.0.2.13', 'Running', ''],
  ['tracepkt-agent-4hv7q', 'node-a', '192.0.2.11', 'Running', ''],
  ['tracepkt-agent-old01', 'node-b', '192.0.2.12', 'Running', '2026-12-07T06:00:00Z'],
  ['tracepkt-agent-p2m8d', 'node-b', '192.0.2.12', 'Running', ''],
  ['tracepkt-agent-zz001', 'node-d', '', 'Pending', ''],
  ['tracepkt-agent-zz002', '', '', 'Pending', ''],
];
const AGENTS = CLUSTER.map((f) => f.join('|'));
const PODS: Record<string, { node: string; ip: string }> = { 'shop/web': { node: 'node-b', ip: '10.244.2.7' }, 'shop/db': { node: 'node-c', ip: '10.244.3.9' } };

/** A kubectl that answers from the above, logs every call, and for exec prints the command it would run (exit status EXEC_STATUS). */
function fakeKubectl(dir: string, agents: string[] = AGENTS): void {
  const script = `#!${process.execPath}
const fs = require('fs');
const argv = process.argv.slice(2);
fs.appendFileSync(process.env.KUBECTL_LOG, JSON.stringify(argv) + '\\n');
const agents = ${JSON.stringify(agents)};
const pods = ${JSON.stringify(PODS)};
if (argv[0] === 'exec') { console.log(JSON.stringify(argv.slice(argv.indexOf('--') + 1))); process.exit(Number(process.env.EXEC_STATUS || 0)); }
if (argv[0] === 'config') { console.log('shop'); process.exit(0); }
if (argv[0] === 'get' && argv[1] === 'pods') { process.stdout.write(agents.join('\\n') + '\\n'); process.exit(0); }
if (argv[0] === 'get' && argv[1] === 'pod') {
  const i = argv.indexOf('-n');
  const pod = pods[(i >= 0 ? argv[i + 1] : 'shop') + '/' + argv[2]];
  if (!pod) { console.error('Error from server (NotFound): pods "' + argv[2] + '" not found'); process.exit(1); }
  const field = argv.find((a) => a.startsWith('jsonpath='));
  process.stdout.write(field.includes('nodeName') ? pod.node : pod.ip);
  process.exit(0);
}
console.error('unexpected kubectl call'); process.exit(99);
`;
  fs.writeFileSync(path.join(dir, 'kubectl'), script, { mode: 0o755 });
}

function plugin(args: string[], env: Record<string, string> = {}, agents = AGENTS) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-kubectl-'));
  try {
    fakeKubectl(dir, agents);
    const log = path.join(dir, 'calls');
    const r = spawnSync(PLUGIN, args, { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, KUBECTL_LOG: log, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]) : [];
    const ran = r.status === 0 || env.EXEC_STATUS ? (JSON.parse(r.stdout) as string[]) : null;
    return { status: r.status, stderr: r.stderr, calls, ran, exec: calls.find((c) => c[0] === 'exec') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('kubectl tracepkt: a probe from pod/NAME to pod/NAME runs on the sender\'s node, every other running agent a --node', () => {
  const r = plugin(['-n', 'shop', '--from', 'pod/web', '--json', 'pod/db']);
  assert.equal(r.status, 0, r.stderr);
  // In the agent pod of node-b (web's node), not through a terminal (stdin is not one here).
  assert.deepEqual(r.exec!.slice(0, 7), ['exec', '-i', '-n', 'tracepkt', 'tracepkt-agent-p2m8d', '--', 'tracepkt']);
  assert.deepEqual(r.ran, ['tracepkt', '--node', 'node-a=192.0.2.11:7447', '--node', 'node-c=192.0.2.13:7447', '--token-file', '/etc/tracepkt/token', '--from', 'pod:shop/web', '--json', '10.244.3.9']);
  assert.match(r.stderr, /no running agent on node\(s\) \(unscheduled:tracepkt-agent-zz002\) node-d: not traced there/);
  assert.match(r.stderr, /on node node-b \(pod tracepkt\/tracepkt-agent-p2m8d\)/);
  // It asked for the agents by their label, in their namespace.
  assert.ok(r.calls.some((c) => c.join(' ').startsWith('get pods -n tracepkt -l app.kubernetes.io/name=tracepkt-agent')));
});

test('kubectl tracepkt: passive tracing on a node given with --on; the context\'s namespace for pod names; the exit status passed on', () => {
  const passive = plugin(['--on', 'node-c', '--filter', 'icmp', '-c', '1']);
  assert.equal(passive.status, 0, passive.stderr);
  assert.deepEqual(passive.ran, ['tracepkt', '--node', 'node-a=192.0.2.11:7447', '--node', 'node-b=192.0.2.12:7447', '--token-file', '/etc/tracepkt/token', '--filter', 'icmp', '-c', '1']);
  const probe = plugin(['--from', 'pod/web', 'pod/db'], { EXEC_STATUS: '1' });
  assert.equal(probe.status, 1, 'the probe unanswered: tracepkt\'s status');
  assert.deepEqual(probe.ran!.slice(-3), ['--from', 'pod:shop/web', '10.244.3.9'], 'the namespace kubectl\'s context names');
  // Without --from or --on: the first agent's node by name.
  const plain = plugin(['10.244.3.9']);
  assert.deepEqual(plain.exec!.slice(0, 5), ['exec', '-i', '-n', 'tracepkt', 'tracepkt-agent-4hv7q']);
});

test('kubectl tracepkt: refusals, one line each, exit 2, nothing run', () => {
  const cases: [string[], RegExp][] = [
    [['--from', 'pod/nope', '10.0.0.1'], /^kubectl tracepkt: pod nope: Error from server \(NotFound\): pods "nope" not found\n$/],
    [['--token-file=/tmp/t', '10.0.0.1'], /^kubectl tracepkt: --token-file is the plugin's to give/],
    [['--node=x=1.2.3.4:7447', '10.0.0.1'], /^kubectl tracepkt: --node is the plugin's to give/],
    [['--on', 'node-a', '--from', 'pod/web', '10.0.0.1'], /^kubectl tracepkt: --from and --on both say where the probe leaves from/],
    [['--from', 'pod/a;reboot', '10.0.0.1'], /^kubectl tracepkt: bad pod name: a;reboot\n$/],
    [['-n', 'Shop!', '10.0.0.1'], /^kubectl tracepkt: bad namespace: Shop!\n$/],
    [['--node', 'x=1.2.3.4:7447', '10.0.0.1'], /^kubectl tracepkt: --node is the plugin's to give/],
    [['--token-file', '/tmp/t', '10.0.0.1'], /^kubectl tracepkt: --token-file is the plugin's to give/],
    [['--on', 'node-d', '10.0.0.1'], /^kubectl tracepkt: no running agent on node node-d\n$/m],
  ];
  for (const [args, why] of cases) {
    const r = plugin(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.split('\n').filter((l) => !/not traced there/.test(l)).join('\n'), why);
    assert.equal(r.exec, undefined, 'nothing run');
  }
});

test('kubectl tracepkt: one node alone (no --node, no token to give); IPv6 node addresses in brackets; --opt=value forms', () => {
  const alone = plugin(['--from=pod/web', '10.244.3.9'], {}, ['tracepkt-agent-p2m8d|node-b|192.0.2.12|Running|']);
  assert.equal(alone.status, 0, alone.stderr);
  assert.deepEqual(alone.ran, ['tracepkt', '--from', 'pod:shop/web', '10.244.3.9']);
  const six = plugin(['--namespace=shop', '--from', 'pod/web', '10.244.3.9'], {}, ['tracepkt-agent-p2m8d|node-b|fd00::12|Running|', 'tracepkt-agent-x9k2f|node-c|fd00::13|Running|']);
  assert.equal(six.status, 0, six.stderr);
  assert.deepEqual(six.ran!.slice(0, 5), ['tracepkt', '--node', 'node-c=[fd00::13]:7447', '--token-file', '/etc/tracepkt/token']);
});
