/**
 * One probe across two kernels: this machine, and a qemu guest booted on
 * Debian 12's kernel (test/kernel-matrix/kvm-run) whose eth0 is the far end
 * of a tap device here. Between them a VXLAN overlay (VNI 42), a container
 * namespace behind a bridge on each side (two-hosts-far-node.sh builds the
 * guest's half and runs the agent there). The coordinator here sends the
 * probe and stitches both nodes' parts into one journey by the packets on the
 * wire; tcpdump on the tap is the independent witness of what crossed it.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { capture, eventually, finished, runCli, startCli, withLab, type CliRun } from './helpers';
import { DockerDaemon } from './docker-daemon';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const KVM_RUN = path.join(ROOT, 'test', 'kernel-matrix', 'kvm-run');
const FAR_NODE = path.join(ROOT, 'test', 'integration', 'two-hosts-far-node.sh');
const FAR = '192.168.77.2:7447';
const TOKEN = 'two-hosts-token-0123456789abcdef';
const here = os.hostname();

/**
 * TRACEPKT_RECORD=DIR: each run's JSON lines are written there as NAME.jsonl (how the unit tests'
 * recorded streams, test/fixtures/two-hosts-*.jsonl, were made).
 */
function record(name: string, run: CliRun): void {
  const dir = process.env.TRACEPKT_RECORD;
  if (dir) fs.writeFileSync(path.join(dir, `two-hosts-${name}.jsonl`), run.stdout);
}

/** [node, namespace, interface, direction, hook] of every hop, in the journey's order. */
const journey = (r: CliRun) => r.events.map((e) => [e.node, e.netns_name, e.ifname, e.dir, e.hook]);

test('two kernels: one journey stitched by the VXLAN packets between them; a far firewall named; a wrong token and a node down said', { timeout: 1_500_000 }, (t) =>
  withLab(async (lab) => {
    const a = lab.netns('a'); // this node's underlay (the tap qemu makes) and overlay
    const c1 = lab.netns('c1');
    const rw = fs.mkdtempSync(path.join(os.tmpdir(), 'tpk-two-hosts-'));
    fs.writeFileSync(path.join(rw, 'token'), `${TOKEN}\n`, { mode: 0o600 });
    const tokenFile = path.join(rw, 'token');
    const wrongToken = path.join(rw, 'wrong');
    fs.writeFileSync(wrongToken, 'not-the-token-0123456789abcdef\n', { mode: 0o600 });
    const tap = `tpk${randomBytes(3).toString('hex')}`;
    let guestLog = '';
    const guest: ChildProcess = spawn('nsenter', [`--net=${lab.path(a)}`, KVM_RUN, `bash ${FAR_NODE} ${rw}`], {
      env: { ...process.env, KVM_KERNEL: '6.1', KVM_SMP: '1', KVM_TAP: tap, KVM_RW_DIR: rw, KVM_TIMEOUT: '1500' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    guest.stdout!.on('data', (s: Buffer) => (guestLog += s.toString()));
    guest.stderr!.on('data', (s: Buffer) => (guestLog += s.toString()));
    const guestDone = new Promise<number | null>((resolve) => guest.on('close', (code) => resolve(code)));
    const agentLog = () => (fs.existsSync(path.join(rw, 'agent.log')) ? fs.readFileSync(path.join(rw, 'agent.log'), 'utf8') : '');
    /** A command run on the far node (two-hosts-far-node.sh runs what it finds): its status and output. */
    let commands = 0;
    const farRun = async (words: string[], limitMs = 600_000) => {
      const n = path.join(rw, `${++commands}`);
      fs.writeFileSync(`${n}.tmp`, words.join('\n') + '\n');
      fs.renameSync(`${n}.tmp`, `${n}.cmd`);
      assert.ok(await eventually(() => fs.existsSync(`${n}.rc`) || guest.exitCode !== null, limitMs), `the far node did not run ${words.join(' ')}: ${guestLog}`);
      return { rc: Number(fs.readFileSync(`${n}.rc`, 'utf8')), out: fs.readFileSync(`${n}.out`, 'utf8'), err: fs.readFileSync(`${n}.err`, 'utf8') };
    };
    /** tracepkt's programs and nftables tables in the far kernel now. */
    const farLeftovers = async () => (await farRun(['sh', '-c', 'bpftool prog show | grep -c " name tp_"; { nft list tables; ip netns exec c2 nft list tables; } | grep -c tracepkt; true'])).out.split('\n').slice(0, 2).map(Number);
    try {
      // The tap appears once qemu runs (it may first install itself and fetch the kernel).
      assert.ok(await eventually(() => lab.ip(a, 'link').includes(tap) || guest.exitCode !== null, 1_200_000), `no tap device: ${guestLog}`);
      assert.equal(guest.exitCode, null, `the guest ended: ${guestLog}`);
      lab.ip(a, 'addr', 'add', '192.168.77.1/24', 'dev', tap);
      lab.ip(a, 'link', 'set', tap, 'up');
      lab.veth(a, 'vc1', c1, 'eth0');
      lab.ip(c1, 'link', 'set', 'eth0', 'address', '02:00:00:00:00:01');
      lab.addr(c1, 'eth0', '10.200.0.1/24');
      for (const far of ['10.200.0.2', '10.200.0.3']) lab.ip(c1, 'neigh', 'replace', far, 'lladdr', '02:00:00:00:00:02', 'dev', 'eth0', 'nud', 'permanent');
      lab.ip(a, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', '192.168.77.1', 'remote', '192.168.77.2', 'dstport', '4789', 'dev', tap);
      lab.bridge(a, 'br0', 'vc1', 'vx0');
      lab.ip(a, 'link', 'set', 'vx0', 'up');
      assert.ok(await eventually(() => /listening on 192\.168\.77\.2:7447 as node far/.test(agentLog()) || guest.exitCode !== null, 600_000), `the agent did not start: ${guestLog}${agentLog()}`);
      assert.equal(guest.exitCode, null, `the guest ended: ${guestLog}${agentLog()}`);

      const across = (target: string, token = tokenFile, extra: string[] = []) =>
        runCli(['--json', '--node', `far=${FAR}`, ...extra, '--token-file', token, '--from', c1, target], ['ip', 'netns', 'exec', a]);

      await t.test('a ping from c1 here to c2 there: every hop of both nodes, in the order of cause, the wire crossings measured', async () => {
        const wire = await capture(a, tap, 'udp port 4789', { whole: true });
        const run = await across('10.200.0.2');
        // The probe's packets on the wire (IPv6 router solicitations from the new interfaces cross it too).
        const seen = (await wire.stop()).filter((l) => /ICMP echo/.test(l));
        record('delivered', run);
        assert.equal(run.status, 0, run.stderr);
        const request = [
          [here, c1, 'eth0', 'request', 'net_dev_queue'],
          [here, a, 'vc1', 'request', 'netif_receive_skb'],
          [here, a, 'vx0', 'request', 'net_dev_queue'],
          [here, a, tap, 'request', 'net_dev_queue'],
          ['far', 'host', 'eth0', 'request', 'netif_receive_skb'],
          ['far', 'host', 'vx0', 'request', 'netif_receive_skb'],
          ['far', 'host', 'vc2', 'request', 'net_dev_queue'],
          ['far', 'c2', 'eth0', 'request', 'netif_receive_skb'],
        ];
        const reply = [
          ['far', 'c2', 'eth0', 'reply', 'net_dev_queue'],
          ['far', 'host', 'vc2', 'reply', 'netif_receive_skb'],
          ['far', 'host', 'vx0', 'reply', 'net_dev_queue'],
          ['far', 'host', 'eth0', 'reply', 'net_dev_queue'],
          [here, a, tap, 'reply', 'netif_receive_skb'],
          [here, a, 'vx0', 'reply', 'netif_receive_skb'],
          [here, a, 'vc1', 'reply', 'net_dev_queue'],
          [here, c1, 'eth0', 'reply', 'netif_receive_skb'],
        ];
        assert.deepEqual(journey(run), [...request, ...reply], run.stdout);
        const s = run.summary!;
        assert.equal(s.verdict, 'delivered and answered');
        assert.deepEqual(s.missing, []);
        assert.equal(s.incomplete, false);
        assert.deepEqual(s.nodes.map((n: any) => [n.node, n.address]), [['far', FAR]]);
        assert.match(s.nodes[0].kernel, /^6\.1\./);
        // Each way one crossing, in the tunnel, between the tap here and the guest's eth0.
        assert.deepEqual(
          s.wire.map((c: any) => [c.dir, c.from.node, c.from.ifname, c.to.node, c.to.ifname, c.tunnel.type, c.tunnel.id, c.tunnel.src, c.tunnel.dst]),
          [
            ['request', here, tap, 'far', 'eth0', 'vxlan', 42, '192.168.77.1', '192.168.77.2'],
            ['reply', 'far', 'eth0', here, tap, 'vxlan', 42, '192.168.77.2', '192.168.77.1'],
          ],
        );
        // The witness: tcpdump on the tap saw exactly these two outer packets, with the UDP source ports the crossings name.
        assert.equal(seen.length, 2, seen.join('\n'));
        for (const c of s.wire) {
          const outer = `${c.tunnel.src}.${c.tunnel.sport} > ${c.tunnel.dst}.4789`;
          assert.ok(seen.some((l) => l.includes(outer) && /vni 42/.test(l)), `${outer} not on the wire: ${seen.join('\n')}`);
        }
        // The round trip across the wire less the time on the far node has no clock offset in it: it is
        // positive, and no more than the whole round trip here.
        const [rt] = s.wire_round_trips;
        const sentHere = run.events.find((e) => e.ifname === tap && e.dir === 'request')!;
        const backHere = run.events.find((e) => e.ifname === tap && e.dir === 'reply')!;
        assert.equal(rt.node, 'far');
        assert.ok(rt.ns > 0 && rt.ns < backHere.time_ns - sentHere.time_ns, JSON.stringify(rt));
        // Each event says its node; the start line names the node with its clock offset.
        assert.ok(run.lines.filter((l) => l.kind !== 'start' && l.kind !== 'summary').every((l) => l.node === here || l.node === 'far'));
        const start = run.lines.find((l) => l.kind === 'start')!;
        assert.equal(start.node, here);
        assert.match(start.nodes[0].clock, /^[+-]\d/);
      });

      await t.test('a firewall on the far node: the drop named with its node, namespace, table and rule; exit status 1', async () => {
        const run = await across('10.200.0.3');
        record('far-firewall', run);
        assert.equal(run.status, 1, run.stderr);
        const s = run.summary!;
        assert.equal(s.verdict, 'dropped in namespace c2 on node far by ip far_fw input (hook INPUT): rule `ip daddr 10.200.0.3 icmp type echo-request counter drop comment "far firewall"`');
        assert.equal(s.stopped_by.node, 'far');
        assert.equal(s.stopped_by.netns_name, 'c2');
        // The request crossed the wire; nothing came back.
        assert.deepEqual(s.wire.map((c: any) => [c.dir, c.from.node, c.to.node]), [['request', here, 'far']]);
      });

      await t.test('a wrong token: no view from the far node, said in the verdict; the probe still traced here', async () => {
        const run = await across('10.200.0.2', wrongToken);
        assert.equal(run.status, 0, run.stderr);
        const s = run.summary!;
        assert.equal(s.missing.length, 1);
        assert.match(s.missing[0], /^no view from node far: /);
        assert.match(s.verdict, /^delivered and answered; no view from node far: /);
        assert.equal(s.incomplete, true);
        assert.ok(run.events.length > 0 && run.events.every((e) => e.node === here));
        assert.match(run.stderr, /Warning: no view from node far/);
      });

      await t.test('a node that is down: named missing, the others\' views shown', async () => {
        const run = await across('10.200.0.2', tokenFile, ['--node', 'gone=192.168.77.9:7447']);
        assert.equal(run.status, 0, run.stderr);
        const s = run.summary!;
        assert.deepEqual(s.nodes.map((n: any) => n.node), ['far']);
        assert.equal(s.missing.length, 1);
        assert.match(s.missing[0], /^no view from node gone: /);
        assert.ok(run.events.some((e) => e.node === 'far') && run.events.some((e) => e.node === here));
      });

      await t.test('a TCP probe across nodes: known there by its flow; answered with a RST from the far container', async () => {
        const run = await across('10.200.0.2', tokenFile, ['--tcp', '80']);
        assert.equal(run.status, 0, run.stderr);
        const s = run.summary!;
        assert.equal(s.verdict, 'answered with RST: port 80 closed on 10.200.0.2');
        assert.deepEqual(s.wire.map((c: any) => [c.dir, c.from.node, c.to.node, c.tunnel.id]), [['request', here, 'far', 42], ['reply', 'far', here, 42]]);
        const far = run.events.filter((e) => e.node === 'far');
        assert.deepEqual([...new Set(far.map((e) => `${e.dir} ${e.tcp_flags}`))], ['request S', 'reply R.']);
        assert.deepEqual(s.silent_nodes, []);
      });

      await t.test('the coordinator killed while the far node witnesses: its trace ends there, nothing of it stays in that kernel', async () => {
        const child = startCli(['--json', '--node', `far=${FAR}`, '--token-file', tokenFile, '--from', c1, '--timeout', '5', '10.200.0.3'], ['ip', 'netns', 'exec', a]);
        const done = finished(child);
        // The start line is out once the far node's witness is attached.
        await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
        child.kill('SIGKILL');
        await done;
        assert.ok(await eventually(() => /the coordinator disconnected\n.*trace ended \(stopped\)/.test(agentLog()), 120_000), agentLog());
        assert.deepEqual(await farLeftovers(), [0, 0], 'no program, no nftables table of tracepkt left on the far node');
      });

      await t.test('the agent from the release\'s container image under Docker on this node, the coordinator on the far one: the journey the other way', async () => {
        // The image as the release builds it: the .deb in a minimal Debian root, no registry.
        execFileSync('npm', ['run', '--silent', 'image'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 1_200_000 });
        const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
        const docker = await DockerDaemon.start(a, { hostNetworkOnly: true });
        try {
          assert.match(docker.load(path.join(ROOT, 'release', `tracepkt-agent_${version}.tar`)), new RegExp(`Loaded image: tracepkt-agent:${version.replace(/\./g, '\\.')}`));
          // The privileges it needs, no more (README, "Kubernetes"): the node's network and processes;
          // BPF and tracing, entering namespaces (CAP_SYS_ADMIN: Docker 20.10 knows no CAP_BPF or
          // CAP_PERFMON), netfilter in every namespace, other processes' namespaces, kernel symbols. Not
          // CAP_SYS_RESOURCE: only kernels before 5.11 charge BPF maps to locked memory (and this
          // machine's own bounding set lacks it).
          docker.docker('run', '-d', '--name', 'tracepkt-agent', '--network', 'host', '--pid', 'host',
            ...['NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE', 'SYSLOG'].flatMap((c) => ['--cap-add', c]),
            '-v', '/run/netns:/run/netns:ro', '-v', `${tokenFile}:/etc/tracepkt/token:ro`,
            `tracepkt-agent:${version}`, '--listen', '192.168.77.1:7447', '--token-file', '/etc/tracepkt/token', '--name', 'near');
          // What the agent said (its lines go to the container's stderr).
          const logs = () => {
            const r = spawnSync('docker', ['-H', `unix://${docker.socket}`, 'logs', 'tracepkt-agent'], { encoding: 'utf8' });
            return `${r.stdout}${r.stderr}`;
          };
          assert.ok(await eventually(() => /listening on 192\.168\.77\.1:7447 as node near/.test(logs()), 120_000), logs());
          // The far node runs the coordinator: from its container c2 to c1 here.
          const far = await farRun(['bin/tracepkt', '--json', '--node', 'near=192.168.77.1:7447', '--token-file', '/tmp/token', '--from', 'c2', '10.200.0.1']);
          assert.equal(far.rc, 0, `${far.err}${far.out}`);
          const out = far.out;
          const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
          const farName = lines.find((l) => l.kind === 'start').node; // the guest's host name
          const run = { events: lines.filter((l) => l.kind === 'hop') } as CliRun;
          assert.deepEqual(journey(run), [
            [farName, 'c2', 'eth0', 'request', 'net_dev_queue'],
            [farName, 'host', 'vc2', 'request', 'netif_receive_skb'],
            [farName, 'host', 'vx0', 'request', 'net_dev_queue'],
            [farName, 'host', 'eth0', 'request', 'net_dev_queue'],
            ['near', a, tap, 'request', 'netif_receive_skb'],
            ['near', a, 'vx0', 'request', 'netif_receive_skb'],
            ['near', a, 'vc1', 'request', 'net_dev_queue'],
            ['near', c1, 'eth0', 'request', 'netif_receive_skb'],
            ['near', c1, 'eth0', 'reply', 'net_dev_queue'],
            ['near', a, 'vc1', 'reply', 'netif_receive_skb'],
            ['near', a, 'vx0', 'reply', 'net_dev_queue'],
            ['near', a, tap, 'reply', 'net_dev_queue'],
            [farName, 'host', 'eth0', 'reply', 'netif_receive_skb'],
            [farName, 'host', 'vx0', 'reply', 'netif_receive_skb'],
            [farName, 'host', 'vc2', 'reply', 'net_dev_queue'],
            [farName, 'c2', 'eth0', 'reply', 'netif_receive_skb'],
          ], out);
          const s = lines.find((l) => l.kind === 'summary');
          assert.equal(s.verdict, 'delivered and answered');
          assert.deepEqual(s.wire.map((c: any) => [c.dir, c.from.node, c.to.node, c.tunnel.id]), [['request', farName, 'near', 42], ['reply', 'near', farName, 42]]);
          assert.match(logs(), /tracing a probe to 10\.200\.0\.1 .*\n.*trace ended \(stopped\)/);
        } finally {
          await docker.stop();
        }
      });
    } finally {
      fs.writeFileSync(path.join(rw, 'stop'), '');
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([guestDone, new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), 120_000)))]);
      clearTimeout(timer);
      if (stopped === 'timeout') guest.kill('SIGTERM');
      const agentRc = fs.existsSync(path.join(rw, 'agent.rc')) ? fs.readFileSync(path.join(rw, 'agent.rc'), 'utf8').trim() : 'none';
      const leftover = ['programs', 'tables'].map((what) => (fs.existsSync(path.join(rw, `leftover-${what}`)) ? fs.readFileSync(path.join(rw, `leftover-${what}`), 'utf8').trim() : 'unknown'));
      fs.rmSync(rw, { recursive: true, force: true });
      // The agent ended on SIGINT as interrupted commands do (130), and left none of its programs in the far kernel.
      assert.equal(agentRc, '130', guestLog);
      assert.deepEqual(leftover, ['0', '0'], guestLog);
    }
  }),
);
