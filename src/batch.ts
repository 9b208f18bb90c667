/**
 * The addon hands JavaScript batches of records: [u32 length][record], each
 * padded to 4 bytes (native/watch.c, batch_add). Ring-buffer events and
 * netlink datagrams arrive the same way.
 */
export function forEachRecord(batch: Buffer, onRecord: (offset: number, length: number) => void): void {
  for (let off = 0; off + 4 <= batch.length; ) {
    const len = batch.readUInt32LE(off);
    const rec = off + 4;
    if (rec + len > batch.length) return;
    onRecord(rec, len);
    off = (rec + len + 3) & ~3;
  }
}
