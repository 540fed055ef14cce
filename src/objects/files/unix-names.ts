// Names of unix sockets on restore: how they are shown, connect(2) by a name
// (in the directory a relative one was bound in) or through a ghost's O_PATH
// fd, and where names are bound (UnixNames). Binding, also of names whose file
// is gone since, is unix-treenames.ts's, in cryo's view or in a tree's own.
import { closeSync } from 'node:fs';
import type { UnixSkEntry } from '../../images/index.js';
import { sock } from '../../sys/index.js';
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

/** Close the O_PATH fds of ghost names. */
export function closeGhosts(ghosts: Map<number, number>): void {
  for (const g of ghosts.values()) closeSync(g);
  ghosts.clear();
}
