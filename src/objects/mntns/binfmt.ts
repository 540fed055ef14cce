// binfmt_misc, as CRIU's binfmt_misc_dump/restore, and more. Since Linux 6.7
// each user namespace may have an instance of its own (its entries apply to
// its tasks). Entries live as long as a mount of their instance does: a tree
// holding the only mount of the host's instance takes its entries along when
// it ends (CRIU leaves them out: they are lost). So cryo saves the entries of
// the instance the tree has mounted, the host's or its user namespace's, in
// binfmt-misc.img, and on restore registers on the new mount those that are
// not there; one there already must be the same.
import { closeSync, existsSync, fstatSync, readdirSync, readFileSync } from 'node:fs';
import { BinfmtMiscEntrySchema, create, isFieldSet, type BinfmtMiscEntry } from '../../images/index.js';
import { FSCONFIG, FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC, NR, O, syscall } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { kdev } from '../files/kind.js';
import type { MountInfo } from '../../proc/mountinfo.js';
import { RemoteError, type Remote } from '../../tracer/remote.js';

/** The st_dev (kernel encoding, as mountinfo's) of the binfmt_misc instance of cryo's user namespace, the host's. */
export function hostBinfmtDev(): number {
  const fsfd = syscall('fsopen(binfmt_misc)', NR.fsopen, Buffer.from('binfmt_misc\0'), FSOPEN_CLOEXEC);
  try {
    syscall('fsconfig(create)', NR.fsconfig, fsfd, FSCONFIG.CMD_CREATE, 0, 0, 0);
    const mfd = syscall('fsmount(binfmt_misc)', NR.fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
    try {
      return kdev(fstatSync(mfd).dev);
    } finally {
      closeSync(mfd);
    }
  } finally {
    closeSync(fsfd);
  }
}

const utf8 = (b: Buffer, what: string): string => {
  const s = b.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(b)) throw new CryoError(`${what} is not UTF-8, which the image cannot hold`);
  return s;
};

/** One entry file, as the kernel writes it (fs/binfmt_misc.c, entry_status), into CRIU's message. */
export function parseBinfmtEntry(name: string, text: Buffer, what: string): BinfmtMiscEntry {
  const e = create(BinfmtMiscEntrySchema, { name, enabled: false });
  // The extension alone may hold any byte but ':', '/' and NUL (a newline too: it ends the line, refused below).
  const lines = text.toString('latin1').replace(/\n$/, '').split('\n');
  let seen = 0;
  for (const l of lines) {
    const bytes = Buffer.from(l, 'latin1');
    const after = (k: string) => bytes.subarray(k.length);
    if (l === 'enabled' || l === 'disabled') e.enabled = l === 'enabled';
    else if (l.startsWith('interpreter ')) e.interpreter = utf8(after('interpreter '), `${what}: its interpreter`);
    else if (l.startsWith('flags: ')) e.flags = l.slice(7);
    else if (l.startsWith('extension .')) e.extension = new Uint8Array(after('extension .'));
    else if (/^offset \d+$/.test(l)) e.offset = Number(l.slice(7));
    else if (/^magic [0-9a-f]+$/.test(l)) e.magic = l.slice(6);
    else if (/^mask [0-9a-f]+$/.test(l)) e.mask = l.slice(5);
    else throw new CryoError(`${what}: cannot read its line ${JSON.stringify(l)}`);
    seen++;
  }
  if (!seen || !isFieldSet(e, BinfmtMiscEntrySchema.field.interpreter)) throw new CryoError(`${what}: no interpreter in it`);
  if (!isFieldSet(e, BinfmtMiscEntrySchema.field.magic) && !isFieldSet(e, BinfmtMiscEntrySchema.field.extension)) throw new CryoError(`${what}: neither a magic nor an extension`);
  return e;
}

/**
 * The entries of the instance whose root is open as `fd` (a detached clone or a
 * path's fd), in directory order; a disabled instance is refused (CRIU's image
 * has no field for it).
 */
export function readBinfmtEntries(fd: number, what: string): BinfmtMiscEntry[] {
  const dir = `/proc/self/fd/${fd}`;
  if (readFileSync(`${dir}/status`, 'latin1').trim() !== 'enabled') throw new CryoError(`${what}: the instance is disabled (its status), which CRIU's image cannot hold`);
  const out: BinfmtMiscEntry[] = [];
  for (const name of readdirSync(dir, { encoding: 'buffer' })) {
    const n = name.toString('latin1');
    if (n === 'register' || n === 'status') continue;
    const entry = `${what}: entry ${JSON.stringify(n)}`;
    out.push(parseBinfmtEntry(utf8(name, entry), readFileSync(`${dir}/${n}`), entry));
  }
  return out;
}

/** The string that registers `e` again (":name:type:offset:magic:mask:interpreter:flags"), as CRIU's make_bfmtm_magic_str. */
export function registerString(e: BinfmtMiscEntry): Buffer {
  const hex = (h: string) => h.replace(/(..)/g, '\\x$1');
  const flags = e.flags ?? '';
  if (isFieldSet(e, BinfmtMiscEntrySchema.field.magic)) {
    if (e.magic.length % 2) throw new CryoError(`binfmt_misc entry ${e.name}: bad magic ${e.magic}`);
    return Buffer.from(`:${e.name}:M:${e.offset ?? 0}:${hex(e.magic)}:${hex(e.mask ?? '')}:${e.interpreter}:${flags}`, 'latin1');
  }
  return Buffer.concat([Buffer.from(`:${e.name}:E::`), Buffer.from(e.extension), Buffer.from(`::${e.interpreter}:${flags}`)]);
}

/** The names and bytes of an image's entries that no kernel would take: refused before anything is made. */
export function checkBinfmtEntries(entries: readonly BinfmtMiscEntry[], file: string): void {
  const names = new Set<string>();
  for (const e of entries) {
    const bad = (what: string) => new CryoError(`bad image: ${file}: entry ${JSON.stringify(e.name)}: ${what}`);
    if (!e.name || /[:/\n\0]/.test(e.name) || e.name === '.' || e.name === '..' || e.name === 'register' || e.name === 'status') throw bad('its name');
    if (names.has(e.name)) throw bad('twice');
    names.add(e.name);
    if (!e.interpreter || /[:\n\0]/.test(e.interpreter)) throw bad('its interpreter');
    if (/[^POCF]/.test(e.flags ?? '')) throw bad(`its flags ${JSON.stringify(e.flags)}`);
    const magic = isFieldSet(e, BinfmtMiscEntrySchema.field.magic);
    if (magic && (!/^([0-9a-f]{2})+$/.test(e.magic) || (isFieldSet(e, BinfmtMiscEntrySchema.field.mask) && !/^([0-9a-f]{2})*$/.test(e.mask)))) throw bad('its magic or mask');
    if (!magic && (!isFieldSet(e, BinfmtMiscEntrySchema.field.extension) || e.extension.some((b) => b === 0 || b === 0x3a || b === 0x2f || b === 0x0a))) throw bad('its extension');
  }
}

/** How the dump sees one binfmt_misc mount of the tree that is made anew. */
export interface BinfmtMount {
  m: MountInfo;
  who: string;
  /** Opens its root for reading (cryo's fd). */
  open(): number;
}

/**
 * The entries of the tree's binfmt_misc instance (one at most, as CRIU), from
 * its mounts made anew: the host's in a tree of cryo's user namespace, or the
 * one of the tree's own user namespace.
 */
export function dumpBinfmtMisc(mounts: readonly BinfmtMount[], ownUserns: boolean): BinfmtMiscEntry[] {
  if (!mounts.length) return [];
  const first = mounts[0]!;
  const where = (b: BinfmtMount) => `${b.who}: mount ${b.m.mntId} at ${b.m.mountpoint} (binfmt_misc)`;
  const other = mounts.find((b) => b.m.sdev !== first.m.sdev);
  if (other) throw new CryoError(`${where(other)} is a second binfmt_misc instance in the tree (the first at ${first.m.mountpoint}), which cryo cannot restore (nor can CRIU)`);
  const host = first.m.sdev === hostBinfmtDev();
  // A user namespace's binfmt_misc mounted by the tree's root is that namespace's instance.
  if (host && ownUserns) throw new CryoError(`${where(first)} is the host's binfmt_misc instance in a tree of its own user namespace, where a new mount would be that namespace's instance`);
  if (!host && !ownUserns) throw new CryoError(`${where(first)} is the binfmt_misc instance of a user namespace the tree is not in, which cryo cannot restore`);
  const fd = first.open();
  try {
    if (kdev(fstatSync(fd).dev) !== first.m.sdev) throw new CryoError(`${where(first)}: its path leads to another file system`);
    return readBinfmtEntries(fd, where(first));
  } finally {
    closeSync(fd);
  }
}

/** Do two entries say the same? */
const same = (a: BinfmtMiscEntry, b: BinfmtMiscEntry) =>
  a.name === b.name && a.enabled === b.enabled && a.interpreter === b.interpreter && (a.flags ?? '') === (b.flags ?? '') &&
  (a.magic ?? '') === (b.magic ?? '') && (a.mask ?? '') === (b.mask ?? '') && (a.offset ?? 0) === (b.offset ?? 0) &&
  Buffer.from(a.extension ?? new Uint8Array()).equals(Buffer.from(b.extension ?? new Uint8Array()));

/**
 * Register `entries` on the new binfmt_misc mount `mfd` of `rem` (the tree's
 * root, in the tree's namespaces: an interpreter opened now, flag F, is its
 * path there), and disable those that were. One there already (the host's
 * instance, kept by another mount) must be the same, and stays.
 */
export function registerBinfmt(rem: Remote, mfd: bigint, entries: readonly BinfmtMiscEntry[]): void {
  const here = `/proc/${rem.pid}/fd/${mfd}`;
  const write = (path: string, data: Buffer) => {
    const fd = rem.call(`open(${path})`, NR.openat, mfd, rem.put(Buffer.from(`${path}\0`)), O.WRONLY | O.CLOEXEC, 0);
    try {
      const n = rem.call(`write(${path})`, NR.write, fd, rem.put(data, 4096), data.length);
      if (Number(n) !== data.length) throw new CryoError(`binfmt_misc: ${path} took ${n} of ${data.length} bytes`);
    } finally {
      rem.call('close', NR.close, fd);
    }
  };
  for (const e of entries) {
    if (existsSync(`${here}/${e.name}`)) {
      const now = parseBinfmtEntry(e.name, readFileSync(`${here}/${e.name}`), `binfmt_misc entry ${e.name}`);
      if (!same(now, e)) throw new CryoError(`binfmt_misc entry ${e.name} is registered here already, and not as it was (interpreter ${now.interpreter}, not ${e.interpreter})`);
      continue;
    }
    try {
      write('register', registerString(e));
      if (!e.enabled) write(e.name, Buffer.from('0'));
    } catch (err) {
      if (err instanceof RemoteError) throw new CryoError(`binfmt_misc entry ${e.name} (interpreter ${e.interpreter}): ${err.message}`);
      throw err;
    }
  }
}
