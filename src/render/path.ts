/**
 * The path as a picture: interfaces joined by arrows, the namespace each
 * belongs to written above it, a bar where the path changes namespace.
 *
 *     tp-host            |   tp-ctr
 *     docker0 ---> veth0 --> eth0
 */
import type { PathStep } from '../journey';

const ARROW = ' ---> ';

interface Segment {
  label: string;
  text: string;
}

function segments(steps: readonly PathStep[]): Segment[] {
  const out: Segment[] = [];
  let prev: number | undefined;
  for (const s of steps) {
    if (s.netns !== prev) out.push({ label: s.netnsName ?? String(s.netns), text: s.ifname });
    else out[out.length - 1].text += ARROW + s.ifname;
    prev = s.netns;
  }
  return out;
}

/** Two lines (namespaces, interfaces), or none for an empty path. */
export function renderPath(steps: readonly PathStep[]): string[] {
  const segs = segments(steps);
  if (segs.length === 0) return [];
  let top = '';
  let bottom = '';
  segs.forEach((seg, i) => {
    if (i === segs.length - 1) {
      top += seg.label;
      bottom += seg.text;
      return;
    }
    // A longer label stretches the arrow that leaves the segment; the bar
    // stands over that arrow's shaft, between the two namespaces.
    const width = Math.max(seg.text.length, seg.label.length);
    top += seg.label.padEnd(width) + '  |   ';
    bottom += seg.text + ' ' + '-'.repeat(width - seg.text.length + 3) + '> ';
  });
  return [top, bottom];
}
