/**
 * The generated bindings (tools/gen-bindings.js → src/bpf/generated/) must be
 * what clang laid out and what the object names. The witness is bpftool's
 * reading of the same object's BTF, not the generator's own parser; and the
 * files in the tree must be the generator's output for the built objects, so
 * nobody edited them by hand or forgot to rebuild.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as mangle from '../../src/bpf/generated/mangle';
import * as probes from '../../src/bpf/generated/probes';
import * as tracepkt from '../../src/bpf/generated/tracepkt';
import { bpfObjectPath } from '../../src/native';

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
  vars?: { type_id: number; offset: number; size: number }[];
}

const GENERATED = { tracepkt, mangle, probes } as const;
type ObjectName = keyof typeof GENERATED;
const ROOT = path.resolve(__dirname, '..', '..', '..');

function btfOf(object: ObjectName): Map<number, BtfType> {
  const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', bpfObjectPath(object)], { encoding: 'utf8' })) as { types: BtfType[] };
  return new Map(dump.types.map((t) => [t.id, t]));
}

const QUALIFIERS = ['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'];

function resolved(types: Map<number, BtfType>, id: number): BtfType {
  let t = types.get(id)!;
  while (QUALIFIERS.includes(t.kind)) t = types.get(t.type_id!)!;
  return t;
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = resolved(types, id);
  if (t.kind === 'ARRAY') return t.nr_elems! * sizeOf(types, t.type_id!);
  if (t.kind === 'PTR') return 8;
  return t.size!;
}

/** The struct as bpftool reads it, in the generator's shape: absolute offsets, named nested structs as objects, anonymous members flattened. */
function expectedLayout(types: Map<number, BtfType>, t: BtfType, base: number): Record<string, unknown> {
  const out: Record<string, unknown> = { $offset: base, $size: t.size };
  for (const m of t.members!) {
    const at = base + m.bits_offset / 8;
    const mt = resolved(types, m.type_id);
    if ((mt.kind === 'STRUCT' || mt.kind === 'UNION') && m.name === '(anon)') Object.assign(out, expectedLayout(types, mt, at));
    else if (mt.kind === 'STRUCT' && mt.name !== '(anon)') out[m.name] = expectedLayout(types, mt, at);
    else out[m.name] = [at, sizeOf(types, m.type_id)];
  }
  return out;
}

function named(types: Map<number, BtfType>, kind: string): BtfType[] {
  return [...types.values()].filter((t) => t.kind === kind && t.name?.startsWith('tp_'));
}

for (const object of Object.keys(GENERATED) as ObjectName[]) {
  const generated = GENERATED[object] as unknown as Record<string, unknown>;
  const types = btfOf(object);

  test(`${object}: every tp_ struct is generated with the offsets and sizes clang laid out`, () => {
    const structs = named(types, 'STRUCT');
    if (object !== 'probes') assert.ok(structs.length > 0, 'the object carries its record types in BTF');
    for (const t of structs) assert.deepEqual(generated[t.name!], expectedLayout(types, t, 0), `struct ${t.name}`);
  });

  test(`${object}: every tp_ enum is generated with its values`, () => {
    for (const t of named(types, 'ENUM')) {
      assert.deepEqual(generated[t.name!], Object.fromEntries(t.values!.map((v) => [v.name, v.val])), `enum ${t.name}`);
    }
  });

  test(`${object}: program, map and global names are the object's`, () => {
    const funcs = [...types.values()].filter((t) => t.kind === 'FUNC').map((t) => t.name!);
    const programs = Object.keys(generated.programs as object);
    assert.ok(programs.length > 0);
    for (const p of programs) assert.ok(funcs.includes(p), `program ${p} is a function of ${object}.bpf.o`);
    const varsOf = (section: RegExp) => [...types.values()]
      .filter((t) => t.kind === 'DATASEC' && section.test(t.name!))
      .flatMap((t) => t.vars!.map((v) => types.get(v.type_id)!.name!));
    assert.deepEqual(Object.keys(generated.maps as object).sort(), varsOf(/^\.maps$/).sort());
    assert.deepEqual(
      Object.keys(generated.globals as object).sort(),
      varsOf(/^\.(rodata|bss|data)/).filter((n) => !n.endsWith('_btf_anchor')).sort(),
    );
  });

  test(`${object}: the bindings in the tree are the generator's output for the built object`, () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { generate } = require(path.join(ROOT, 'tools', 'gen-bindings.js')) as { generate(file: string): string };
    assert.equal(fs.readFileSync(path.join(ROOT, 'src', 'bpf', 'generated', `${object}.ts`), 'utf8'), generate(bpfObjectPath(object)));
  });
}

test('the records share one header, and each kind adds its own section after it', () => {
  const { tp_hop, tp_drop, tp_checkpoint, tp_table_verdict, tp_route, tp_header } = tracepkt;
  for (const r of [tp_hop, tp_drop, tp_checkpoint, tp_table_verdict, tp_route]) {
    assert.deepEqual(r.h, { ...tp_header }, 'the header comes first, at offset 0');
  }
  // decode.ts reads the packet fields, the quote and the outer packet at the hop's offsets for every packet kind.
  for (const r of [tp_drop, tp_checkpoint, tp_table_verdict]) {
    assert.deepEqual(r.p, tp_hop.p);
    assert.deepEqual(r.q, tp_hop.q);
    assert.deepEqual(r.o, tp_hop.o);
  }
  assert.ok(tp_drop.location[0] >= tp_hop.$size, 'a drop is a hop and then its own fields');
});

/**
 * The generator on an object made for the purpose, against offsets written
 * out by hand from the C rules (not from any BTF reader): nesting, anonymous
 * unions and structs flattened in, arrays, padding; bit fields refused.
 */
test('the generator lays out what C lays out, and refuses bit fields', () => {
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'tpk-gen-'));
  try {
    const build = (name: string, c: string) => {
      fs.writeFileSync(path.join(dir, `${name}.c`), `typedef unsigned char __u8; typedef unsigned short __u16; typedef unsigned int __u32; typedef unsigned long long __u64;\n${c}\nchar LICENSE[] __attribute__((section("license"))) = "GPL";\n`);
      execFileSync('clang', ['-target', 'bpf', '-g', '-O2', '-c', path.join(dir, `${name}.c`), '-o', path.join(dir, `${name}.o`)], { stdio: 'pipe' });
      return path.join(dir, `${name}.o`);
    };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { generate } = require(path.join(ROOT, 'tools', 'gen-bindings.js')) as { generate(file: string): string };
    const shapes = build('shapes', `
      struct tp_inner { __u16 a; __u32 b; };
      struct tp_shape {
        __u8 kind;
        union { __u64 u64; __u8 bytes[8]; };
        struct { __u32 p, q; };
        struct tp_inner in;
        char name[5];
        __u64 last;
      };
      const volatile struct tp_shape *const tp_shape_anchor = 0;`);
    const out = generate(shapes);
    const tpShape = /export const tp_shape = (\{[\s\S]*?\n\}) as const;/.exec(out)![1];
    // kind 0; the union aligned to 8; the anonymous struct after it at 16; tp_inner (a at 24, b at 28: aligned to 4);
    // name[5] at 32; last aligned to 8 at 40; size 48.
    const expected = `{
  $offset: 0,
  $size: 48,
  kind: [0, 1],
  u64: [8, 8],
  bytes: [8, 8],
  p: [16, 4],
  q: [20, 4],
  in: {
    $offset: 24,
    $size: 8,
    a: [24, 2],
    b: [28, 4],
  },
  name: [32, 5],
  last: [40, 8],
}`;
    assert.equal(tpShape, expected);
    const bits = build('bits', `
      struct tp_bits { __u32 flags : 8; __u32 other : 24; };
      const volatile struct tp_bits *const tp_bits_anchor = 0;`);
    assert.throws(() => generate(bits), /bit field tp_bits\.flags is not supported/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tracing and mangling reserve the same filter slot, and say as much in their configs', () => {
  assert.equal(mangle.tp_limits.TP_FILTER_SLOTS, tracepkt.tp_limits.TP_FILTER_SLOTS);
  assert.deepEqual([mangle.tp_mangle_config.filter[1], mangle.tp_mangle_config.filter_reach[1]], [tracepkt.tp_config.filter[1], tracepkt.tp_config.filter_reach[1]]);
});
