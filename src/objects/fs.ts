// The fs part of a task (fs-PID.img): cwd and root, saved as directories (a
// deleted one gets its ghost, made again under its name until the restore ends),
// and the umask.
import { readlinkSync, statSync } from 'node:fs';
import { NR, O } from '../sys/index.js';
import { create, FsEntrySchema, type FsEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import type { RegDumpEnv, RestoreFilesEnv } from './files/kind.js';
import { dumpRegFile } from './files/reg.js';
import type { TaskStateModule } from './task-state.js';

/** `status`: the task's /proc/PID/status fields. */
export function dumpFs(pid: number, status: Map<string, string>, env: RegDumpEnv): FsEntry {
  const dirId = (which: 'cwd' | 'root') => {
    const proc = `/proc/${pid}/${which}`;
    const link = readlinkSync(proc);
    return dumpRegFile({ pid, proc, link, st: statSync(proc), what: `its ${which}` }, { flags: O.DIRECTORY, pos: 0n }, env, `dir:${link}`);
  };
  return create(FsEntrySchema, { cwdId: dirId('cwd'), rootId: dirId('root'), umask: parseInt(status.get('Umask') ?? '22', 8) });
}

export function restoreFs(rem: Remote, fs: FsEntry | undefined, sh: Pick<RestoreFilesEnv, 'files' | 'remaps'>): void {
  if (!fs) return;
  // A deleted directory is there again under its name (a ghost) until the restore ends.
  const dirName = (id: number) => {
    const name = sh.files.get(id)?.reg?.name;
    return name === undefined ? undefined : sh.remaps.dirPath(id, name) ?? name;
  };
  const root = dirName(fs.rootId);
  const cwd = dirName(fs.cwdId);
  // The cwd first, by its path as cryo sees it: it may lie outside the new root.
  if (cwd) rem.call(`chdir(${cwd})`, NR.chdir, rem.put(Buffer.from(cwd + '\0')));
  if (root && root !== '/') rem.call(`chroot(${root})`, NR.chroot, rem.put(Buffer.from(root + '\0')));
  if (fs.umask !== undefined) rem.call('umask', NR.umask, fs.umask);
}

export const fsModule: TaskStateModule = {
  name: 'fs',
  dumpFiles(d, env) {
    d.dir.write('fs', [dumpFs(d.pid, d.status, env)], d.vpid);
  },
  restore: {
    // After the fd table: its paths are opened as the task's files are.
    files: (t) => restoreFs(t.rem, t.img.fs, t.sh),
  },
};
