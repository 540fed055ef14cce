// Every struct codec of src/abi against the kernel's headers: its size and each
// field's offset as gcc lays them out (test/unit/abi/layouts.c), and a round trip.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as abi from '../../src/abi/index.js';

const codecs = Object.values(abi).filter((v): v is abi.Struct<object> => v instanceof abi.Struct);

function layouts(): { sizes: Map<string, number>; offsets: Map<string, string> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-abi-'));
  try {
    const src = fileURLToPath(new URL('./abi/layouts.c', import.meta.url));
    const bin = path.join(dir, 'layouts');
    const cc = spawnSync('gcc', ['-Wall', '-Werror', '-o', bin, src], { encoding: 'utf8' });
    assert.equal(cc.status, 0, cc.stderr);
    const out = spawnSync(bin, { encoding: 'utf8' }).stdout;
    const sizes = new Map<string, number>();
    const offsets = new Map<string, string>();
    for (const line of out.trim().split('\n')) {
      const f = line.split(' ');
      if (f[0] === 'S') sizes.set(f[1]!, Number(f[2]));
      else offsets.set(`${f[1]}.${f[2]}`, `${f[3]}+${f[4]}`);
    }
    return { sizes, offsets };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('abi: each struct has the size, field offsets and field sizes of the kernel headers', () => {
  const { sizes, offsets } = layouts();
  assert.equal(codecs.length, sizes.size, 'codecs against structs of the header');
  for (const c of codecs) {
    assert.equal(c.size, sizes.get(c.name), `sizeof(${c.name})`);
    const fields = Object.entries(c.offsets);
    for (const [f, off] of fields) {
      const sz = (c.sizes as Record<string, number>)[f];
      assert.equal(`${off}+${sz}`, offsets.get(`${c.name}.${f}`), `offsetof+sizeof(${c.name}, ${f})`);
    }
    // Every field the header checks is one of the codec's.
    const checked = [...offsets.keys()].filter((k) => k.startsWith(`${c.name}.`));
    assert.equal(checked.length, fields.length, `${c.name}: fields ${checked.join(' ')} against ${fields.map(([f]) => f).join(' ')}`);
  }
  assert.deepEqual([...sizes.keys()].filter((n) => !codecs.some((c) => c.name === n)), [], 'a struct of the header with no codec');
});

test('abi: encode then decode gives back every field, nested ones too; left-out fields are zero; u64 takes -1', () => {
  const v = { it_interval: { tv_sec: 1n, tv_nsec: 2n }, it_value: { tv_sec: -3n, tv_nsec: 999_999_999n } };
  assert.deepEqual(abi.itimerspec.decode(abi.itimerspec.encode(v)), v);
  const b = abi.stackT.encode({ ss_sp: 0x7fff0000n, ss_size: 8192n });
  assert.equal(b.length, 24);
  assert.deepEqual(abi.stackT.decode(b), { ss_sp: 0x7fff0000n, ss_flags: 0, ss_size: 8192n });
  const r = abi.rlimit64.decode(abi.rlimit64.encode({ rlim_cur: -1n, rlim_max: 0xffffffffffffffffn }));
  assert.deepEqual(r, { rlim_cur: 0xffffffffffffffffn, rlim_max: 0xffffffffffffffffn });
  // Into a larger buffer at an offset: the bytes around stay as they were.
  const big = Buffer.alloc(40, 0xee);
  abi.fOwnerEx.encode({ type: 1, pid: -5 }, big, 16);
  assert.deepEqual(abi.fOwnerEx.decode(big, 16), { type: 1, pid: -5 });
  assert.equal(big[15], 0xee);
  assert.equal(big[24], 0xee);
  assert.throws(() => abi.cloneArgs.decode(Buffer.alloc(80)), /clone_args: 80 bytes, needs 88/);
});
