// Our .proto schemas against the ones CRIU's crit was built with (Debian's pycriu):
// every message, field, number, type, label, default, packed flag, crit option and
// enum value that pycriu knows must be the same in ours. Ours may have more (fields
// CRIU added after that release). This covers every kind, not only those with a
// crit round-trip test.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getExtension, hasExtension, type DescEnum, type DescFile, type DescMessage } from '@bufbuild/protobuf';
import { criu } from '../../src/images/gen/opts_pb.js';
import { haveCrit, pycriuSchemas, type PyField } from './images-helpers.js';

const GEN = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/images/gen');

/** CRIU's message name -> ours: snake_case to PascalCase, with these exceptions. */
const RENAMED: Record<string, string> = { CRIU_Opts: 'CriuFieldOpts' };
const ours = (criuName: string) =>
  RENAMED[criuName] ?? criuName.split('_').filter(Boolean).map((p) => p[0]!.toUpperCase() + p.slice(1)).join('');

/** Fields CRIU renamed after 3.17: "message.number" -> the old name pycriu has. */
const RENAMED_FIELDS: Record<string, string> = { 'pagemap_entry.2': 'nr_pages' };

/** Fields that are bytes here where CRIU says string (9): the same on the wire, and their contents need not be UTF-8. */
const BYTES_FOR_STRING = new Set(['binfmt_misc_entry.extension']);

async function loadOurs(): Promise<{ messages: Map<string, DescMessage>; enums: Map<string, DescEnum> }> {
  const messages = new Map<string, DescMessage>();
  const enums = new Map<string, DescEnum>();
  const walk = (m: DescMessage) => {
    messages.set(m.name, m);
    m.nestedEnums.forEach((e) => enums.set(e.name, e));
    m.nestedMessages.forEach(walk);
  };
  for (const f of fs.readdirSync(GEN).filter((n) => n.endsWith('_pb.ts'))) {
    const mod = (await import(path.join(GEN, f))) as Record<string, unknown>;
    for (const [k, v] of Object.entries(mod)) {
      if (!k.startsWith('file_')) continue;
      const file = v as DescFile;
      file.messages.forEach(walk);
      file.enums.forEach((e) => enums.set(e.name, e));
    }
  }
  return { messages, enums };
}

describe('schemas agree with CRIU', { skip: !haveCrit && 'pycriu is not installed' }, async () => {
  const py = pycriuSchemas();
  const { messages, enums } = await loadOurs();

  it('has every message and field pycriu has, with the same wire facts', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const [name, fields] of Object.entries(py)) {
      if (name.startsWith('enum:')) continue;
      const m = messages.get(ours(name));
      if (!m) {
        problems.push(`message ${name} missing`);
        continue;
      }
      for (const pf of fields as PyField[]) {
        checked++;
        const f = m.fields.find((x) => x.number === pf.number);
        if (!f) {
          problems.push(`${name}.${pf.name} (${pf.number}) missing`);
          continue;
        }
        const p = f.proto;
        const want = (what: string, a: unknown, b: unknown) => {
          if (a !== b) problems.push(`${name}.${pf.name}: ${what} ${String(a)}, CRIU has ${String(b)}`);
        };
        want('name', RENAMED_FIELDS[`${name}.${pf.number}`] ?? p.name, pf.name);
        want('type', BYTES_FOR_STRING.has(`${name}.${pf.name}`) && p.type === 12 ? 9 : p.type, pf.type);
        want('label', p.label, pf.label);
        want('type name', p.typeName ? p.typeName.split('.').pop() : null, pf.typeName ? ours(pf.typeName) : null);
        want('packed', p.options?.packed ?? false, pf.packed);
        if (pf.default !== null) {
          let d = p.defaultValue;
          if (d !== undefined && f.fieldKind === 'enum') d = String(f.enum.values.find((v) => v.name === d)?.number);
          else if (d !== undefined && /^0x[0-9a-f]+$/i.test(d)) d = String(parseInt(d, 16));
          want('default', d, pf.default === 'True' ? 'true' : pf.default === 'False' ? 'false' : pf.default);
        }
        const o = (p.options && hasExtension(p.options, criu) ? getExtension(p.options, criu) : {}) as Record<string, unknown>;
        for (const k of ['hex', 'ipadd', 'flags', 'dev', 'odev', 'dict', 'conv']) {
          want(`option ${k}`, o[k] || undefined, pf.opts[k] || undefined);
        }
      }
    }
    assert.ok(checked > 1000, `only ${checked} fields checked`);
    assert.deepEqual(problems, []);
  });

  it('has every enum value pycriu has', () => {
    const problems: string[] = [];
    for (const [key, values] of Object.entries(py)) {
      if (!key.startsWith('enum:')) continue;
      const e = enums.get(ours(key.slice(5)));
      if (!e) {
        problems.push(`enum ${key.slice(5)} missing`);
        continue;
      }
      for (const [vn, vv] of Object.entries(values as Record<string, number>)) {
        const v = e.values.find((x) => x.name === vn);
        if (v?.number !== vv) problems.push(`${key.slice(5)}.${vn}: ${String(v?.number)}, CRIU has ${vv}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('declares every message field in ascending number order', () => {
    for (const m of messages.values()) {
      const nums = m.proto.field.map((f) => f.number!);
      assert.deepEqual(nums, [...nums].sort((a, b) => a - b), m.typeName);
    }
  });
});
