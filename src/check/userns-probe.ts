// `check --feature userns`: the restore's own way of making a root in a user
// namespace, tried for real on a throw-away task: a clone into new user, pid and
// uts namespaces, maps written from here, ids 0 inside, the uts namespace owned
// by the new user namespace, and an fd of cryo's taken from inside (the donor).
import { closeSync, fstatSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { CLONE, NR, O, syscall } from '../sys/index.js';
import { startRootInUserns, killAndReap } from '../tracer/seed.js';
import { parseIds, parseStatus } from '../proc/stat.js';

/** ioctl NS_GET_USERNS. */
const NS_GET_USERNS = 0xb701;

/** true, or why not. */
export function probeUserns(): boolean | string {
  if (!statSync('/proc/self/ns/user', { throwIfNoEntry: false })) return 'the kernel has no user namespaces';
  // The tree's root is host uid and gid 0 inside: a map of one id, ours.
  const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const r = startRootInUserns(0, CLONE.NEWPID | CLONE.NEWUTS, [], (pid) => {
    writeFileSync(`/proc/${pid}/uid_map`, `0 ${me.uid} 1\n`);
    writeFileSync(`/proc/${pid}/gid_map`, `0 ${me.gid} 1\n`);
  });
  const devnull = openSync('/dev/null', O.RDONLY | O.CLOEXEC);
  try {
    const st = parseStatus(readFileSync(`/proc/${r.rem.pid}/status`, 'utf8'));
    if (parseIds(st.get('Uid'))[1] !== me.uid) return 'the task made is not root inside its user namespace';
    const uts = openSync(`/proc/${r.rem.pid}/ns/uts`, O.RDONLY | O.CLOEXEC);
    let owner: number;
    try {
      const u = syscall('ioctl(NS_GET_USERNS)', NR.ioctl, uts, NS_GET_USERNS);
      owner = fstatSync(u).ino;
      closeSync(u);
    } finally {
      closeSync(uts);
    }
    if (owner !== statSync(`/proc/${r.rem.pid}/ns/user`).ino) return 'its uts namespace is not owned by its new user namespace';
    const fd = r.rem.call('pidfd_getfd', NR.pidfd_getfd, r.cryoPidfd, devnull, 0);
    r.rem.call('close', NR.close, fd);
    return true;
  } finally {
    closeSync(devnull);
    r.close?.();
    r.rem.mem.close();
    killAndReap(r.rem.pid);
    killAndReap(r.donor);
  }
}
