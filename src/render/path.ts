/**
 * The path as a picture: interfaces joined by arrows, the namespace each
 * belongs to written above it, a bar where the path changes namespace.
 * Where the probe travels in a tunnel (an overlay's underlay), the arrows
 * are double, and the one entering the tunnel names it:
 *
 *     tp-host            |   tp-ctr
 *     docker0 ---> veth0 --> eth0
 *
 *     n1                                              |   n2
 *     vx0 ==[vxlan 42: 192.168.77.1 -> 192.168.77.2]==> u1 =====> u2 ===> vx0
 */
import type { PathStep } from '../journey';
import { sameTunnel, tunnelLabel } from '../tunnel';
import { shown } from './shown';

interface Segment {
  label: string;
  text: string;
  first: PathStep;
  last: PathStep;
}

/** The arrow from one step to the next, with its shaft at least `shaft` long. */
function arrow(from: PathStep, to: PathStep, shaft: number): string {
  if (to.tunnel && !sameTunnel(from.tunnel, to.tunnel)) {
    const label = `==[${tunnelLabel(to.tunnel)}]`;
    return label + '='.repeat(Math.max(2, shaft - label.length)) + '>';
  }
  return (from.tunnel || to.tunnel ? '=' : '-').repeat(shaft) + '>';
}

function segments(steps: readonly PathStep[]): Segment[] {
  const out: Segment[] = [];
  for (const s of steps) {
    const seg = out[out.length - 1];
    if (seg && seg.last.netns === s.netns && seg.last.node === s.node) {
      seg.text += ` ${arrow(seg.last, s, 3)} ${shown(s.ifname)}`;
      seg.last = s;
    } else {
      // Names shown as printed (control characters made visible): the picture's widths are theirs.
      const name = s.netnsName ?? String(s.netns);
      out.push({ label: shown(s.node === undefined ? name : `${s.node}/${name}`), text: shown(s.ifname), first: s, last: s });
    }
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
    // stands over that arrow's shaft, between the two namespaces. An arrow
    // that names a tunnel may be longer still: the next label moves with it.
    const width = Math.max(seg.text.length, seg.label.length);
    const leaving = arrow(seg.last, segs[i + 1].first, width - seg.text.length + 3);
    const placed = seg.text + ' ' + leaving + ' ';
    top += (seg.label.padEnd(width) + '  |   ').padEnd(placed.length);
    bottom += placed;
  });
  return [top, bottom];
}
