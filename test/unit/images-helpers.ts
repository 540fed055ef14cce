// Helpers for the image tests: temporary image directories and CRIU's own crit.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { toJson, type DescMessage, type Message } from '@bufbuild/protobuf';

/** Debian's crit, run with the system python (not a pyenv one). */
export const PYTHON = '/usr/bin/python3';
export const CRIT = '/usr/bin/crit';
export const haveCrit = fs.existsSync(PYTHON) && fs.existsSync(CRIT);

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cryo-img-${tag}-`));
}

/** JSON.parse that keeps integers beyond 2^53 exact, as strings. */
export function parseBigJson(text: string): unknown {
  return JSON.parse(text.replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"$2"'));
}

/** crit decode of a file: {magic, entries}. */
export function critDecode(file: string): { magic: string; entries: Record<string, unknown>[] } {
  const out = execFileSync(PYTHON, [CRIT, 'decode', '-i', file], { encoding: 'utf8' });
  return parseBigJson(out) as { magic: string; entries: Record<string, unknown>[] };
}

/** crit decode then crit encode: the bytes CRIU's tool writes for the same content. */
export function critRecode(file: string, dir: string): Buffer {
  const json = path.join(dir, path.basename(file) + '.json');
  const back = path.join(dir, path.basename(file) + '.recoded');
  execFileSync(PYTHON, [CRIT, 'decode', '-i', file, '-o', json]);
  execFileSync(PYTHON, [CRIT, 'encode', '-i', json, '-o', back]);
  return fs.readFileSync(back);
}

/**
 * Normalises a crit-style JSON value for comparison: every number becomes its
 * decimal string (crit prints u64 as numbers, protobuf-es as strings) and base64
 * loses the line breaks Python's encodebytes inserts.
 */
export function normalise(v: unknown): unknown {
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return /^-?\d+$/.test(v) ? v : v.replace(/\n/g, '');
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalise(x);
    return o;
  }
  return v;
}

/** Our message as crit would print it (non-pretty): proto field names, enum names. */
export function asCrit(desc: DescMessage, msg: Message): unknown {
  return normalise(toJson(desc, msg as never, { useProtoFieldName: true }));
}

/**
 * The schemas pycriu was built with (Debian's CRIU 3.17): message name -> fields.
 * Used to check that ours agree with CRIU's on every field both know.
 */
export function pycriuSchemas(): Record<string, PyField[] | Record<string, number>> {
  const script = `
import json, sys
import pycriu.images.pb, pycriu.rpc_pb2
out = {}
def walk(d):
    fs = []
    for f in d.fields:
        opts = {}
        for (ext, val) in f.GetOptions().ListFields():
            if ext.name != 'criu': continue
            for (sf, sv) in val.ListFields():
                opts[sf.name] = sv
        o = f.GetOptions()
        fs.append({'name': f.name, 'number': f.number, 'type': f.type, 'label': f.label,
                   'typeName': f.message_type.name if f.message_type else f.enum_type.name if f.enum_type else None,
                   'packed': o.packed if o.HasField('packed') else False,
                   'default': str(f.default_value) if f.has_default_value else None, 'opts': opts})
    out[d.name] = fs
    for n in d.nested_types: walk(n)
    for e in d.enum_types: out['enum:' + e.name] = {v.name: v.number for v in e.values}
for k, m in sorted(sys.modules.items()):
    if not (k.startswith('pycriu') and k.endswith('_pb2')): continue
    for d in m.DESCRIPTOR.message_types_by_name.values(): walk(d)
    for e in m.DESCRIPTOR.enum_types_by_name.values(): out['enum:' + e.name] = {v.name: v.number for v in e.values}
json.dump(out, sys.stdout)
`;
  return JSON.parse(execFileSync(PYTHON, ['-c', script], { encoding: 'utf8', cwd: '/' }));
}

export interface PyField {
  name: string;
  number: number;
  type: number;
  label: number;
  typeName: string | null;
  packed: boolean;
  default: string | null;
  opts: Record<string, string | boolean>;
}
