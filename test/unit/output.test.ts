/** A reader that falls behind makes a flood's writer wait instead of piling output up in memory. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { backlogOf, OUTPUT_BACKLOG } from '../../src/commands/output';

/** A pipe whose reader takes a chunk only when told to (take), as a slow `| jq` would. */
function slowReader() {
  const pending: (() => void)[] = [];
  const stream = new Writable({
    highWaterMark: 64 * 1024,
    write(_chunk, _enc, done) {
      pending.push(done);
    },
  });
  const take = () => pending.shift()?.();
  return { stream, take, pending };
}

test('output: a reader keeping up (or a file) never makes the writer wait', () => {
  const { stream, take } = slowReader();
  stream.write('x'.repeat(1024));
  assert.equal(backlogOf(stream), undefined);
  take();
  assert.equal(stream.writableLength, 0);
  assert.equal(backlogOf(stream), undefined);
});

test('output: beyond the backlog bound the writer waits until the reader has taken it all', async () => {
  const { stream, take, pending } = slowReader();
  const chunk = 'y'.repeat(256 * 1024);
  for (let sent = 0; sent <= OUTPUT_BACKLOG; sent += chunk.length) stream.write(chunk);
  assert.ok(stream.writableLength > OUTPUT_BACKLOG);
  const behind = backlogOf(stream);
  assert.ok(behind instanceof Promise);
  let caughtUp = false;
  void behind.then(() => (caughtUp = true));
  // The reader takes all but the last chunk: still waiting.
  while (pending.length > 1 || stream.writableLength > chunk.length) {
    take();
    await new Promise(setImmediate);
  }
  assert.equal(caughtUp, false, 'resolved while the reader still had output to take');
  take();
  await behind;
  assert.equal(stream.writableLength, 0);
  assert.equal(caughtUp, true);
});

test('output: a reader that goes away releases the writer', async () => {
  const { stream } = slowReader();
  const chunk = 'z'.repeat(1024 * 1024);
  for (let i = 0; i < 5; i++) stream.write(chunk);
  const behind = backlogOf(stream);
  assert.ok(behind);
  stream.destroy();
  await behind; // would hang (and the test time out) if close did not release it
  assert.equal(backlogOf(stream), undefined);
});
