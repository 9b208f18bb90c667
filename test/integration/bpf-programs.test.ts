/**
 * The BPF programs on the path: someone else's XDP and tc programs that
 * drop ICMP (test/bpf/drop-icmp.bpf.c), attached with ip and tc as a user
 * would. bpftool is the independent witness of what is attached; after the
 * run, everything of theirs is as it was, and no link of ours is left.
 * Where the kernel runs BPF trampolines (bpftool loading an fentry program
 * is the witness: the matrix's 5.10, 6.1 and 6.12, not the build machines' kernel)
 * what each program returned for the probe is traced and the verdict says
 * which one dropped it; elsewhere, which ones could have, and a note why.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import type { BpfProgramOnPath } from '../../src/events';
import { eventually, finished, kernelAtLeast, routerLab, runCli, startCli, withLab } from './helpers';

const OBJECT = path.resolve(__dirname, '..', 'bpf', 'drop-icmp.bpf.o');

/** What bpftool says is attached in a namespace: its JSON (xdp and tc lists). */
const bpftoolNet = (ns: string) => JSON.parse(execFileSync('ip', ['netns', 'exec', ns, 'bpftool', '-j', 'net'], { encoding: 'utf8' }))[0] as { xdp: { devname: string; ifindex: number; mode: string; id: number }[]; tc: { devname: string; kind: string; id: number; name: string }[] };
/**
 * Whether this kernel runs BPF trampolines (what fexit on a BPF program needs), asked of bpftool:
 * whether it can load an fentry program of the tests' own (test/bpf/fentry-witness.bpf.c), pinned
 * in a bpffs mounted in a mount namespace of its own (gone with it, as is the program).
 */
const trampolines = (() => {
  let known: boolean | undefined;
  const script = 'd=$(mktemp -d) && mount -t bpf bpf "$d" && bpftool prog load "$1" "$d/witness"; rc=$?; umount "$d"; rmdir "$d"; exit $rc';
  return () => {
    if (known === undefined) {
      try {
        execFileSync('unshare', ['-m', 'sh', '-c', script, 'sh', path.resolve(__dirname, '..', 'bpf', 'fentry-witness.bpf.o')], { stdio: 'pipe' });
        known = true;
      } catch {
        known = false;
      }
    }
    return known;
  };
})();

/** Links of our fexit copies still in the kernel (there must be none after a run). */
const ourTracingLinks = () =>
  (JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' }) || '[]') as { prog_id: number }[])
    .map((l) => JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(l.prog_id)], { encoding: 'utf8' })) as { name: string })
    .filter((p) => /^tp_(xdp|tc)_return_/.test(p.name));

/** What a program did with the probe, as the summary says: [direction, action, ends]. */
const returns = (p: BpfProgramOnPath) => p.returned.map((r) => [r.dir, r.action, r.ends]);

const programShow = (id: number) => JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' })) as { id: number; tag: string; name: string; run_cnt?: number };

test('an XDP program of someone else’s drops the ping: the verdict names it and its interface, as bpftool lists it; it is left as it was', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.ip(topo.b, 'link', 'set', 'dev', 'eth0', 'xdpgeneric', 'obj', OBJECT, 'sec', 'xdp');
    const [xdp] = bpftoolNet(topo.b).xdp;
    assert.equal(xdp?.devname, 'eth0');
    const before = programShow(xdp.id);
    // Another ping through the same program all along: not the probe, so not among what it returned for the probe.
    const other = spawn('ip', ['netns', 'exec', topo.a, 'ping', '-q', '-i', '0.05', topo.v4], { stdio: 'ignore' });
    let run;
    try {
      run = await runCli(['--json', '--timeout', '1', '--from', topo.a, topo.v4]);
    } finally {
      other.kill();
    }
    assert.equal(run.status, 1, run.stderr);
    const programs = run.summary?.bpf_programs as BpfProgramOnPath[];
    assert.deepEqual(
      programs.map((p) => [p.netns_name, p.ifname, p.hook, p.direction, p.mode, p.id, p.name, p.tag, p.type]),
      [[topo.b, 'eth0', 'xdp', 'ingress', 'generic', xdp.id, 'drop_icmp_xdp', before.tag, 'xdp']],
      'the only program on the path, as bpftool lists it',
    );
    const named = `drop_icmp_xdp \\(xdp generic, id ${xdp.id}, tag ${before.tag}\\)`;
    if (trampolines()) {
      assert.equal(programs[0].traced, true);
      assert.deepEqual(returns(programs[0]), [['request', 'XDP_DROP', 'drop']], 'the probe once, the other ping never');
      assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.b} at \\S+: XDP on eth0 dropped it(?: \\(\\w+\\))?: ${named} returned XDP_DROP for it$`));
    } else {
      assert.equal(programs[0].traced, false);
      assert.ok((run.summary?.notes as string[]).some((n) => /^what the BPF programs on the path returned is not traced \(fexit on BPF programs: .+\): a drop names the programs that could have made it$/.test(n)), JSON.stringify(run.summary?.notes));
      assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.b} at \\S+: XDP on eth0 dropped it(?: \\(\\w+\\))?; the BPF program that could have dropped it: ${named}$`));
    }
    assert.deepEqual(ourTracingLinks(), [], 'no link of ours left');
    // Theirs, untouched: the same program, attached the same way.
    assert.deepEqual(bpftoolNet(topo.b).xdp.map((x) => [x.devname, x.mode, x.id]), [['eth0', 'generic', xdp.id]]);
    assert.equal(programShow(xdp.id).tag, before.tag);

    const text = await runCli(['--timeout', '1', '--from', topo.a, topo.v4]);
    const did = trampolines() ? '; returned XDP_DROP for the request' : '';
    assert.match(text.stdout, new RegExp(`BPF programs on the path:\\n    eth0 in ${topo.b} \\(\\d+\\): ${named}${did}\\n`));
  }));

test('a tc egress program in direct-action mode drops the ping on the router: named with its interface and direction; a tc ingress program that lets it pass is listed, not blamed', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    for (const dev of ['rb', 'ra']) lab.exec(topo.r, 'tc', 'qdisc', 'add', 'dev', dev, 'clsact');
    lab.exec(topo.r, 'tc', 'filter', 'add', 'dev', 'rb', 'egress', 'bpf', 'da', 'obj', OBJECT, 'sec', 'tc');
    // On ra's ingress the same program would drop: only the reply direction would meet it, and ICMP
    // never gets that far. A program that passes it: the classifier without direct-action returns an
    // ICMP classid, not a drop.
    lab.exec(topo.r, 'tc', 'filter', 'add', 'dev', 'ra', 'ingress', 'bpf', 'obj', OBJECT, 'sec', 'tc');
    const listed = bpftoolNet(topo.r).tc;
    const egress = listed.find((t) => t.devname === 'rb' && t.kind === 'clsact/egress')!;
    const ingress = listed.find((t) => t.devname === 'ra' && t.kind === 'clsact/ingress')!;
    assert.ok(egress && ingress, JSON.stringify(listed));
    const run = await runCli(['--json', '--timeout', '1', '--from', topo.a, topo.v4]);
    assert.equal(run.status, 1, run.stderr);
    const programs = run.summary?.bpf_programs as BpfProgramOnPath[];
    assert.deepEqual(
      programs.map((p) => [p.netns_name, p.ifname, p.hook, p.direction, p.mode, p.id]).sort(),
      [
        [topo.r, 'ra', 'tc', 'ingress', 'classifier', ingress.id],
        [topo.r, 'rb', 'tc', 'egress', 'direct-action', egress.id],
      ].sort(),
    );
    const tag = programShow(egress.id).tag;
    const reason = kernelAtLeast(5, 17) ? ' \\(TC_EGRESS\\)' : '';
    const named = `drop_icmp_tc \\(tc egress direct-action, id ${egress.id}, tag ${tag}\\)`;
    const byId = (id: number) => programs.find((p) => p.id === id)!;
    if (trampolines()) {
      // Traced: the egress program did it; the classifier on ra's ingress returned a class (the action decides), for the request only.
      assert.deepEqual(returns(byId(egress.id)), [['request', 'TC_ACT_SHOT', 'drop']]);
      assert.deepEqual(returns(byId(ingress.id)), [['request', 'class 0:2', null]]);
      assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.r} at \\S+: tc egress on rb dropped it${reason}: ${named} returned TC_ACT_SHOT for it$`));
    } else {
      assert.ok(programs.every((p) => !p.traced && p.returned.length === 0));
      assert.match(
        run.summary?.verdict,
        new RegExp(`^dropped in namespace ${topo.r} at \\S+: (tc egress on rb dropped it${reason}; the BPF program that could have dropped it|freed where tc egress runs on rb, and this kernel gives no reason; the BPF program there could have dropped it): ${named}$`),
      );
    }
    assert.deepEqual(ourTracingLinks(), [], 'no link of ours left');
    assert.deepEqual(bpftoolNet(topo.r).tc.map((t) => [t.devname, t.kind, t.id]).sort(), listed.map((t) => [t.devname, t.kind, t.id]).sort(), 'their filters, as they were');
  }));

test('SIGKILL while tracing the programs on the path: our fexit programs and links on theirs are gone, theirs stays attached', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.ip(topo.b, 'link', 'set', 'dev', 'eth0', 'xdpgeneric', 'obj', OBJECT, 'sec', 'xdp');
    const [xdp] = bpftoolNet(topo.b).xdp;
    const child = startCli(['--json', '-c', '500', '--timeout', '1', '--from', topo.a, topo.v4]);
    const done = finished(child);
    // Events flow (the first hop): everything is attached by then.
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('close', () => reject(new Error('tracepkt ended before tracing')));
    });
    const ours = ourTracingLinks();
    assert.equal(ours.length, trampolines() ? 1 : 0, 'one fexit copy on their program where the kernel allows it, none elsewhere');
    child.kill('SIGKILL');
    assert.equal((await done).signal, 'SIGKILL');
    // The kernel frees fd-owned links asynchronously: wait, do not race it.
    assert.ok(await eventually(() => ourTracingLinks().length === 0), 'our links on their program are gone');
    assert.deepEqual(bpftoolNet(topo.b).xdp.map((x) => [x.devname, x.mode, x.id]), [['eth0', 'generic', xdp.id]], 'theirs, as it was');
  }));
