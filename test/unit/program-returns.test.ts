/**
 * What the XDP and tc programs on the path returned (fexit on them): the
 * record decoded, the codes named, each return tied to its program, and the
 * verdict that follows: the program that did it, not those that could have.
 * Events come from the recorded demo ping (a host and a container).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { forEachRecord } from '../../src/batch';
import { decodeBatch } from '../../src/decode';
import { HEADER, HOP, Hook, EventKind, PROG_RETURN } from '../../src/bpf/layout';
import type { BpfProgramOnPath, DropEvent, HopEvent, KernelEvent, ProgramReturnEvent } from '../../src/events';
import { describeReturn, tieReturns, type ProgramTarget } from '../../src/kernel/program-returns';
import { describeReturns } from '../../src/kernel/attached-programs';
import { probeOutcomes, verdictLine } from '../../src/verdict';
import { renderHtml } from '../../src/render/html';
import { decodeFixture, fixture } from '../fixtures';

/** The recorded request's receive in the container (eth0), rewritten as a program-return record. */
function returnRecord(hook: number, copy: number, ret: number, ingress: number): Buffer {
  const batch = fixture('demo-ipv4.batch');
  // Third record: the container's receive (src/batch.ts: a 4-byte length, then the record, 4-aligned).
  const records: number[] = [];
  forEachRecord(batch, (rec) => records.push(rec));
  const at = records[2] - 4;
  const rec = Buffer.alloc(4 + PROG_RETURN.$size);
  rec.writeUInt32LE(PROG_RETURN.$size, 0);
  batch.copy(rec, 4, at + 4, at + 4 + HOP.$size);
  rec[4 + HEADER.kind[0]] = EventKind.PROG_RETURN;
  rec[4 + HEADER.hook[0]] = hook;
  rec[4 + PROG_RETURN.copy[0]] = copy;
  rec.writeInt32LE(ret, 4 + PROG_RETURN.ret[0]);
  rec[4 + PROG_RETURN.ingress[0]] = ingress;
  return rec;
}

const decodeOne = (rec: Buffer) => {
  const events: KernelEvent[] = [];
  decodeBatch(rec, (e) => events.push(e));
  assert.equal(events.length, 1);
  return events[0];
};

test('a program-return record: the packet as a hop has it, the hook, the copy, the code and the side', () => {
  const [, , rx] = decodeFixture('demo-ipv4.batch');
  const ev = decodeOne(returnRecord(Hook.XDP, 3, 1, 1)) as ProgramReturnEvent;
  assert.equal(ev.kind, 'program-return');
  assert.deepEqual([ev.hook, ev.copy, ev.code, ev.direction], ['xdp', 3, 1, 'ingress']);
  assert.deepEqual([ev.dir, ev.src, ev.dst, ev.icmp_seq, ev.netns, ev.ifindex, ev.ifname], [rx.dir, rx.src, rx.dst, rx.icmp_seq, rx.netns, rx.ifindex, rx.ifname]);
  const tc = decodeOne(returnRecord(Hook.TC, 7, -1, 0)) as ProgramReturnEvent;
  assert.deepEqual([tc.hook, tc.copy, tc.code, tc.direction], ['tc', 7, -1, 'egress']);
});

test('return codes in their hook’s words, and which of them end the packet', () => {
  const xdp = { hook: 'xdp', mode: 'generic' } as const;
  const da = { hook: 'tc', mode: 'direct-action' } as const;
  const cls = { hook: 'tc', mode: 'classifier' } as const;
  const tcx = { hook: 'tcx', mode: 'tcx' } as const;
  assert.deepEqual(
    [[xdp, 0], [xdp, 1], [xdp, 2], [xdp, 3], [xdp, 4], [xdp, 9]].map(([p, c]) => describeReturn(p as typeof xdp, c as number)),
    [
      { action: 'XDP_ABORTED', ends: 'drop' }, { action: 'XDP_DROP', ends: 'drop' }, { action: 'XDP_PASS', ends: null },
      { action: 'XDP_TX', ends: null }, { action: 'XDP_REDIRECT', ends: null }, { action: 'unknown XDP action 9', ends: 'drop' },
    ],
  );
  assert.deepEqual(
    [-1, 0, 2, 4, 7, 8].map((c) => describeReturn(da, c)),
    [
      { action: 'TC_ACT_UNSPEC', ends: null }, { action: 'TC_ACT_OK', ends: null }, { action: 'TC_ACT_SHOT', ends: 'drop' },
      { action: 'TC_ACT_STOLEN', ends: 'stolen' }, { action: 'TC_ACT_REDIRECT', ends: null }, { action: 'TC_ACT_TRAP', ends: 'stolen' },
    ],
  );
  // A classifier returns a class: whatever its number, the filter's actions decide, not the code.
  assert.deepEqual([0, -1, 2, 0x10002].map((c) => describeReturn(cls, c)), [
    { action: 'no match', ends: null }, { action: "match (the filter's class)", ends: null }, { action: 'class 0:2', ends: null }, { action: 'class 1:2', ends: null },
  ]);
  assert.deepEqual([-1, 0, 2, 7].map((c) => describeReturn(tcx, c).action), ['TCX_NEXT', 'TCX_PASS', 'TCX_DROP', 'TCX_REDIRECT']);
  assert.equal(describeReturn(tcx, 2).ends, 'drop');
});

/** A program on an interface of the recorded lab. */
function onPath(over: Partial<BpfProgramOnPath>): BpfProgramOnPath {
  return {
    netns: 0, netns_name: 'c', ifindex: 2, ifname: 'eth0', hook: 'xdp', direction: 'ingress', mode: 'generic',
    id: 0, name: 'prog', tag: 'feedfacefeedface', type: 'xdp', priority: null, has_btf: true, traced: false, returned: [], ...over,
  };
}

/** The recorded hops, and a return of the request made from its receive in the container. */
function lab() {
  const hops = decodeFixture('demo-ipv4.batch');
  const rx = hops[2];
  const ret = (copy: number, code: number, hook: 'xdp' | 'tc' = 'xdp', over: Partial<ProgramReturnEvent> = {}): ProgramReturnEvent =>
    // XDP has no sk_buff: its records say 0.
    ({ ...rx, kind: 'program-return', hook, copy, code, direction: 'ingress', skb: hook === 'xdp' ? '0' : rx.skb, ...over }) as ProgramReturnEvent;
  return { hops, rx, ret };
}

test('returns tied to their program: by the copy’s target, the interface and the side; unknown copies ignored', () => {
  const { rx, ret } = lab();
  const targets: ProgramTarget[] = [
    { id: 41, name: 'fw', hook: 'xdp', copy: 0, func: 'fw_main' },
    { id: 42, name: 'shaper', hook: 'tc', copy: 0, func: 'shaper' },
  ];
  // The same XDP program on two interfaces; the tc one on both sides of eth0; one program not traced.
  const programs = [
    onPath({ netns: rx.netns, ifindex: rx.ifindex, id: 41 }),
    onPath({ netns: rx.netns, ifindex: 9, ifname: 'eth1', id: 41 }),
    onPath({ netns: rx.netns, ifindex: rx.ifindex, id: 42, hook: 'tc', direction: 'ingress', mode: 'direct-action' }),
    onPath({ netns: rx.netns, ifindex: rx.ifindex, id: 42, hook: 'tc', direction: 'egress', mode: 'direct-action' }),
    onPath({ netns: rx.netns, ifindex: rx.ifindex, id: 43, hook: 'tc', direction: 'egress', mode: 'direct-action' }),
  ];
  tieReturns(programs, [ret(0, 2), ret(0, 2, 'tc', { direction: 'egress', dir: 'reply' }), ret(5, 1)], targets);
  assert.deepEqual(programs.map((p) => [p.id, p.ifname, p.direction, p.traced, p.returned.map((r) => [r.dir, r.seq, r.action, r.ends])]), [
    [41, 'eth0', 'ingress', true, [['request', 1, 'XDP_PASS', null]]],
    [41, 'eth1', 'ingress', true, []],
    [42, 'eth0', 'ingress', true, []],
    [42, 'eth0', 'egress', true, [['reply', 1, 'TC_ACT_SHOT', 'drop']]],
    [43, 'eth0', 'egress', false, []],
  ]);
  assert.deepEqual(programs.map(describeReturns), [
    'returned XDP_PASS for the request', 'traced: no return for the probe recorded', 'traced: no return for the probe recorded', 'returned TC_ACT_SHOT for the reply', '',
  ]);
});

/** The request dropped at the container's XDP: a drop record as the kernel would write it, just after the return. */
function xdpDrop(rx: HopEvent): DropEvent {
  return { ...rx, kind: 'drop', time_ns: rx.time_ns + 1000, reason: 'XDP', reason_code: 0, location: 'do_xdp_generic+0x1c' } as DropEvent;
}

test('the verdict: the traced program that returned a drop did it; traced programs that did not are not blamed; untraced ones only could have', () => {
  const { hops, rx, ret } = lab();
  const drop = xdpDrop(rx);
  const events = [...hops.slice(0, 2), drop];
  const at = { netns: rx.netns, netns_name: rx.netns_name, ifindex: rx.ifindex };
  const targets: ProgramTarget[] = [{ id: 41, name: 'fw', hook: 'xdp', copy: 0, func: 'fw' }];

  const did = [onPath({ ...at, id: 41, name: 'fw' })];
  tieReturns(did, [ret(0, 1)], targets);
  assert.match(verdictLine(events, false, { programs: did }), /: XDP on eth0 dropped it \(XDP\): fw \(xdp generic, id 41, tag feedfacefeedface\) returned XDP_DROP for it$/);

  // Traced, and it passed this very packet: the drop is XDP's, but the program is not blamed.
  const passed = [onPath({ ...at, id: 41, name: 'fw' })];
  tieReturns(passed, [ret(0, 2)], targets);
  assert.match(verdictLine(events, false, { programs: passed }), /: XDP on eth0 dropped it \(XDP\), though the BPF programs there let it pass \(fw \(xdp generic, id 41, tag feedfacefeedface\) returned XDP_PASS\): the frame was dropped after them/);
  // ... unless records were lost: then what it returned last may not be all.
  assert.match(verdictLine(events, false, { programs: passed, lost: 3 }), /; the BPF program that could have dropped it: fw /);

  // A return for probe 2 says nothing of probe 1: no return known for this packet, so only "could have".
  const other = [onPath({ ...at, id: 41, name: 'fw' })];
  tieReturns(other, [ret(0, 1, 'xdp', { icmp_seq: 2 })], targets);
  assert.match(verdictLine(events, false, { programs: other }), /; the BPF program that could have dropped it: fw /);

  // An XDP return of the same probe packet that was seen again after it (it went on): not this drop's.
  const earlier = [onPath({ ...at, id: 41, name: 'fw' })];
  tieReturns(earlier, [ret(0, 1, 'xdp', { time_ns: hops[0].time_ns - 1 })], targets);
  assert.match(verdictLine(events, false, { programs: earlier }), /; the BPF program that could have dropped it: fw /);

  // Not traced (the kernel refused fexit): the program that could have.
  const untraced = [onPath({ ...at, id: 41, name: 'fw' })];
  assert.match(verdictLine(events, false, { programs: untraced }), /: XDP on eth0 dropped it \(XDP\); the BPF program that could have dropped it: fw \(xdp generic, id 41, tag feedfacefeedface\)$/);
});

test('a traced program that ended the packet where no drop was recorded (native XDP, a stolen packet) is the verdict', () => {
  const { hops, rx, ret } = lab();
  const at = { netns: rx.netns, netns_name: rx.netns_name, ifindex: rx.ifindex };
  const targets: ProgramTarget[] = [{ id: 42, name: 'steal', hook: 'tc', copy: 1, func: 'steal' }];
  const programs = [onPath({ ...at, id: 42, name: 'steal', hook: 'tc', mode: 'direct-action' })];
  tieReturns(programs, [ret(1, 4, 'tc')], targets);
  assert.equal(
    verdictLine(hops.slice(0, 3), false, { programs }),
    `request taken (freed as consumed, not as a drop: no drop record) on eth0 in namespace ${rx.netns_name ?? rx.netns} by steal (tc ingress direct-action, id 42, tag feedfacefeedface): it returned TC_ACT_STOLEN for it`,
  );
  // Without the return, the last sighting is all there is.
  assert.match(verdictLine(hops.slice(0, 3), false, { programs: [onPath({ ...at, id: 42, hook: 'tc', mode: 'direct-action' })] }), /^no reply: last seen as request on eth0/);
});

test('a tc program’s return belongs to its sk_buff: a drop of an earlier packet of the flow does not explain this one', () => {
  const { hops, rx, ret } = lab();
  const at = { netns: rx.netns, netns_name: rx.netns_name, ifindex: rx.ifindex };
  const targets: ProgramTarget[] = [{ id: 42, name: 'shaper', hook: 'tc', copy: 0, func: 'shaper' }];
  const drop = { ...xdpDrop(rx), reason: 'TC_INGRESS', location: 'tcf_classify_ingress+0x10' } as DropEvent;
  const programs = [onPath({ ...at, id: 42, name: 'shaper', hook: 'tc', mode: 'direct-action' })];
  tieReturns(programs, [ret(0, 2, 'tc', { skb: 'ffff888000001000' })], targets);
  assert.match(verdictLine([...hops.slice(0, 2), drop], false, { programs }), /: tc ingress on eth0 dropped it \(TC_INGRESS\); the BPF program that could have dropped it: shaper /);
  const same = [onPath({ ...at, id: 42, name: 'shaper', hook: 'tc', mode: 'direct-action' })];
  tieReturns(same, [ret(0, 2, 'tc')], targets);
  assert.match(verdictLine([...hops.slice(0, 2), drop], false, { programs: same }), /: tc ingress on eth0 dropped it \(TC_INGRESS\): shaper .* returned TC_ACT_SHOT for it$/);
});

test('a packet taken by a program but seen after it (a clone redirected on) is not ended there; TC_ACT_QUEUED counts as UNSPEC', () => {
  const { hops, rx, ret } = lab();
  const at = { netns: rx.netns, netns_name: rx.netns_name, ifindex: rx.ifindex };
  const targets: ProgramTarget[] = [{ id: 42, name: 'steal', hook: 'tc', copy: 1, func: 'steal' }];
  const programs = [onPath({ ...at, id: 42, name: 'steal', hook: 'tc', mode: 'direct-action' })];
  tieReturns(programs, [ret(1, 4, 'tc', { time_ns: hops[0].time_ns })], targets);
  assert.match(verdictLine(hops.slice(0, 3), false, { programs }), /^no reply: last seen as request on eth0/);
  const queued = [onPath({ ...at, id: 42, name: 'steal', hook: 'tc', mode: 'direct-action' })];
  tieReturns(queued, [ret(1, 5, 'tc')], targets);
  assert.deepEqual(queued[0].returned.map((r) => [r.action, r.ends]), [['TC_ACT_QUEUED (taken as TC_ACT_UNSPEC)', null]]);
});

test('several probes: a reply a program dropped is said so, not as "no reply received though traced"', () => {
  const { hops, ret } = lab();
  const [, , , txReply] = hops; // the container's reply, leaving it
  const at = { netns: txReply.netns, netns_name: txReply.netns_name, ifindex: txReply.ifindex };
  const programs = [onPath({ ...at, id: 44, name: 'egress_fw', hook: 'tc', direction: 'egress', mode: 'direct-action' })];
  tieReturns(programs, [ret(0, 4, 'tc', { ...txReply, kind: 'program-return', hook: 'tc', direction: 'egress' } as Partial<ProgramReturnEvent>)], [{ id: 44, name: 'egress_fw', hook: 'tc', copy: 0, func: 'f' }]);
  const [outcome] = probeOutcomes(hops.slice(0, 4), 1, { answered: new Set(), localErrors: [], localMtu: null }, { programs });
  assert.match(outcome.verdict, /^reply taken .* by egress_fw .*: it returned TC_ACT_STOLEN for it$/);
});

test('the HTML lists each program on the path with what it did, or that it was not traced; names are escaped', () => {
  const { hops, rx, ret } = lab();
  const at = { netns: rx.netns, netns_name: rx.netns_name, ifindex: rx.ifindex };
  const programs = [onPath({ ...at, id: 41, name: '<fw>' }), onPath({ ...at, id: 43, name: 'other', hook: 'tc', direction: 'egress', mode: 'direct-action' })];
  tieReturns(programs, [ret(0, 1)], [{ id: 41, name: '<fw>', hook: 'xdp', copy: 0, func: 'fw' }]);
  const page = renderHtml({ title: 'programs', events: hops, verdict: 'v', programs });
  const table = /<table class="programs" id="programs">[\s\S]*?<\/table>/.exec(page)?.[0] ?? '';
  assert.match(table, /<td>what it did<\/td>/);
  assert.match(table, /<td>&lt;fw&gt;<\/td><td>41<\/td><td>feedfacefeedface<\/td><td>returned XDP_DROP for the request<\/td>/);
  assert.match(table, /<td>other<\/td><td>43<\/td><td>feedfacefeedface<\/td><td>not traced<\/td>/);
  assert.doesNotMatch(page, /<fw>/);
});
