import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { summarize } from '../../src/journey';
import { DEMO_FIXTURE as D, decodeFixture } from '../fixtures';

test('summarizes a recorded round trip: namespaces, paths, last hop', () => {
  const events = decodeFixture('demo-ipv4.batch');
  const s = summarize(events);
  assert.deepEqual(s.namespaces, [
    { netns: D.hostNetns, name: null },
    { netns: D.containerNetns, name: null },
  ]);
  assert.deepEqual(s.request.map((p) => p.ifname), ['docker0', D.veth, 'eth0']);
  assert.deepEqual(s.reply.map((p) => p.ifname), ['eth0', D.veth, 'docker0']);
  assert.equal(s.requestsSeen, 1);
  assert.equal(s.repliesSeen, 1);
  assert.equal(s.last, events[events.length - 1]);
});

test('a request without reply: reply path empty, last hop is where it stopped', () => {
  const events = decodeFixture('demo-ipv4.batch').filter((e) => e.dir === 'request');
  const s = summarize(events.slice().reverse()); // order of arrival does not matter
  assert.deepEqual(s.reply, []);
  assert.equal(s.repliesSeen, 0);
  assert.equal(s.last?.ifname, 'eth0');
  assert.equal(s.last?.netns, D.containerNetns);
});

test('an interface seen by two hooks in a row appears once in the path', () => {
  const events = decodeFixture('demo-ipv4.batch');
  const twice = [events[0], { ...events[0], hook: 'netif_receive_skb', time_ns: events[0].time_ns + 1 }, ...events.slice(1)];
  assert.deepEqual(summarize(twice).request.map((p) => p.ifname), ['docker0', D.veth, 'eth0']);
});

test('several probes: the paths are the first probe’s, the counts are per sequence number', () => {
  const one = decodeFixture('demo-ipv4.batch');
  const two = one.map((e) => ({ ...e, icmp_seq: 2, time_ns: e.time_ns + 1e9, ifname: e.ifname === 'eth0' ? 'eth9' : e.ifname }));
  const s = summarize([...two, ...one]);
  assert.equal(s.requestsSeen, 2);
  assert.equal(s.repliesSeen, 2);
  assert.deepEqual(s.request.map((p) => p.ifname), ['docker0', D.veth, 'eth0']);
});

test('nothing seen: empty summary', () => {
  const s = summarize([]);
  assert.deepEqual([s.namespaces, s.request, s.reply, s.last], [[], [], [], null]);
});
