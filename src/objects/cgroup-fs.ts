// Reaching cgroup hierarchies. As CRIU: each hierarchy cryo needs is mounted
// afresh, here detached (fsopen/fsmount: nothing appears in any mount table) and
// reached as /proc/self/fd/N; or, with --cgroup-yard DIR, found mounted under DIR
// (DIR/cpu,cpuacct, DIR/systemd for name=systemd, DIR/unified for v2).
import { closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { CryoError } from '../context.js';
import { NR, FSOPEN_CLOEXEC, FSMOUNT_CLOEXEC, FSCONFIG, syscall, SysError } from '../sys/index.js';

/** The controller names of a hierarchy as one word: "cpu,cpuacct", "name=systemd", "" for v2. */
export const hierName = (cnames: readonly string[]): string => cnames.join(',');

/** A hierarchy for messages: its controller names, or "unified" for v2. */
export const hierLabel = (cnames: readonly string[]): string => (isV2(cnames) ? 'unified' : hierName(cnames));

export const isV2 = (cnames: readonly string[]): boolean => cnames.length === 1 && cnames[0] === '';

/** The hierarchy's directory name in a yard, as CRIU names it (ctrl_dir_and_opt). */
export function yardDirName(cnames: readonly string[]): string {
  return cnames.map((n) => (n === '' ? 'unified' : n.startsWith('name=') ? n.slice(5) : n)).join(',');
}

/** Is `word` one of the comma-separated names of `list`? */
function named(list: string, word: string): boolean {
  return list.split(',').includes(word);
}

/**
 * CRIU's cgroup_contains: is every controller of the hierarchy named in `name`
 * (a comma-separated list such as a /proc/PID/cgroup line's)? v2 matches only "".
 */
export function cgroupContains(cnames: readonly string[], name: string): boolean {
  if (isV2(cnames)) return name === '';
  return cnames.length > 0 && cnames.every((c) => named(name, c));
}

/** Does `name` (a --cgroup-root controller list) name any controller of the hierarchy? */
export function namesAny(cnames: readonly string[], name: string): boolean {
  if (isV2(cnames)) return name === '';
  return cnames.some((c) => named(name, c));
}

/** A group's path from its hierarchy's root, made canonical: "/", "/a/b". */
export function canonical(path: string): string {
  const parts = path.split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) throw new CryoError(`cgroup path ${path} goes up with ".."`);
  return `/${parts.join('/')}`;
}

/** Is `path` the group `base` or below it? (Both canonical.) */
export function isUnder(path: string, base: string): boolean {
  return base === '/' || path === base || path.startsWith(`${base}/`);
}

/** `path` moved from below `oldBase` to below `newBase`. */
export function rebase(path: string, oldBase: string, newBase: string): string {
  return canonical(`${newBase}/${path.slice(oldBase === '/' ? 0 : oldBase.length)}`);
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

/**
 * The hierarchies open for one dump or restore; close() lets the mounts go.
 * Each is reached through a path; `at(cnames, group)` is a group's directory.
 */
export class Hierarchies {
  private readonly roots = new Map<string, { path: string; fd?: number }>();

  constructor(private readonly yard: string | undefined) {}

  /** The root directory of the hierarchy with these controllers. */
  root(cnames: readonly string[]): string {
    const key = hierName(cnames);
    let r = this.roots.get(key);
    if (!r) {
      r = this.yard !== undefined ? this.inYard(this.yard, cnames) : this.mount(cnames);
      this.roots.set(key, r);
    }
    return r.path;
  }

  /** A group's directory (`group` from the hierarchy's root). */
  at(cnames: readonly string[], group: string): string {
    const g = canonical(group);
    return g === '/' ? this.root(cnames) : `${this.root(cnames)}${g}`;
  }

  private inYard(yard: string, cnames: readonly string[]): { path: string } {
    const path = join(yard, yardDirName(cnames));
    if (!existsSync(path)) throw new CryoError(`--cgroup-yard ${yard}: the hierarchy ${hierLabel(cnames)} is not at ${path}`);
    return { path };
  }

  private mount(cnames: readonly string[]): { path: string; fd: number } {
    const v2 = isV2(cnames);
    let fsfd = -1;
    try {
      fsfd = syscall('fsopen', NR.fsopen, cstr(v2 ? 'cgroup2' : 'cgroup'), FSOPEN_CLOEXEC);
      for (const n of v2 ? [] : cnames) {
        if (n.startsWith('name=')) syscall('fsconfig', NR.fsconfig, fsfd, FSCONFIG.SET_STRING, cstr('name'), cstr(n.slice(5)), 0);
        else syscall('fsconfig', NR.fsconfig, fsfd, FSCONFIG.SET_FLAG, cstr(n), 0, 0);
      }
      syscall('fsconfig(create)', NR.fsconfig, fsfd, FSCONFIG.CMD_CREATE, 0, 0, 0);
      const fd = syscall('fsmount', NR.fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
      return { path: `/proc/self/fd/${fd}`, fd };
    } catch (e) {
      if (!SysError.is(e)) throw e;
      throw new CryoError(`cannot mount the cgroup hierarchy ${hierLabel(cnames)} (${e.syscall}: ${e.code}); name mounted hierarchies with --cgroup-yard`);
    } finally {
      if (fsfd >= 0) closeSync(fsfd);
    }
  }

  close(): void {
    for (const r of this.roots.values()) if (r.fd !== undefined) closeSync(r.fd);
    this.roots.clear();
  }
}
