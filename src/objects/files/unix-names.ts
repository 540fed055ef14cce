// Names of unix sockets on restore: binding a socket to its path again (in the
// directory a relative name was bound in), and the names whose file is gone
// since: unlinked, replaced by another file, or with its directories removed.
// Such a "ghost" name is made for a moment, bound, and taken away again; an
// O_PATH fd of the socket's file is kept, and others connect through
// /proc/self/fd/N, which reaches that very socket whatever the path holds now.
import { chmodSync, closeSync, lchownSync, lstatSync, mkdirSync, openSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { UnixSkEntry } from '../../images/index.js';
import { O, sock } from '../../sys/index.js';
import { CryoError } from '../../context.js';

export const isPath = (n: Uint8Array) => n.length > 0 && n[0] !== 0;
export const pathOf = (n: Uint8Array) => Buffer.from(n).toString().replace(/\0+$/, '');
export const show = (ue: UnixSkEntry) => (!ue.name.length ? `unix socket ${ue.ino}` : `unix socket ${ue.ino} (${isPath(ue.name) ? pathOf(ue.name) : '@' + Buffer.from(ue.name.subarray(1)).toString()})`);

/** Run `fn` in the directory a relative name was bound in. */
export function inDir<T>(ue: UnixSkEntry, fn: () => T): T {
  if (!isPath(ue.name) || ue.name[0] === 0x2f /* / */ || !ue.nameDir) return fn();
  const back = process.cwd();
  process.chdir(ue.nameDir);
  try {
    return fn();
  } finally {
    process.chdir(back);
  }
}

function lexists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** A socket file left behind by the dumped socket is in the way of bind(). */
export function clearName(ue: UnixSkEntry): void {
  if (!isPath(ue.name)) return;
  inDir(ue, () => {
    const p = pathOf(ue.name);
    try {
      if (lstatSync(p).isSocket()) unlinkSync(p);
    } catch {
      /* nothing there */
    }
  });
}

/** bind(2) to the entry's name, with the owner and mode its file had (call in its directory). */
function bindHere(fd: number, ue: UnixSkEntry): void {
  try {
    sock.bindUnix(fd, ue.name);
  } catch (e) {
    throw new CryoError(`cannot bind ${show(ue)}: ${(e as Error).message}`);
  }
  if (isPath(ue.name) && ue.filePerms) {
    const p = pathOf(ue.name);
    chmodSync(p, ue.filePerms.mode & 0o7777);
    lchownSync(p, ue.filePerms.uid, ue.filePerms.gid);
  }
}

/** Bind to a name whose file is there (a stale file of the dumped socket is removed first). */
export function bindLive(fd: number, ue: UnixSkEntry): void {
  clearName(ue);
  inDir(ue, () => bindHere(fd, ue));
}

/**
 * Bind `fd` to a path name whose file is gone: the missing directories are made
 * and whatever the path holds now is moved aside; once bound, the socket's file
 * is unlinked and everything is put back as it was. Returns an O_PATH fd of the
 * socket's file, to connect to it by (connectTo).
 */
export function bindGhost(fd: number, ue: UnixSkEntry): number {
  return inDir(ue, () => {
    const p = pathOf(ue.name);
    const made: string[] = [];
    for (let d = dirname(p); !lexists(d); d = dirname(d)) made.unshift(d);
    try {
      for (const d of made) mkdirSync(d, 0o755);
      let aside: string | undefined;
      if (lexists(p)) {
        aside = `${p}.cryo-ghost`;
        for (let i = 1; lexists(aside); i++) aside = `${p}.cryo-ghost.${i}`;
        renameSync(p, aside);
      }
      try {
        bindHere(fd, ue);
        try {
          return openSync(p, O.PATH | O.NOFOLLOW | O.CLOEXEC);
        } finally {
          unlinkSync(p);
        }
      } finally {
        if (aside !== undefined) renameSync(aside, p);
      }
    } catch (e) {
      if (e instanceof CryoError) throw e;
      throw new CryoError(`cannot bind ${show(ue)} to its removed name: ${(e as Error).message}`);
    } finally {
      for (const d of made.reverse()) {
        try {
          rmdirSync(d);
        } catch {
          /* not made, or not empty: left as it is */
        }
      }
    }
  });
}

/** Bind to the entry's name, if it has one; returns the O_PATH fd of a ghost name. */
export function bindName(fd: number, ue: UnixSkEntry): number | undefined {
  if (!ue.name.length) return undefined;
  if (ue.deleted && isPath(ue.name)) return bindGhost(fd, ue);
  bindLive(fd, ue);
  return undefined;
}

/** connect(2) to `to` by its name, or through its ghost's O_PATH fd. */
export function connectTo(fd: number, ue: UnixSkEntry, to: UnixSkEntry, ghost?: number): void {
  const r = ghost === undefined ? inDir(to, () => sock.connectUnix(fd, to.name)) : sock.connectUnix(fd, Buffer.from(`/proc/self/fd/${ghost}`));
  if (r < 0) throw new CryoError(`cannot connect ${show(ue)} to ${show(to)}: errno ${-r}`);
}

/**
 * Where names are bound and connected to: cryo's own view of the file system,
 * or the tree's own mount namespace (unix-treenames.ts).
 */
export interface UnixNames {
  /** Bind to the entry's name, if it has one; returns the O_PATH fd (in cryo) of a ghost name. */
  bind(fd: number, ue: UnixSkEntry): number | undefined;
  /** connect(2) to `to` by its name, or through its ghost's O_PATH fd. */
  connect(fd: number, ue: UnixSkEntry, to: UnixSkEntry, ghost?: number): void;
  /** Take away a socket file left at the entry's name. */
  clear(ue: UnixSkEntry): void;
}

/** Names as cryo itself sees them: a tree in cryo's mount namespace. */
export const hostNames: UnixNames = { bind: bindName, connect: connectTo, clear: clearName };

/** Close the O_PATH fds of ghost names. */
export function closeGhosts(ghosts: Map<number, number>): void {
  for (const g of ghosts.values()) closeSync(g);
  ghosts.clear();
}
