// Files of namespaces (an open /proc/PID/ns/X, "net:[INO]"), as CRIU's ns files:
// the namespace by its id in the images (one a task of the tree is in) and its
// CLONE_NEW* flag. Restore opens /proc/PID/ns/X of a restored task in that
// namespace. Only the tree's own namespaces can be named so: one no task of the
// tree is in (a namespace of another process) fails the dump, as in CRIU.
import { openSync, readlinkSync } from 'node:fs';
import { create, FdTypes, FileEntrySchema, NsFileEntrySchema } from '../../images/index.js';
import { O } from '../../sys/index.js';
import { CryoError } from '../../context.js';
import { NS_KINDS } from '../namespaces.js';
import { badFile, partOf, type FdKind } from './kind.js';

const LINK = /^(pid|mnt|net|ipc|uts|user|cgroup|time):\[(\d+)\]$/;

export const nsfile: FdKind = {
  name: 'namespace file',
  type: FdTypes.NS,
  // A path always starts with '/': only nsfs names its files so.
  match: (p) => p.st.isFile() && LINK.test(p.link),
  dump(p, env) {
    const name = LINK.exec(p.link)![1]!;
    const kind = NS_KINDS.find((k) => k.name === name)!;
    // The tree's tasks are all in the holder's namespaces (cryo refuses others).
    let own: string | undefined;
    try {
      own = readlinkSync(`/proc/${p.pid}/ns/${name}`);
    } catch {
      own = undefined;
    }
    if (own !== p.link) {
      throw new CryoError(`task ${p.pid}: fd ${p.fd} is a file of a ${name} namespace (${p.link}) no task of the tree is in, which cannot be dumped`);
    }
    const id = env.files.newId();
    env.files.add(create(FileEntrySchema, {
      type: FdTypes.NS, id,
      nsf: create(NsFileEntrySchema, { id, nsId: env.nsId(name, p.link), nsCflag: kind.cloneFlag, flags: p.info.flags & ~O.CLOEXEC }),
    }));
    return id;
  },
  open(fe, env) {
    const e = partOf(fe, 'nsf');
    const kind = NS_KINDS.find((k) => k.cloneFlag === e.nsCflag)!;
    const pid = env.nsHolder(kind.idField, e.nsId);
    if (pid === undefined) throw new CryoError(`file id ${fe.id}: no task of the tree in ${kind.name} namespace ${e.nsId} is restored yet to open it from`);
    const path = `/proc/${pid}/ns/${kind.name}`;
    try {
      return openSync(path, (e.flags & ~O.CLOEXEC) | O.CLOEXEC);
    } catch (err) {
      throw new CryoError(`file id ${fe.id}: cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  },
  check(entries) {
    for (const fe of entries) {
      const e = partOf(fe, 'nsf');
      if (!NS_KINDS.some((k) => k.cloneFlag === e.nsCflag)) throw badFile(fe, `ns file of unknown namespace kind 0x${e.nsCflag.toString(16)}`);
    }
  },
};
