// The files.img table of a dump: every file object gets one id, shared by all fds
// and mappings that refer to it.
import { create, FileEntrySchema, FdTypes, type FileEntry, type RegFileEntry, RegFileEntrySchema, FownEntrySchema } from '../../images/index.js';

export interface RegInit {
  flags: number;
  pos: bigint;
  name: string;
  size?: bigint;
  mode?: number;
  mntId?: number;
}

export class FileTable {
  readonly entries: FileEntry[] = [];
  private nextId = 1;
  private readonly byKey = new Map<string, number>();

  /** Allocate a fresh id. */
  newId(): number {
    return this.nextId++;
  }

  add(entry: FileEntry, key?: string): number {
    this.entries.push(entry);
    if (key !== undefined) this.byKey.set(key, entry.id);
    return entry.id;
  }

  lookup(key: string): number | undefined {
    return this.byKey.get(key);
  }

  /** A regular-file entry; `key` deduplicates (e.g. one entry per mapped file). */
  addReg(init: RegInit, key?: string): number {
    if (key !== undefined) {
      const have = this.byKey.get(key);
      if (have !== undefined) return have;
    }
    const id = this.newId();
    const reg: RegFileEntry = create(RegFileEntrySchema, {
      ...init,
      id,
      fown: create(FownEntrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 }),
    });
    return this.add(create(FileEntrySchema, { type: FdTypes.REG, id, reg }), key);
  }
}
