/** Nothing of ours stays in the kernel, however the run ends. */
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as assert from 'node:assert/strict';
import { leftoverLabNamespaces } from '../../src/lab/lab';
import { bridgeLab, eventually, finished, OUR_MAPS, OUR_PROGRAMS, ourKernelObjects, runCli, startCli, withLab } from './helpers';

/** Starts a long trace and resolves once events flow: the programs are attached by then. */
async function startLongTrace(from: string, target: string) {
  const before = ourKernelObjects();
  const child = startCli(['--json', '-c', '500', '--from', from, target]);
  const done = finished(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('close', () => reject(new Error('tracepkt ended before tracing')));
  });
  const during = ourKernelObjects();
  const added = {
    progs: during.progs.filter((id) => !before.progs.includes(id)),
    maps: during.maps.filter((id) => !before.maps.includes(id)),
    links: during.links.filter((id) => !before.links.includes(id)),
  };
  // The check below can only pass for the right reason if it sees them now: every hook program,
  // every map, and a link per attached program (netfilter checkpoints add programs and links).
  for (const name of [...OUR_PROGRAMS, ...OUR_MAPS]) assert.ok(during.names.includes(name), `${name} held while tracing`);
  assert.ok(added.progs.length >= OUR_PROGRAMS.length, 'the hook programs are this run’s');
  assert.ok(added.links.length >= added.progs.length, 'every program attached through a link');
  assert.equal(added.maps.length, OUR_MAPS.length, 'this run’s maps');
  // The probe it started: 500 pings, 0.2 s apart, in the sender's namespace.
  const pings = () =>
    execFileSync('ip', ['netns', 'pids', from], { encoding: 'utf8' })
      .split('\n')
      .filter((p) => /^\d+$/.test(p) && /^ping/.test(fs.readFileSync(`/proc/${p}/comm`, 'utf8')));
  assert.ok(await eventually(() => pings().length === 1), 'its ping runs while tracing');
  return { child, done, added, probe: Number(pings()[0]) };
}

function stillHeld(added: { progs: number[]; maps: number[]; links: number[] }) {
  const now = ourKernelObjects();
  return [
    ...added.progs.filter((id) => now.progs.includes(id)),
    ...added.maps.filter((id) => now.maps.includes(id)),
    ...added.links.filter((id) => now.links.includes(id)),
  ];
}

test('a normal exit leaves no BPF program, link or map behind', () =>
  withLab(async (lab) => {
    const { host, v4 } = bridgeLab(lab);
    const before = ourKernelObjects();
    const run = await runCli(['--json', '-c', '2', '--from', host, v4]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.events.length, 12, 'it did trace');
    assert.ok(await eventually(() => JSON.stringify(ourKernelObjects()) === JSON.stringify(before)), 'nothing new held');
  }));

test('Ctrl-C during the demo still removes its lab', async () => {
  const child = startCli(['demo']);
  const done = finished(child);
  let lab = '';
  await new Promise<void>((resolve) =>
    child.stderr!.on('data', (s: Buffer) => {
      lab ||= /namespace (tpk-[0-9a-f]{4})-host/.exec(s.toString())?.[1] ?? '';
      if (lab) resolve();
    }),
  );
  child.kill('SIGINT');
  const run = await done;
  // The demo may already have finished when the signal lands; either way the lab is gone.
  assert.ok(run.status === 130 || run.status === 0, `exit ${run.status}: ${run.stderr}`);
  assert.deepEqual(leftoverLabNamespaces().filter((n) => n.startsWith(lab)), []);
});

for (const [signal, status] of [['SIGKILL', null], ['SIGTERM', 143], ['SIGINT', 130]] as const) {
  test(`${signal} mid-trace leaves no BPF program, link or map behind`, () =>
    withLab(async (lab) => {
      const { host, v4 } = bridgeLab(lab);
      const { child, done, added, probe } = await startLongTrace(host, v4);
      child.kill(signal);
      const run = await done;
      if (status === null) assert.equal(run.signal, 'SIGKILL');
      else {
        assert.equal(run.status, status, run.stderr);
        assert.doesNotMatch(run.stderr, /internal error|\n\s+at /);
        assert.equal(JSON.parse(run.stdout.trim().split('\n').pop()!).kind, 'summary', 'the summary still comes out');
      }
      // The kernel frees fd-owned objects asynchronously (RCU): wait, do not race it.
      assert.ok(await eventually(() => stillHeld(added).length === 0), `still held: ${stillHeld(added)}`);
      assert.ok(await eventually(() => !fs.existsSync(`/proc/${probe}`)), 'its ping does not outlive it');
    }));
}
