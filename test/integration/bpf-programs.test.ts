/**
 * The BPF programs on the path: someone else's XDP and tc programs that
 * drop ICMP (test/bpf/drop-icmp.bpf.c), attached with ip and tc as a user
 * would. bpftool is the independent witness of what is attached; after the
 * run, everything of theirs is as it was.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { BpfProgramOnPath } from '../../src/events';
import { kernelAtLeast, routerLab, runCli, withLab } from './helpers';

const OBJECT = path.resolve(__dirname, '..', 'bpf', 'drop-icmp.bpf.o');

/** What bpftool says is attached in a namespace: its JSON (xdp and tc lists). */
const bpftoolNet = (ns: string) => JSON.parse(execFileSync('ip', ['netns', 'exec', ns, 'bpftool', '-j', 'net'], { encoding: 'utf8' }))[0] as { xdp: { devname: string; ifindex: number; mode: string; id: number }[]; tc: { devname: string; kind: string; id: number; name: string }[] };
const programShow = (id: number) => JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' })) as { id: number; tag: string; name: string; run_cnt?: number };

test('an XDP program of someone else’s drops the ping: the verdict names it and its interface, as bpftool lists it; it is left as it was', () =>
  withLab(async (lab) => {
    const topo = routerLab(lab);
    lab.ip(topo.b, 'link', 'set', 'dev', 'eth0', 'xdpgeneric', 'obj', OBJECT, 'sec', 'xdp');
    const [xdp] = bpftoolNet(topo.b).xdp;
    assert.equal(xdp?.devname, 'eth0');
    const before = programShow(xdp.id);
    const run = await runCli(['--json', '--timeout', '1', '--from', topo.a, topo.v4]);
    assert.equal(run.status, 1, run.stderr);
    const programs = run.summary?.bpf_programs as BpfProgramOnPath[];
    assert.deepEqual(
      programs.map((p) => [p.netns_name, p.ifname, p.hook, p.direction, p.mode, p.id, p.name, p.tag, p.type]),
      [[topo.b, 'eth0', 'xdp', 'ingress', 'generic', xdp.id, 'drop_icmp_xdp', before.tag, 'xdp']],
      'the only program on the path, as bpftool lists it',
    );
    assert.match(run.summary?.verdict, new RegExp(`^dropped in namespace ${topo.b} at \\S+: XDP on eth0 dropped it(?: \\(\\w+\\))?; the BPF program that could have dropped it: drop_icmp_xdp \\(xdp generic, id ${xdp.id}, tag ${before.tag}\\)$`));
    // Theirs, untouched: the same program, attached the same way.
    assert.deepEqual(bpftoolNet(topo.b).xdp.map((x) => [x.devname, x.mode, x.id]), [['eth0', 'generic', xdp.id]]);
    assert.equal(programShow(xdp.id).tag, before.tag);

    const text = await runCli(['--timeout', '1', '--from', topo.a, topo.v4]);
    assert.match(text.stdout, new RegExp(`BPF programs on the path:\\n    eth0 in ${topo.b} \\(\\d+\\): drop_icmp_xdp \\(xdp generic, id ${xdp.id}, tag ${before.tag}\\)\\n`));
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
    assert.match(
      run.summary?.verdict,
      new RegExp(`^dropped in namespace ${topo.r} at \\S+: (tc egress on rb dropped it${reason}; the BPF program that could have dropped it|freed where tc egress runs on rb, and this kernel gives no reason; the BPF program there could have dropped it): drop_icmp_tc \\(tc egress direct-action, id ${egress.id}, tag ${tag}\\)$`),
    );
    assert.deepEqual(bpftoolNet(topo.r).tc.map((t) => [t.devname, t.kind, t.id]).sort(), listed.map((t) => [t.devname, t.kind, t.id]).sort(), 'their filters, as they were');
  }));
