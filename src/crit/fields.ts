// -F / --fields: print only some fields of each entry. A nested field is named
// by its dotted path ("tc.comm", "thread_info.gpregs.ip", "vmas.start"); the
// output keeps the objects and lists around the selected fields. Names are
// checked against the schema before anything is decoded, so a typo is an
// error that lists the fields that exist where it went wrong. Pure.
import type { DescField, DescMessage } from '@bufbuild/protobuf';
import { CritError } from './errors.js';
import { isObject, setKey, type JsonObject, type JsonValue } from './json.js';

/** Selected names at one level; null selects the whole value. */
export type FieldTree = Map<string, FieldTree | null>;

/** Parses "a.b,c" into a tree; a path also selected whole ("tc" and "tc.comm") stays whole. */
export function parseFieldList(list: string): FieldTree {
  const root: FieldTree = new Map();
  for (const raw of list.split(',')) {
    const path = raw.trim();
    if (path === '') continue;
    const names = path.split('.');
    if (names.some((n) => n === '')) throw new CritError(undefined, undefined, `-F: bad field name "${path}"`, 2);
    let level = root;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      if (i === names.length - 1) {
        level.set(name, null);
        break;
      }
      const have = level.get(name);
      if (have === null) break; // already selected whole
      let next = have;
      if (next === undefined) {
        next = new Map();
        level.set(name, next);
      }
      level = next;
    }
  }
  if (root.size === 0) throw new CritError(undefined, undefined, '-F: no field names given', 2);
  return root;
}

function sorted(fields: readonly DescField[]): DescField[] {
  return [...fields].sort((a, b) => a.number - b.number);
}

/**
 * Checks every selected name against the schemas of the entries (a kind with a
 * head has two). `extra` names the raw payload of kinds that have one.
 */
export function checkFields(tree: FieldTree, schemas: readonly DescMessage[], hasExtra: boolean, image: string): void {
  const walk = (level: FieldTree, descs: readonly DescMessage[], path: string, top: boolean): void => {
    for (const [name, sub] of level) {
      const here = path === '' ? name : `${path}.${name}`;
      if (top && hasExtra && name === 'extra') {
        if (sub !== null) throw new CritError(undefined, undefined, `-F ${here}.${[...sub.keys()][0]}: "extra" is raw data, it has no fields`);
        continue;
      }
      const found = descs.flatMap((d) => d.fields.filter((f) => f.name === name));
      if (found.length === 0) {
        const names = new Set(descs.flatMap((d) => sorted(d.fields).map((f) => f.name)));
        if (top && hasExtra) names.add('extra');
        const where = path === '' ? `the entries of ${image}` : path;
        throw new CritError(undefined, undefined, `-F: no field "${here}": the fields of ${where} are ${[...names].join(', ')}`);
      }
      if (sub === null) continue;
      const inner = found.flatMap((f) => (f.message ? [f.message] : []));
      if (inner.length === 0) throw new CritError(undefined, undefined, `-F ${here}.${[...sub.keys()][0]}: ${here} is not a message, it has no fields`);
      walk(sub, inner, here, false);
    }
  };
  walk(tree, schemas, '', true);
}

/** The selected fields of an entry, in the entry's own order; lists of messages are selected item by item. */
export function selectFields(entry: JsonObject, tree: FieldTree): JsonObject {
  const out: JsonObject = {};
  for (const key of Object.keys(entry)) {
    if (!tree.has(key)) continue;
    const sub = tree.get(key)!;
    const v = entry[key]!;
    setKey(out, key, sub === null ? v : select(v, sub));
  }
  return out;
}

function select(v: JsonValue, tree: FieldTree): JsonValue {
  if (Array.isArray(v)) return v.map((x) => select(x, tree));
  if (isObject(v)) return selectFields(v, tree);
  return v;
}
