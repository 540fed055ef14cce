// Pages kept in parent images: the split of a dump's runs (objects/track.ts) and
// their gathering down a chain of parent links on restore (objects/parent-pages.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageDir, create, PagemapHeadSchema, PagemapEntrySchema, PE_PARENT, PE_PRESENT } from '../../src/images/index.js';
import { splitRuns, pagemapEntries } from '../../src/objects/track.js';
import { gatherParentPages } from '../../src/objects/parent-pages.js';


describe('splitRuns', () => {
  it('cuts runs at the edges of the ranges kept, in order', () => {
    const runs = [{ vaddr: 0x10000n, nrPages: 8 }, { vaddr: 0x20000n, nrPages: 2 }];
    const { inside, outside } = splitRuns(runs, [[0x11000n, 0x13000n], [0x16000n, 0x21000n]]);
    assert.deepEqual(inside, [{ vaddr: 0x11000n, nrPages: 2 }, { vaddr: 0x16000n, nrPages: 2 }, { vaddr: 0x20000n, nrPages: 1 }]);
    assert.deepEqual(outside, [{ vaddr: 0x10000n, nrPages: 1 }, { vaddr: 0x13000n, nrPages: 3 }, { vaddr: 0x21000n, nrPages: 1 }]);
  });

  it('pagemapEntries: present and parent entries in address order', () => {
    const e = pagemapEntries([{ vaddr: 0x3000n, nrPages: 1 }], [{ vaddr: 0x1000n, nrPages: 2 }]);
    assert.deepEqual(e.map((x) => [x.vaddr, x.nrPages, x.flags]), [[0x1000n, 2n, PE_PARENT], [0x3000n, 1n, PE_PRESENT]]);
  });
});

/** An images dir with a pagemap for pid 7 and its pages (each page filled with its tag byte). */
function level(dir: string, entries: Array<[bigint, number, number, number[]?]>): void {
  fs.mkdirSync(dir, { recursive: true });
  const d = ImageDir.open(dir, { write: true });
  try {
    d.write('pagemap', [
      create(PagemapHeadSchema, { pagesId: 1 }),
      ...entries.map(([vaddr, n, flags]) => create(PagemapEntrySchema, { vaddr, compatNrPages: 0, nrPages: BigInt(n), flags })),
    ], 7);
    const fd = d.openPages(1, 'w');
    for (const [, , flags, tags] of entries) {
      if (!(flags & PE_PRESENT)) continue;
      for (const t of tags!) fs.writeSync(fd, Buffer.alloc(4096, t));
    }
    fs.closeSync(fd);
  } finally {
    d.close();
  }
}

describe('gatherParentPages', () => {
  it('reads PE_PARENT pages down two parent links, each from the level that has them', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-parent-pages-'));
    try {
      level(path.join(root, '1'), [[0x10000n, 4, PE_PRESENT, [1, 2, 3, 4]]]);
      level(path.join(root, '2'), [[0x10000n, 2, PE_PARENT], [0x12000n, 1, PE_PRESENT, [30]], [0x13000n, 1, PE_PARENT]]);
      level(path.join(root, '3'), [[0x10000n, 1, PE_PRESENT, [100]], [0x11000n, 3, PE_PARENT], [0x20000n, 1, PE_PRESENT, [200]]]);
      fs.symlinkSync('../1', path.join(root, '2', 'parent'));
      fs.symlinkSync('../2', path.join(root, '3', 'parent'));
      const d = ImageDir.open(path.join(root, '3'), { write: false });
      try {
        const pm = { pagesId: 1, runs: d.read('pagemap', 7).slice(1) as never };
        const g = gatherParentPages(d, 7, pm)!;
        assert.ok(g);
        assert.deepEqual(g.runs.map((r) => [r.vaddr, r.nrPages, r.flags]), [[0x10000n, 1n, PE_PRESENT], [0x11000n, 3n, PE_PRESENT], [0x20000n, 1n, PE_PRESENT]]);
        const all = Buffer.alloc(5 * 4096);
        assert.equal(fs.readSync(g.fd, all, 0, all.length, 0), all.length);
        fs.closeSync(g.fd);
        assert.deepEqual([0, 1, 2, 3, 4].map((i) => all[i * 4096]), [100, 2, 30, 4, 200]);
      } finally {
        d.close();
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('a page said to be in the parent that the parent lacks is an error naming it', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-parent-pages-'));
    try {
      level(path.join(root, '1'), [[0x10000n, 1, PE_PRESENT, [1]]]);
      level(path.join(root, '2'), [[0x10000n, 2, PE_PARENT]]);
      fs.symlinkSync('../1', path.join(root, '2', 'parent'));
      const d = ImageDir.open(path.join(root, '2'), { write: false });
      try {
        const pm = { pagesId: 1, runs: d.read('pagemap', 7).slice(1) as never };
        assert.throws(() => gatherParentPages(d, 7, pm), /pages at 0x11000 are said to be in the parent images, but parent\/pagemap-7\.img does not have them/);
      } finally {
        d.close();
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

