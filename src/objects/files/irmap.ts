// irmap, the inode reverse map of CRIU's irmap.c: the path of an inode known only
// by device and number. An inotify/fanotify watch names its inode by file handle;
// where the handle leads to no usable path (overlayfs cannot open its handles, the
// directory is overmounted) or --force-irmap asks for it, the inode is looked for
// by name: first in the irmap cache (checked again, files move), then under every
// --irmap-scan-path, then in the places watches usually are. Every stat made is
// kept for the rest of the dump, so the second lookup is cheap.
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { create, ImageDir, IrmapCacheEntrySchema, type IrmapCacheEntry } from '../../images/index.js';
import type { Logger } from '../../context.js';
import { kdev } from './kind.js';

/** CRIU's hints: where watches usually are; `leaf` names one inode, not a tree ("/" itself). */
const HINTS: ReadonlyArray<{ path: string; leaf?: boolean }> = [
  { path: '/etc' }, { path: '/var/spool' }, { path: '/var/log' },
  { path: '/usr/share/dbus-1/services' }, { path: '/usr/share/dbus-1/system-services' },
  { path: '/var/lib/polkit-1/localauthority' }, { path: '/usr/share/polkit-1/actions' },
  { path: '/lib/udev' }, { path: '/', leaf: true },
];

interface Node {
  path: string;
  /** "sdev:ino" once stat'ed; '' when the stat failed. */
  key?: string;
  /** Children once read; [] for files, leaves and unreadable directories. */
  kids?: Node[];
}

/** The key of an inode: the device in the kernel's encoding (as fdinfo's sdev) and the number. */
export function inodeKey(sdev: number, ino: bigint): string {
  return `${sdev.toString(16)}:${ino.toString(16)}`;
}

function statKey(path: string): string | undefined {
  try {
    const st = lstatSync(path, { bigint: true });
    const dev = Number(st.dev);
    return inodeKey(kdev(dev), st.ino);
  } catch {
    return undefined;
  }
}

export class Irmap {
  /** Inodes seen so far; `recheck` for those from the cache image, not stat'ed in this run. */
  private readonly known = new Map<string, { path: string; recheck: boolean }>();
  private readonly trees: Node[];
  /** The paths this dump gave to watched inodes: the next irmap-cache. */
  private readonly resolved = new Map<string, IrmapCacheEntry>();

  constructor(readonly log: Logger, scanPaths: readonly string[], cache: readonly IrmapCacheEntry[] = []) {
    // The user's paths first: they said where to look.
    this.trees = [
      ...scanPaths.map((p) => ({ path: resolve(p) })),
      ...HINTS.map((h) => (h.leaf ? { path: h.path, kids: [] } : { path: h.path })),
    ];
    for (const c of cache) {
      log.debug(`irmap: pre-cache ${inodeKey(c.dev, c.inode)} -> ${c.path}`);
      this.known.set(inodeKey(c.dev, c.inode), { path: c.path, recheck: true });
    }
  }

  /** The path of inode `ino` of device `sdev` (kernel encoding), or undefined. */
  lookup(sdev: number, ino: bigint): string | undefined {
    const want = inodeKey(sdev, ino);
    this.log.debug(`irmap: resolving ${want} path`);
    const c = this.known.get(want);
    if (c && c.recheck && statKey(c.path) !== want) {
      this.log.debug(`irmap: cached ${c.path} is no longer ${want}`);
      this.known.delete(want);
    } else if (c) {
      this.log.debug(`irmap: found ${c.path} in cache`);
      return c.path;
    }
    for (const t of this.trees) {
      this.log.debug(`irmap: scanning ${t.path}`);
      const hit = this.scan(t, want, new Set());
      if (hit) {
        this.log.debug(`irmap: scanned ${hit.path}`);
        return hit.path;
      }
    }
    return undefined;
  }

  private scan(n: Node, want: string, up: Set<string>): Node | undefined {
    if (n.key === undefined) {
      const key = statKey(n.path);
      n.key = key ?? '';
      if (key === undefined) {
        this.log.debug(`irmap: cannot stat ${n.path}`);
        n.kids = [];
      } else if (!this.known.has(key) || this.known.get(key)!.recheck) {
        this.known.set(key, { path: n.path, recheck: false });
      }
    }
    if (n.key === want) return n;
    // A bind mount of a directory below itself would loop.
    if (up.has(n.key)) return undefined;
    if (n.kids === undefined) n.kids = this.children(n.path);
    up.add(n.key);
    try {
      for (const k of n.kids) {
        const hit = this.scan(k, want, up);
        if (hit) return hit;
      }
    } finally {
      up.delete(n.key);
    }
    return undefined;
  }

  private children(path: string): Node[] {
    try {
      // lstat said directory (symlinks are never followed); readdir fails on the rest.
      if (!lstatSync(path).isDirectory()) return [];
      return readdirSync(path).map((name) => ({ path: join(path, name) }));
    } catch (e) {
      this.log.debug(`irmap: cannot read ${path}: ${(e as Error).message}`);
      return [];
    }
  }

  /** Record the path a watched inode got (by file handle or by scan) for the cache image. */
  note(sdev: number, ino: bigint, path: string): void {
    this.resolved.set(inodeKey(sdev, ino), create(IrmapCacheEntrySchema, { dev: sdev, inode: ino, path }));
  }

  /** The irmap-cache entries of this dump. */
  cacheEntries(): IrmapCacheEntry[] {
    return [...this.resolved.values()];
  }
}

/**
 * The irmap cache a previous run left: irmap-cache in the work dir, else in the
 * parent images dir (CRIU looks in the same two places). A bad one is only a
 * missed shortcut: warn and scan.
 */
export function loadIrmapCache(workDir: string, imagesDir: string, log: Logger): IrmapCacheEntry[] {
  for (const dir of [workDir, join(imagesDir, 'parent')]) {
    if (!existsSync(join(dir, 'irmap-cache'))) continue;
    let d: ImageDir | undefined;
    try {
      d = ImageDir.open(dir, { write: false });
      const entries = d.read('irmapCache');
      log.info(`irmap: loaded ${entries.length} cached path(s) from ${join(dir, 'irmap-cache')}`);
      return [...entries];
    } catch (e) {
      log.warn(`irmap: ignoring ${join(dir, 'irmap-cache')}: ${(e as Error).message}`);
      return [];
    } finally {
      d?.close();
    }
  }
  return [];
}

/** Write the paths of this dump's watches to irmap-cache in the work dir, for the next dump. */
export function saveIrmapCache(workDir: string, irmap: Irmap): void {
  const entries = irmap.cacheEntries();
  if (entries.length === 0) return;
  const d = ImageDir.open(workDir, { write: true });
  try {
    d.write('irmapCache', entries);
  } finally {
    d.close();
  }
}
