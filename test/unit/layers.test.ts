/**
 * The source's imports run one way: kernel record → decode → name → group →
 * verdict → render → commands, with no cycle (docs/architecture.md). Read
 * from the TypeScript sources themselves, static and dynamic imports alike.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', '..', 'src');

/** Module (path under src/, no extension) → the modules of src/ it imports. */
function importGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) {
        const mod = path.relative(SRC, full).slice(0, -3);
        const deps = new Set<string>();
        for (const m of fs.readFileSync(full, 'utf8').matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
          let dep = path.normalize(path.join(path.dirname(mod), m[1]));
          if (fs.existsSync(path.join(SRC, dep)) && fs.statSync(path.join(SRC, dep)).isDirectory()) dep = path.join(dep, 'index');
          deps.add(dep);
        }
        graph.set(mod, deps);
      }
    }
  };
  walk(SRC);
  return graph;
}

const graph = importGraph();

test('the import graph was read: every module, every import resolved to a module of src/', () => {
  assert.ok(graph.size > 50, `${graph.size} modules`);
  for (const [mod, deps] of graph) for (const dep of deps) assert.ok(graph.has(dep), `${mod} imports ${dep}, which is not a module`);
});

test('no import cycle', () => {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (mod: string): void => {
    state.set(mod, 'open');
    stack.push(mod);
    for (const dep of graph.get(mod) ?? []) {
      if (state.get(dep) === 'open') cycles.push([...stack.slice(stack.indexOf(dep)), dep].join(' -> '));
      else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(mod, 'done');
  };
  for (const mod of graph.keys()) if (!state.has(mod)) visit(mod);
  assert.deepEqual(cycles, []);
});

/** Who may import a module of each upper layer. */
const IMPORTED_ONLY_BY: [layer: RegExp, importers: RegExp][] = [
  [/^commands\//, /^(commands\/|cli$)/],
  [/^render\//, /^(render\/|commands\/|cli$|index$)/],
];

/** What the lowest layers (the kernel's records and their decoding) never import. */
const KERNEL_SIDE = /^(native|batch|decode|events|addr|ip|tcp|tunnel|bpf\/.*)$/;
const ABOVE_KERNEL_SIDE = /^(names|netfilter|probe|render|commands)\/|^(flows|journey|tidy|verdict|tracer|cli|index)$/;

test('layers one way: no module imports from a layer above it', () => {
  const wrong: string[] = [];
  for (const [mod, deps] of graph) {
    for (const dep of deps) {
      for (const [layer, importers] of IMPORTED_ONLY_BY) if (layer.test(dep) && !importers.test(mod)) wrong.push(`${mod} -> ${dep}`);
      if (KERNEL_SIDE.test(mod) && ABOVE_KERNEL_SIDE.test(dep)) wrong.push(`${mod} -> ${dep}`);
    }
  }
  assert.deepEqual(wrong, []);
});
