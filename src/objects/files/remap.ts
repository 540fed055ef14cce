// Restore of files deleted while open or mapped (remap-fpath.img): a ghost file
// recreated from its image, or the link_remap.N link the dump made. As CRIU does,
// each opener links that file to the original name (or NAME.cr_link when the name
// is taken by another file), opens it there and unlinks the name again, so the
// fd reads "NAME (deleted)". Ghost files are removed when the restore ends; link
// remaps once it succeeded (a failed restore may be tried again).
import { openSync, closeSync, writeSync, fchownSync, fchmodSync, futimesSync, linkSync, unlinkSync, mkdirSync, rmdirSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { RemapType, REMAP_GHOST, RemapFilePathEntrySchema, GhostFileEntrySchema, isFieldSet, create, type FileEntry, type RemapFilePathEntry, type ImageDir, type GhostFileEntry, type GhostChunkEntry, type Timeval } from '../../images/index.js';
import { O } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import type { Ghost } from './kind.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
/** The largest ghost file recreated from chunks (it is built in memory). */
const MAX_GHOST = 1n << 32n;

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

export class Remaps {
  private readonly byOrig = new Map<number, RemapFilePathEntry>();
  /** Ghost files made so far, by remap id. */
  private readonly made = new Map<number, string>();
  /** Directories made for them (deepest last). */
  private readonly dirs: string[] = [];

  /**
   * @param ghosts contents of each ghost-file image, by remap id
   * @param files files.img, where a linked remap's link file is
   */
  constructor(entries: RemapFilePathEntry[], private readonly ghosts: Map<number, Ghost>, private readonly files: Map<number, FileEntry>) {
    for (const r of entries) {
      if (!files.get(r.origId)?.reg) throw new CryoError(`remap-fpath.img: file id ${r.origId} is remapped, but it is no regular file entry of files.img`);
      if (this.byOrig.has(r.origId)) throw new CryoError(`remap-fpath.img: file id ${r.origId} is remapped twice`);
      if (r.remapType === RemapType.GHOST) {
        if (!ghosts.has(r.remapId)) throw new CryoError(`remap-fpath.img: file id ${r.origId} names ghost file ${r.remapId}, which is missing`);
      } else if (r.remapType === RemapType.LINKED) {
        if (!files.get(r.remapId)?.reg) throw new CryoError(`remap-fpath.img: file id ${r.origId} is linked to file id ${r.remapId}, which is missing`);
      } else {
        throw new CryoError(`remap-fpath.img: remap type ${RemapType[r.remapType] ?? r.remapType} is not supported yet`);
      }
      this.byOrig.set(r.origId, r);
    }
  }

  /** Is reg-file entry `id` reached through a remap? */
  has(id: number): boolean {
    return this.byOrig.has(id);
  }

  /** Open, in cryo, the file reg-file entry `id` (named `name`) stands for. */
  open(id: number, name: string, flags: number): number {
    const r = this.byOrig.get(id)!;
    const src = r.remapType === RemapType.GHOST ? this.ghostFile(r.remapId, name) : this.files.get(r.remapId)!.reg!.name;
    let at = name;
    try {
      this.makeParents(name);
      try {
        linkSync(src, at);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // The name now belongs to another file: open ours beside it.
        at = `${name}.cr_link`;
        linkSync(src, at);
      }
    } catch (e) {
      throw new CryoError(`cannot link ${src} back as ${at}: ${errCode(e)}`);
    }
    try {
      return openSync(at, flags);
    } catch (e) {
      throw new CryoError(`cannot open ${at}: ${errCode(e)}`);
    } finally {
      unlinkSync(at);
    }
  }

  /** The ghost file of `remapId`, made at NAME.cr.ID.ghost when first needed. */
  private ghostFile(remapId: number, name: string): string {
    const have = this.made.get(remapId);
    if (have !== undefined) return have;
    const g = this.ghosts.get(remapId)!;
    const p = `${name}.cr.${remapId.toString(16)}.ghost`;
    try {
      this.makeParents(p);
      const fd = openSync(p, O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, 0o600);
      this.made.set(remapId, p);
      try {
        writeSync(fd, g.data);
        fchownSync(fd, g.uid, g.gid);
        fchmodSync(fd, g.mode & 0o7777);
        if (g.mtime !== undefined) futimesSync(fd, g.atime ?? g.mtime, g.mtime);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw new CryoError(`cannot recreate the deleted file ${name} as ${p}: ${errCode(e)}`);
    }
    return p;
  }

  /** A deleted file may have lost its directory too: make it (removed at the end). */
  private makeParents(p: string): void {
    const missing: string[] = [];
    for (let d = path.dirname(p); !existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      mkdirSync(d, { mode: 0o755 });
      this.dirs.push(d);
    }
  }

  /** Remove the ghost files (always) and, after a restore that succeeded, the link remaps. */
  cleanup(restored: boolean): void {
    const gone = [...this.made.values()];
    if (restored) {
      for (const r of this.byOrig.values()) if (r.remapType === RemapType.LINKED) gone.push(this.files.get(r.remapId)!.reg!.name);
    }
    for (const p of new Set(gone)) {
      try {
        unlinkSync(p);
      } catch {
        /* already gone */
      }
    }
    this.made.clear();
    for (const d of this.dirs.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        /* not empty: someone else's now */
      }
    }
    this.dirs.length = 0;
  }
}

/**
 * A remap entry as CRIU reads it: images older than remap_type mark a ghost by the
 * REMAP_GHOST bit of remap_id, everything else being a linked remap.
 */
export function remapOf(r: RemapFilePathEntry): RemapFilePathEntry {
  if (isFieldSet(r, RemapFilePathEntrySchema.field.remapType)) return r;
  const ghost = (r.remapId & REMAP_GHOST) !== 0;
  return create(RemapFilePathEntrySchema, {
    origId: r.origId, remapId: ghost ? (r.remapId & ~REMAP_GHOST) >>> 0 : r.remapId, remapType: ghost ? RemapType.GHOST : RemapType.LINKED,
  });
}

/** A ghost-file image: the whole file after its head, or in chunks (as CRIU writes files of 12 KiB and more). */
export function readGhostImage(dir: ImageDir, id: number): Ghost {
  const [head, ...chunks] = dir.readEntries('ghostFile', id);
  const bad = (why: string) => new CryoError(`${dir.fileName('ghostFile', id)}: ${why}`);
  if (!head) throw bad('no head entry');
  const h = head.msg as GhostFileEntry;
  if ((h.mode & S_IFMT) !== S_IFREG) throw bad('only deleted regular files can be recreated yet');
  let data = head.extra ?? new Uint8Array();
  const sized = isFieldSet(h, GhostFileEntrySchema.field.size);
  if (!h.chunks && sized && h.size !== BigInt(data.length)) throw bad(`the file holds ${data.length} bytes, its head says ${h.size}`);
  if (h.chunks) {
    if (h.size > MAX_GHOST) throw bad(`a file of ${h.size} bytes is too large to recreate`);
    data = new Uint8Array(Number(h.size));
    for (const c of chunks) {
      const ce = c.msg as GhostChunkEntry;
      if (ce.off + ce.len > BigInt(data.length) || (c.extra?.length ?? 0) !== Number(ce.len)) throw bad('a chunk lies outside the file');
      data.set(c.extra!, Number(ce.off));
    }
  }
  const secs = (t: Timeval) => Number(t.tvSec) + Number(t.tvUsec) / 1e6;
  const times = h.mtim ? { mtime: secs(h.mtim), atime: secs(h.atim ?? h.mtim) } : {};
  return { data, mode: h.mode, uid: h.uid, gid: h.gid, ...times };
}
