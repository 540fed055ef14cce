// Restore of files deleted while open or mapped (remap-fpath.img): a ghost file
// recreated from its image, or the link_remap.N link the dump made. As CRIU does,
// each opener links that file to the original name (or NAME.cr_link when the name
// is taken by another file), opens it there and unlinks the name again, so the
// fd reads "NAME (deleted)"; a deleted regular file is opened through the ghost's
// own dentry instead, renamed to NAME at the end (see openPinned). Ghost files are removed when the restore ends; link
// remaps once it succeeded (a failed restore may be tried again). A deleted
// directory comes back under its own name (a directory cannot be linked), is
// opened (or made the cwd) there, and removed at the end, as CRIU does. In a
// tree's own mount namespace every path is its, reached from its root (reach()).
import { openSync, closeSync, linkSync, unlinkSync, mkdirSync, rmdirSync, existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { RemapType, REMAP_GHOST, RemapFilePathEntrySchema, RegFileEntrySchema, isFieldSet, create, type FileEntry, type RemapFilePathEntry } from '../../images/index.js';
import { CryoError } from '../../context.js';
import type { Ghost } from './kind.js';
import { makeGhost, typeName, S_IFMT, S_IFDIR, S_IFREG } from './ghost.js';
import { AT_FDCWD, NR, O, SIG, SysError, kill, openInRoot, trySyscall, waitpid, asOwnerIfRefused } from '../../sys/index.js';

const RENAME_NOREPLACE = 1;

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

export class Remaps {
  private readonly byOrig = new Map<number, RemapFilePathEntry>();
  /** Ghost files made so far, by remap id, with the root they are reached from. */
  private readonly made = new Map<number, string>();
  private readonly madeAt = new Map<number, number | undefined>();
  /** Deleted regular files opened so far: cryo's O_PATH fd of the one dentry their fds share, and their name, by remap id. */
  private readonly pinned = new Map<number, { fd: number; name: string }>();
  /** Directories made for them (deepest last), with the root they are reached from. */
  private readonly dirs: Array<{ d: string; at: number | undefined }> = [];

  /** In a tree's own mount namespace: cryo's O_PATH fds of the directories reached from its root, by path. */
  private readonly dirFds = new Map<string, number>();
  /**
   * The root (an O_PATH fd) of the tree's mount namespace that mount `mntId` is in,
   * once the tree has its own; undefined: cryo's paths are the tree's.
   */
  root: (mntId?: number) => number | undefined = () => undefined;
  /**
   * Where a link between two mounts of one file system is made (they differ: a link
   * cannot cross them): the root to reach the paths from and the two paths there.
   */
  common: (aMnt: number, a: string, bMnt: number, b: string) => { root: number; a: string; b: string } | undefined = () => undefined;
  /** The root of the file being worked on now (set by each way in: open, dirPath, watchPath, cleanup). */
  private at: number | undefined;
  /** The mount of the file being worked on now, and of each ghost made (that of the file it was made for). */
  private mnt: number | undefined;
  private readonly madeMnt = new Map<number, number | undefined>();

  /** Work on file id `id`'s paths: from the root of its mount's namespace. */
  private from(id: number): void {
    this.mnt = this.files.get(id)?.reg?.mntId;
    this.at = this.root(this.mnt);
  }

  /** Processes of cryo's standing in for dead ones whose /proc directory is opened (PROCFS remaps): host pid, by pid. */
  private readonly standIns = new Map<number, number>();

  /**
   * @param ghosts contents of each ghost-file image, by remap id
   * @param files files.img, where a linked remap's link file is
   * @param spawnAs starts a process of cryo's with this pid (that of a dead one) in the tree's pid namespace; returns it as cryo sees it
   */
  /** Each ghost file, by remap id, with the object holding its owner (translated in place). */
  ghostOwners(): Array<{ remapId: number; ids: { uid: number; gid: number } }> {
    return [...this.ghosts].map(([remapId, g]) => ({ remapId, ids: g }));
  }

  constructor(entries: RemapFilePathEntry[], private readonly ghosts: Map<number, Ghost>, private readonly files: Map<number, FileEntry>,
    public spawnAs: (pid: number) => number) {
    for (const r of entries) {
      if (!files.get(r.origId)?.reg) throw new CryoError(`remap-fpath.img: file id ${r.origId} is remapped, but it is no regular file entry of files.img`);
      if (this.byOrig.has(r.origId)) throw new CryoError(`remap-fpath.img: file id ${r.origId} is remapped twice`);
      if (r.remapType === RemapType.GHOST) {
        const g = ghosts.get(r.remapId);
        if (!g) throw new CryoError(`remap-fpath.img: file id ${r.origId} names ghost file ${r.remapId}, which is missing`);
        // The ghost must be the kind of file the entry was (CRIU checks the mode once it is open).
        const reg = files.get(r.origId)!.reg!;
        if (isFieldSet(reg, RegFileEntrySchema.field.mode) && (reg.mode & S_IFMT) !== (g.mode & S_IFMT)) {
          throw new CryoError(`remap-fpath.img: file id ${r.origId} was a ${typeName(reg.mode)}, but its ghost file ${r.remapId} is a ${typeName(g.mode)}`);
        }
        // Its contents are what the file held when it was dumped.
        if (isFieldSet(reg, RegFileEntrySchema.field.size) && reg.size !== BigInt(g.size)) {
          throw new CryoError(`ghost-file-${r.remapId.toString(16)}.img: holds a file of ${g.size} bytes, but file id ${r.origId} had ${reg.size}`);
        }
      } else if (r.remapType === RemapType.PROCFS) {
        if (!/^\/proc\/\d+(\/|$)/.test(files.get(r.origId)!.reg!.name) || r.remapId <= 0) {
          throw new CryoError(`remap-fpath.img: file id ${r.origId} is remapped to dead process ${r.remapId}, but it is no file of that process's /proc directory`);
        }
      } else if (r.remapType === RemapType.LINKED) {
        if (!files.get(r.remapId)?.reg) throw new CryoError(`remap-fpath.img: file id ${r.origId} is linked to file id ${r.remapId}, which is missing`);
      } else {
        throw new CryoError(`remap-fpath.img: remap type ${RemapType[r.remapType] ?? r.remapType} is not supported yet`);
      }
      this.byOrig.set(r.origId, r);
    }
  }

  /**
   * Where cryo reaches the tree's path `p`: `p` itself, or, in the tree's own mount
   * namespace, a name in its directory, opened from the tree's root (never out of it).
   */
  private reach(p: string, root = this.at): string {
    if (root === undefined) return p;
    const dir = path.dirname(p);
    const key = `${root}:${dir}`;
    let fd = this.dirFds.get(key);
    if (fd === undefined) {
      fd = openInRoot(root, dir, O.PATH | O.DIRECTORY | O.CLOEXEC);
      this.dirFds.set(key, fd);
    }
    return `/proc/self/fd/${fd}/${path.basename(p)}`;
  }

  private exists(p: string): boolean {
    try {
      return existsSync(this.reach(p));
    } catch (e) {
      if (SysError.is(e, 'ENOENT')) return false;
      throw e;
    }
  }

  /** The mounts (ids of the images) where ghosts and links are made and removed again. */
  mounts(): Set<number> {
    const ids = [...this.byOrig.values()].flatMap((r) => [this.files.get(r.origId)!.reg!.mntId, r.remapType === RemapType.LINKED ? this.files.get(r.remapId)!.reg!.mntId : undefined]);
    return new Set(ids.filter((m): m is number => m !== undefined && m >= 0));
  }

  /** Is reg-file entry `id` reached through a remap? */
  has(id: number): boolean {
    return this.byOrig.has(id);
  }

  /**
   * A watched inode (inotify, fanotify) that is a ghost of the images: the path of
   * the ghost, made if it is not yet, for the watch to be put on (CRIU's
   * lookup_ghost_remap). Its fds are opened from the same file later.
   */
  watchPath(sdev: number, ino: bigint): string | undefined {
    for (const r of this.byOrig.values()) {
      if (r.remapType !== RemapType.GHOST) continue;
      const g = this.ghosts.get(r.remapId)!;
      if (g.dev !== sdev || g.ino !== ino) continue;
      this.from(r.origId);
      return this.ghostFile(r.remapId, this.files.get(r.origId)!.reg!.name);
    }
    return undefined;
  }

  /** Pids of dead processes whose /proc files the images hold (a process of cryo's takes each while the restore runs). */
  deadPids(): number[] {
    return [...this.byOrig.values()].filter((r) => r.remapType === RemapType.PROCFS).map((r) => r.remapId);
  }

  /**
   * A file of a dead process's /proc directory: a process of cryo's with its pid
   * makes the directory exist while the file is opened; once it is gone (at the
   * end), the file is unhashed again, as it was (CRIU's dead pid remap).
   */
  private standIn(pid: number): void {
    if (!this.standIns.has(pid)) this.standIns.set(pid, this.spawnAs(pid));
  }

  /** A deleted directory (a ghost), made again under its name: where to open it or chdir to. */
  dirPath(id: number, name: string): string | undefined {
    const r = this.byOrig.get(id);
    this.from(id);
    if (r?.remapType === RemapType.PROCFS) {
      this.standIn(r.remapId);
      return name;
    }
    if (r?.remapType !== RemapType.GHOST || (this.ghosts.get(r.remapId)!.mode & S_IFMT) !== S_IFDIR) return undefined;
    return this.ghostFile(r.remapId, name);
  }

  /** Open, in cryo, the file reg-file entry `id` (named `name`) stands for. */
  open(id: number, name: string, flags: number): number {
    const r = this.byOrig.get(id)!;
    const dir = this.dirPath(id, name); // (from here on: from the root of the file's namespace)
    if (dir !== undefined) {
      // (a deleted directory, or a file of a dead process's /proc directory)
      try {
        return openSync(this.reach(dir), flags);
      } catch (e) {
        throw new CryoError(`cannot open ${dir}: ${errCode(e)}`);
      }
    }
    if (r.remapType === RemapType.GHOST && (this.ghosts.get(r.remapId)!.mode & S_IFMT) === S_IFREG) {
      const fd = this.openPinned(r.remapId, name, flags);
      if (fd !== undefined) return fd;
    }
    const src = r.remapType === RemapType.GHOST ? this.ghostFile(r.remapId, name) : this.files.get(r.remapId)!.reg!.name;
    const srcMnt = r.remapType === RemapType.GHOST ? this.madeMnt.get(r.remapId) : this.files.get(r.remapId)!.reg!.mntId;
    // On another mount (a ghost made for a file of another namespace): linked through the mount both are on.
    const link = (to: string) => {
      const c = srcMnt !== undefined && this.mnt !== undefined && srcMnt >= 0 && this.mnt >= 0 && srcMnt !== this.mnt ? this.common(srcMnt, src, this.mnt, to) : undefined;
      const [a, b] = c ? [this.reach(c.a, c.root), this.reach(c.b, c.root)] : [this.reach(src), this.reach(to)];
      asOwnerIfRefused(() => linkSync(a, b), () => statSync(a));
    };
    let at = name;
    try {
      this.makeParents(name);
      try {
        link(at);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // The name now belongs to another file: open ours beside it.
        at = `${name}.cr_link`;
        link(at);
      }
    } catch (e) {
      throw new CryoError(`cannot link ${src} back as ${at}: ${errCode(e)}`);
    }
    try {
      return openSync(this.reach(at), flags);
    } catch (e) {
      throw new CryoError(`cannot open ${at}: ${errCode(e)}`);
    } finally {
      unlinkSync(this.reach(at));
    }
  }

  /**
   * A deleted regular file is opened, under each of its names, through one
   * dentry, the ghost's own, as its fds were one (a path opened once): the
   * kernel ends the watches of an inode without links when a dentry of it dies,
   * so no other dentry of it may die first. cryo keeps an O_PATH fd of it; the
   * end renames it to NAME and unlinks it there, where the tasks' fds hold it.
   * undefined: another name of the inode, opened by a link of its own.
   */
  private openPinned(remapId: number, name: string, flags: number): number | undefined {
    let pin = this.pinned.get(remapId);
    if (pin && pin.name !== name) return undefined;
    if (!pin) {
      const p = this.ghostFile(remapId, name);
      try {
        pin = { fd: openSync(this.reach(p), O.PATH | O.CLOEXEC), name };
      } catch (e) {
        throw new CryoError(`cannot open ${p}: ${errCode(e)}`);
      }
      this.pinned.set(remapId, pin);
    }
    try {
      return openSync(`/proc/self/fd/${pin.fd}`, flags);
    } catch (e) {
      throw new CryoError(`cannot open the deleted file ${name} again: ${errCode(e)}`);
    }
  }

  /** A pinned ghost takes the name its fds had (NAME, else NAME.cr_link if that is taken) before it is unlinked. */
  private renamePinned(): void {
    for (const [id, pin] of this.pinned) {
      const from = this.made.get(id)!;
      this.at = this.madeAt.get(id);
      for (const to of [pin.name, `${pin.name}.cr_link`]) {
        if (trySyscall(NR.renameat2, AT_FDCWD, Buffer.from(this.reach(from) + '\0'), AT_FDCWD, Buffer.from(this.reach(to) + '\0'), RENAME_NOREPLACE) === 0) {
          this.made.set(id, to);
          break;
        }
      }
    }
  }

  /** The ghost of `remapId`, made when first needed at NAME.cr.ID.ghost (a directory at NAME). */
  private ghostFile(remapId: number, name: string): string {
    const have = this.made.get(remapId);
    if (have !== undefined) return have;
    const g = this.ghosts.get(remapId)!;
    const isDir = (g.mode & S_IFMT) === S_IFDIR;
    const p = isDir ? name : `${name}.cr.${remapId.toString(16)}.ghost`;
    try {
      this.makeParents(p);
      asOwnerIfRefused(() => makeGhost(this.reach(p), g), () => g);
      this.made.set(remapId, p);
      this.madeAt.set(remapId, this.at);
      this.madeMnt.set(remapId, this.mnt);
    } catch (e) {
      throw new CryoError(`cannot recreate the deleted ${typeName(g.mode)} ${name} as ${p}: ${errCode(e)}`);
    }
    return p;
  }

  /** A deleted file may have lost its directory too: make it (removed at the end). */
  private makeParents(p: string): void {
    const missing: string[] = [];
    for (let d = path.dirname(p); !this.exists(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      // Owned as the directory it is made in, on a file system of the tree's user namespace.
      asOwnerIfRefused(() => mkdirSync(this.reach(d), { mode: 0o755 }), () => statSync(this.reach(path.dirname(d))));
      this.dirs.push({ d, at: this.at });
    }
  }

  /** Remove the ghost files (always) and, after a restore that succeeded, the link remaps. */
  cleanup(restored: boolean): void {
    if (restored) this.renamePinned();
    const gone = [...this.made].map(([id, p]) => ({ p, at: this.madeAt.get(id), isDir: (this.ghosts.get(id)!.mode & S_IFMT) === S_IFDIR }));
    if (restored) {
      for (const r of this.byOrig.values()) {
        const link = this.files.get(r.remapId)?.reg;
        if (r.remapType === RemapType.LINKED && link) gone.push({ p: link.name, at: this.root(link.mntId), isDir: false });
      }
    }
    const seen = new Set<string>();
    for (const { p, at, isDir } of gone) {
      if (seen.has(`${at}:${p}`)) continue;
      seen.add(`${at}:${p}`);
      this.at = at;
      removeQuietly(() => this.reach(p), isDir);
    }
    this.madeAt.clear();
    this.madeMnt.clear();
    this.made.clear();
    for (const pid of this.standIns.values()) {
      kill(pid, SIG.KILL);
      waitpid(pid, 0);
    }
    this.standIns.clear();
    for (const pin of this.pinned.values()) closeSync(pin.fd);
    this.pinned.clear();
    for (const { d, at } of this.dirs.reverse()) {
      this.at = at;
      try {
        rmdirSync(this.reach(d));
      } catch {
        /* not empty: someone else's now */
      }
    }
    this.dirs.length = 0;
    for (const fd of this.dirFds.values()) closeSync(fd);
    this.dirFds.clear();
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

function removeQuietly(at: () => string, isDir: boolean): void {
  try {
    if (isDir) rmdirSync(at());
    else unlinkSync(at());
  } catch {
    /* already gone */
  }
}
