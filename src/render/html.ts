/**
 * `--html FILE`: one self-contained page (inline CSS and SVG; nothing is
 * fetched) showing the journey as a diagram — namespaces as boxes,
 * interfaces as nodes, numbered arrows in the order the kernel saw the
 * packets, netfilter verdicts and drops marked — with the event table under it.
 */
import type { BpfProgramOnPath, HopEvent, TraceEvent } from '../events';
import { describeProgram, describeReturns } from '../kernel/attached-programs';
import { sameTunnel, tunnelLabel } from '../tunnel';
import { TableRenderer } from './table';
import { shown } from './shown';
import { resolution } from '../addr';

/** Markup escaped, control characters made visible (shown.ts): the page carries no byte a name chose. */
const esc = (raw: string) => shown(raw).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const BOX_W = 220;
const GAP = 90;
const NODE_H = 34;
const TOP = 70;
/** Marks (verdicts, drops, tunnels) are wrapped to the box: 11px monospace, ~6.6px a character. */
const MARK_CHARS = Math.floor((BOX_W - 16) / 6.7);
const MARK_LINE = 14;
/** A namespace's name at 14px in its box; longer ones are shortened (the whole name is its title). */
const NAME_CHARS = Math.floor((BOX_W - 16) / 8.5);

/** Words in lines of at most `width` characters; a word longer than a line is cut. Shown first: what is measured is what is drawn. */
function wrap(raw: string, width: number): string[] {
  const text = shown(raw);
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(' ')) {
    while (word.length > width) {
      if (line) lines.push(line);
      lines.push(word.slice(0, width));
      word = word.slice(width);
      line = '';
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** At most n characters as drawn (shown), the cut marked. */
const shorten = (raw: string, n: number) => {
  const s = shown(raw);
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
};
/** An interface's name at 13px monospace (~7.8px a character) in its 140px box. */
const IFNAME_CHARS = Math.floor((140 - 12) / 7.8);

const COLOURS: Record<string, string> = { request: '#2e7d32', reply: '#1565c0', error: '#ef6c00' };

export interface HtmlJourney {
  title: string;
  verdict: string;
  events: readonly TraceEvent[];
  /** The BPF programs attached to the interfaces crossed. */
  programs?: readonly BpfProgramOnPath[];
}

export function renderHtml(j: HtmlJourney): string {
  const hops = j.events.filter((e): e is HopEvent => e.kind === 'hop');
  // Namespaces left to right in the order the packets reached them; interfaces top to bottom.
  const namespaces: { netns: number; name: string; ifaces: string[] }[] = [];
  for (const h of hops) {
    let ns = namespaces.find((n) => n.netns === h.netns);
    if (!ns) namespaces.push((ns = { netns: h.netns, name: h.netns_name ?? String(h.netns), ifaces: [] }));
    if (!ns.ifaces.includes(h.ifname)) ns.ifaces.push(h.ifname);
  }
  const nsX = (i: number) => 20 + i * (BOX_W + GAP);
  const node = (netns: number, ifname: string) => {
    const i = namespaces.findIndex((n) => n.netns === netns);
    const k = namespaces[i].ifaces.indexOf(ifname);
    return { x: nsX(i) + BOX_W / 2, y: TOP + 50 + k * (NODE_H + 26), i };
  };
  // Verdicts, drops and tunnels entered, under the namespace they happened in, wrapped to its box.
  const marks = new Map<number, { cls: string; lines: string[] }[]>();
  const mark = (netns: number, cls: string, text: string) => (marks.get(netns) ?? marks.set(netns, []).get(netns)!).push({ cls, lines: wrap(text, MARK_CHARS) });
  let inTunnel: HopEvent | undefined;
  const natsMarked = new Set<string>();
  for (const e of j.events) {
    if (e.kind === 'netfilter') mark(e.netns, `verdict ${e.verdict === 'ACCEPT' ? 'accept' : 'drop'}`, `${e.hook} ${e.table_family} ${e.table} ${e.chain}: ${e.verdict}`);
    else if (e.kind === 'drop') mark(e.netns, 'verdict drop dropped', `dropped at ${e.location}: ${e.reason}`);
    // Waiting at a neighbour is a stop only where nothing shows the packet going on (the first
    // packet to a next hop always waits a moment).
    else if (e.kind === 'neighbour' && !j.events.some((x) => x.time_ns > e.time_ns && x.kind === 'hop' && x.skb === e.skb))
      mark(e.netns, 'verdict drop waiting', `waiting on ${e.ifname} for ${resolution(e.next_hop)}: ${e.next_hop} ${e.neighbour_state}`);
    else if (e.kind === 'hop') {
      if (e.tunnel && !sameTunnel(inTunnel?.tunnel, e.tunnel)) mark(e.netns, 'tunnel', `${e.dir} into ${tunnelLabel(e.tunnel)}`);
      inTunnel = e.tunnel ? e : undefined;
      // A conntrack mapping, in the namespace whose entry holds it (once per namespace and mapping).
      const nat = e.conntrack?.nat;
      if (nat && !natsMarked.has(`${e.netns} ${nat}`)) {
        natsMarked.add(`${e.netns} ${nat}`);
        mark(e.netns, 'conntrack', `conntrack ${nat}`);
      }
    }
  }
  // The BPF programs on the interfaces crossed, under their namespace.
  for (const p of j.programs ?? []) mark(p.netns, 'program', `${p.ifname}: ${describeProgram(p)}${describeReturns(p) ? `; ${describeReturns(p)}` : ''}`);
  const markLines = Math.max(0, ...[...marks.values()].map((m) => m.reduce((n, x) => n + x.lines.length, 0)));
  const height = TOP + 80 + Math.max(1, ...namespaces.map((n) => n.ifaces.length)) * (NODE_H + 26) + 90 + markLines * MARK_LINE;
  const width = Math.max(600, 40 + namespaces.length * (BOX_W + GAP) - GAP);

  const boxes = namespaces.map((n, i) => {
    const x = nsX(i);
    const ifaces = n.ifaces.map((ifname) => {
      const p = node(n.netns, ifname);
      return `<g class="interface" data-ifname="${esc(ifname)}"><rect x="${p.x - 70}" y="${p.y - NODE_H / 2}" width="140" height="${NODE_H}" rx="8"/><text x="${p.x}" y="${p.y + 5}">${esc(shorten(ifname, IFNAME_CHARS))}<title>${esc(ifname)}</title></text></g>`;
    });
    return `<g class="namespace" data-netns="${n.netns}"><rect x="${x}" y="${TOP}" width="${BOX_W}" height="${height - TOP - 60}" rx="12"/><text class="ns-name" x="${x + BOX_W / 2}" y="${TOP + 22}">${esc(shorten(n.name, NAME_CHARS))}<title>${esc(n.name)}</title></text>${ifaces.join('')}</g>`;
  });

  // One numbered arrow per move from one interface to the next, in kernel order.
  const arrows: string[] = [];
  let step = 0;
  let prev: HopEvent | undefined;
  for (const h of hops) {
    if (prev && (prev.netns !== h.netns || prev.ifname !== h.ifname)) {
      step++;
      const a = node(prev.netns, prev.ifname);
      const b = node(h.netns, h.ifname);
      const bend = a.i === b.i ? 110 : 0; // within a namespace: curve out past the nodes' right edges
      // Between namespaces, from one node's edge to the other's; within one, side to side.
      const dx = a.i === b.i ? 70 : Math.sign(b.x - a.x) * 70;
      const [ax, bx] = a.i === b.i ? [a.x + dx, b.x + dx] : [a.x + dx, b.x - dx];
      const path = `M${ax},${a.y} C${ax + bend},${a.y} ${bx + bend},${b.y} ${bx},${b.y}`;
      const colour = COLOURS[h.dir] ?? '#555';
      const mx = (ax + bx) / 2 + bend * 0.75;
      const my = (a.y + b.y) / 2 - 6;
      // A step of the underlay (the probe inside a tunnel's outer packet) is dashed.
      const tunnel = h.tunnel && prev.tunnel ? ' tunnel' : '';
      arrows.push(`<g class="step ${h.dir}${tunnel}" data-step="${step}"><path d="${path}" stroke="${colour}" marker-end="url(#head-${h.dir})"/><circle cx="${mx}" cy="${my}" r="10" fill="${colour}"/><text class="num" x="${mx}" y="${my + 4}">${step}</text></g>`);
    }
    prev = h;
  }

  // Each mark a text of its lines, stacked up from the box's bottom edge.
  const markText = namespaces.map((n, i) => {
    const mine = marks.get(n.netns) ?? [];
    let y = height - 60 - 8 - mine.reduce((sum, m) => sum + m.lines.length, 0) * MARK_LINE + MARK_LINE;
    return mine
      .map((m) => {
        const tspans = m.lines.map((line, k) => `<tspan x="${nsX(i) + 8}" dy="${k === 0 ? 0 : MARK_LINE}">${esc(line)}</tspan>`).join('');
        const text = `<text x="${nsX(i) + 8}" y="${y}" class="mark ${m.cls}">${tspans}</text>`;
        y += m.lines.length * MARK_LINE;
        return text;
      })
      .join('');
  });

  const heads = Object.entries(COLOURS)
    .map(([dir, c]) => `<marker id="head-${dir}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${c}"/></marker>`)
    .join('');

  const table = new TableRenderer();
  const header = table.header();
  const rows = j.events.map((e) => `<tr class="${e.kind}"><td>${esc(table.line(e))}</td></tr>`).join('\n');

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"><title>${esc(j.title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } p.verdict { font-size: 16px; margin: 0 0 16px; }
svg { border: 1px solid #ddd; border-radius: 8px; background: #fafafa; max-width: 100%; height: auto; }
.namespace > rect { fill: #eef3f8; stroke: #8aa4bf; stroke-width: 1.5; }
.ns-name { text-anchor: middle; font-weight: 600; font-size: 14px; }
.interface rect { fill: #fff; stroke: #455a64; stroke-width: 1.5; }
.interface text { text-anchor: middle; font-family: ui-monospace, monospace; font-size: 13px; }
.step path { fill: none; stroke-width: 2.2; } .step.tunnel path { stroke-dasharray: 7 4; stroke-width: 3; }
.num { text-anchor: middle; fill: #fff; font-size: 11px; font-weight: 700; }
.mark { font-size: 11px; font-family: ui-monospace, monospace; }
.verdict.accept { fill: #2e7d32; } .verdict.drop { fill: #c62828; font-weight: 700; } .mark.tunnel { fill: #1565c0; } .mark.conntrack { fill: #6a1b9a; } .mark.program { fill: #00695c; }
table.programs { margin-top: 12px; } table.programs td { border-bottom: 1px solid #eee; }
div.events { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin-top: 18px; font-family: ui-monospace, monospace; font-size: 12px; white-space: pre; }
td { padding: 1px 6px; } tr.drop td { color: #c62828; } tr.netfilter td { color: #6a1b9a; } tr.route td { color: #777; }
thead td { font-weight: 700; border-bottom: 1px solid #aaa; }
</style></head>
<body>
<h1>${esc(j.title)}</h1>
<p class="verdict">Verdict: ${esc(j.verdict)}</p>
<svg id="journey" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
<defs>${heads}</defs>
${boxes.join('\n')}
${arrows.join('\n')}
${markText.join('\n')}
</svg>
${programList(j.programs ?? [])}<div class="events"><table id="events"><thead><tr><td>${esc(header)}</td></tr></thead><tbody>
${rows}
</tbody></table></div>
</body></html>
`;
}

/** The BPF programs on the path, one row each: where, which hook, which program. */
function programList(programs: readonly BpfProgramOnPath[]): string {
  if (programs.length === 0) return '';
  const rows = programs
    .map((p) => `<tr><td>${esc(p.netns_name ?? String(p.netns))}</td><td>${esc(p.ifname)}</td><td>${esc(p.hook)} ${esc(p.direction)}</td><td>${esc(p.mode)}</td><td>${esc(p.name ?? '?')}</td><td>${p.id}</td><td>${esc(p.tag ?? '')}</td><td>${esc(describeReturns(p) || 'not traced')}</td></tr>`)
    .join('\n');
  return `<table class="programs" id="programs"><thead><tr><td>namespace</td><td>interface</td><td>hook</td><td>mode</td><td>program</td><td>id</td><td>tag</td><td>what it did</td></tr></thead><tbody>\n${rows}\n</tbody></table>\n`;
}
