/**
 * A real Docker engine (docker.io) in a namespace of the test's own
 * (docker-daemon.ts): the names tracepkt prints for containers are the names
 * it takes (--from docker:NAME, a container as TARGET), and a journey through
 * Docker's own iptables rules (a published port on a user-defined network)
 * is followed hop by hop, with Docker's DNAT rule named. Docker itself is the
 * witness: `docker inspect` for addresses, `docker network inspect` for the
 * bridge.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Lab } from '../../src/lab/lab';
import { DockerDaemon } from './docker-daemon';
import { runCli } from './helpers';

/** A lab namespace running dockerd; everything removed afterwards, whatever happens. */
async function withDocker<T>(fn: (lab: Lab, docker: DockerDaemon, ns: string) => Promise<T>): Promise<T> {
  const lab = new Lab();
  let docker: DockerDaemon | undefined;
  try {
    const ns = lab.netns('dockerd');
    lab.ip(ns, 'link', 'set', 'lo', 'up');
    docker = await DockerDaemon.start(ns);
    return await fn(lab, docker, ns);
  } finally {
    await docker?.stop();
    lab.destroy();
  }
}

const unique = () => Math.random().toString(36).slice(2, 8);

test('docker: containers are named as Docker names them, and those names are taken back by --from and as TARGET', { timeout: 300_000 }, () =>
  withDocker(async (_lab, docker, ns) => {
    const [web, client] = [`web-${unique()}`, `client-${unique()}`];
    docker.run(web, [], ['httpd', '-f', '-p', '80']);
    const clientId = docker.run(client, [], ['sleep', '600']);
    const webAddress = docker.address(web);

    const run = await runCli(['--json', '-c', '1', '--from', `docker:${client}`, `docker:${web}`]);
    assert.equal(run.status, 0, run.stderr);
    const start = run.lines.find((l) => l.kind === 'start');
    assert.equal(start?.target, webAddress, 'the container as TARGET is its address, as docker inspect gives it');
    assert.equal(start?.target_input, `docker:${web}`);
    const request = run.events.filter((e) => e.kind === 'hop' && e.dir === 'request').map((e) => [e.netns_name, e.hook]);
    assert.deepEqual(request[0], [`docker:${client}`, 'net_dev_queue']);
    assert.deepEqual(request.at(-1), [`docker:${web}`, 'netif_receive_skb']);
    assert.ok(request.some(([name]) => name === ns), `through the daemon's namespace ${ns}: ${JSON.stringify(request)}`);
    assert.equal(run.summary?.verdict, 'delivered and answered');

    // A short id, as `docker ps` shows it, names the same container.
    const byId = await runCli(['--json', '-c', '1', '--from', `docker:${clientId.slice(0, 12)}`, webAddress]);
    assert.equal(byId.status, 0, byId.stderr);
    assert.equal(byId.events.find((e) => e.kind === 'hop')?.netns_name, `docker:${client}`);

    // A name one letter off: refused in one line that names the container meant.
    const wrong = `${client.slice(0, -1)}${client.endsWith('x') ? 'y' : 'x'}`;
    const typo = await runCli(['-c', '1', '--from', `docker:${wrong}`, webAddress]);
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, new RegExp(`^tracepkt: unknown network namespace "docker:${wrong}" \\(close: [^)]*docker:${client}\\b`));
    assert.equal(typo.stderr.trim().split('\n').length, 1, typo.stderr);
  }));

test('docker: a published port on a user-defined network, through Docker\'s own DNAT and forwarding rules, both ways', { timeout: 300_000 }, () =>
  withDocker(async (lab, docker, ns) => {
    const outside = lab.netns('outside');
    lab.veth(ns, 'ext', outside, 'eth0');
    lab.addr(ns, 'ext', '10.98.0.1/24');
    lab.addr(outside, 'eth0', '10.98.0.2/24');
    const network = `net-${unique()}`;
    const networkId = docker.docker('network', 'create', '--subnet', '172.30.7.0/24', network);
    const pub = `pub-${unique()}`;
    docker.run(pub, ['--network', network, '-p', '8080:80'], ['httpd', '-f', '-p', '80']);
    const address = docker.address(pub, network);
    const bridge = `br-${networkId.slice(0, 12)}`;

    const run = await runCli(['--json', '--tcp', '8080', '--from', outside, '10.98.0.1']);
    assert.equal(run.status, 0, run.stderr);
    const syn = run.events.filter((e) => e.kind === 'hop' && e.tcp_flags === 'S');
    assert.deepEqual(syn.map((e) => [e.netns_name, e.ifname === bridge || !/^veth/.test(e.ifname) ? e.ifname : 'veth', e.dst, e.dport]), [
      [outside, 'eth0', '10.98.0.1', 8080],
      [ns, 'ext', '10.98.0.1', 8080],
      [ns, bridge, address, 80],
      [ns, 'veth', address, 80],
      [`docker:${pub}`, 'eth0', address, 80],
    ]);
    const synAck = run.events.filter((e) => e.kind === 'hop' && e.tcp_flags === 'S.');
    assert.deepEqual(synAck.map((e) => [e.netns_name, e.src, e.sport]).at(-1), [outside, '10.98.0.1', 8080], 'the answer un-NATed on its way back');
    // Docker's DNAT, as its conntrack entry holds it, on the hop after it was made.
    assert.equal(run.events.find((e) => e.kind === 'hop' && e.tcp_flags === 'S' && e.ifname === bridge)?.conntrack?.nat, `dnat 10.98.0.1:8080->${address}:80`);
    assert.equal(run.summary?.verdict, `answered with SYN-ACK: port 80 open on ${address} (reached as 10.98.0.1:8080; NAT by conntrack in namespace ${ns}: dnat 10.98.0.1:8080->${address}:80)`);
    // Docker's own rule, named where it rewrote the SYN.
    const dnat = run.lines.find((l) => l.kind === 'netfilter' && l.table === 'nat' && l.chain === 'DOCKER' && l.dir === 'request');
    assert.match(dnat?.rule ?? '', new RegExp(`dnat to ${address.replace(/\./g, '\\.')}:80`), JSON.stringify(dnat));
    // And the forwarding rules it judged by let it through.
    const forward = run.lines.filter((l) => l.kind === 'netfilter' && l.table === 'filter' && l.hook === 'FORWARD' && l.dir === 'request');
    assert.ok(forward.length > 0 && forward.every((l) => l.verdict === 'ACCEPT'), JSON.stringify(forward));
  }));
