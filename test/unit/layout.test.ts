/**
 * The TypeScript mirror (src/bpf/layout.ts) must match the structs that
 * clang actually laid out: read them from the built object's BTF.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { CONFIG_FIELDS, CONFIG_SIZE, EVENT_FIELDS, EVENT_SIZE, FILTER_INSN_FIELDS, FILTER_INSN_SIZE, MANGLE_CONFIG_FIELDS, MANGLE_CONFIG_SIZE, MANGLE_STATS_FIELDS, PACKET_FIELDS, type Field } from '../../src/bpf/layout';
import { bpfObjectPath } from '../../src/native';

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function btfOf(object: string): Map<number, BtfType> {
  const types = new Map<number, BtfType>();
  for (const t of (JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', bpfObjectPath(object)], { encoding: 'utf8' })) as { types: BtfType[] }).types) {
    types.set(t.id, t);
  }
  return types;
}

const OBJECTS = { tracepkt: btfOf('tracepkt'), mangle: btfOf('mangle') };

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id)!;
  switch (t.kind) {
    case 'INT':
    case 'STRUCT':
    case 'UNION':
    case 'ENUM':
      return t.size!;
    case 'ARRAY':
      return t.nr_elems! * sizeOf(types, t.type_id!);
    case 'TYPEDEF':
    case 'CONST':
    case 'VOLATILE':
      return sizeOf(types, t.type_id!);
    case 'PTR':
      return 8;
    default:
      throw new Error(`unexpected BTF kind ${t.kind}`);
  }
}

function struct(name: string, object: keyof typeof OBJECTS = 'tracepkt'): { size: number; fields: Record<string, Field> } {
  const types = OBJECTS[object];
  const t = [...types.values()].find((x) => x.kind === 'STRUCT' && x.name === name);
  assert.ok(t, `struct ${name} is in the BTF of ${object}.bpf.o`);
  const fields: Record<string, Field> = {};
  for (const m of t.members!) fields[m.name] = [m.bits_offset / 8, sizeOf(types, m.type_id)];
  return { size: t.size!, fields };
}

test('struct tp_event matches EVENT_FIELDS', () => {
  const c = struct('tp_event');
  assert.equal(c.size, EVENT_SIZE);
  assert.deepEqual(c.fields, EVENT_FIELDS);
});

test('struct tp_config matches CONFIG_FIELDS', () => {
  const c = struct('tp_config');
  assert.equal(c.size, CONFIG_SIZE);
  assert.deepEqual(c.fields, CONFIG_FIELDS);
});

test('struct tp_packet matches PACKET_FIELDS', () => {
  const c = struct('tp_packet');
  assert.equal(c.size, PACKET_FIELDS.data[0] + PACKET_FIELDS.data[1]);
  assert.deepEqual(c.fields, PACKET_FIELDS);
});

test('struct tp_filter_insn matches FILTER_INSN_FIELDS', () => {
  const c = struct('tp_filter_insn');
  assert.equal(c.size, FILTER_INSN_SIZE);
  assert.deepEqual(c.fields, FILTER_INSN_FIELDS);
});

test('struct tp_mangle_config matches MANGLE_CONFIG_FIELDS; the filter is laid out as for tracing', () => {
  const c = struct('tp_mangle_config', 'mangle');
  assert.equal(c.size, MANGLE_CONFIG_SIZE);
  assert.deepEqual(c.fields, MANGLE_CONFIG_FIELDS);
  assert.deepEqual(struct('tp_filter_insn', 'mangle').fields, FILTER_INSN_FIELDS);
});

test('struct tp_mangle_stats matches MANGLE_STATS_FIELDS', () => {
  assert.deepEqual(struct('tp_mangle_stats', 'mangle').fields, MANGLE_STATS_FIELDS);
});
