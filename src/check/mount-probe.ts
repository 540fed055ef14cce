// `check --feature move_mount_set_group`: the restore's own way of giving a mount
// the peer group of another (MOVE_MOUNT_SET_GROUP, as restorePropagation does),
// tried for real in a helper's private mount namespace: a shared tmpfs, a bind of
// it made private, then given the tmpfs's group again.
import { readFileSync } from 'node:fs';
import { CLONE, MOVE_MOUNT, MS, NR, AT_FDCWD } from '../sys/index.js';
import { withHelper } from '../tracer/seed.js';
import { parseMountinfo } from '../proc/mountinfo.js';

/** true, or why not. */
export function probeSetGroup(): boolean | string {
  return withHelper((rem) => {
    let slot = 0;
    const str = (s: string) => rem.put(Buffer.from(s + '\0'), (slot++ % 4) * 4096);
    rem.call('unshare(CLONE_NEWNS)', NR.unshare, CLONE.NEWNS);
    // Nothing done here reaches cryo's namespace.
    rem.call('mount(/, MS_REC|MS_PRIVATE)', NR.mount, 0, str('/'), 0, MS.REC | MS.PRIVATE, 0);
    rem.call('mount(tmpfs)', NR.mount, str('cryo-probe'), str('/tmp'), str('tmpfs'), 0, str('size=16k'));
    for (const d of ['/tmp/a', '/tmp/b']) rem.call(`mkdirat(${d})`, NR.mkdirat, AT_FDCWD, str(d), 0o700);
    rem.call('mount(tmpfs)', NR.mount, str('cryo-probe-a'), str('/tmp/a'), str('tmpfs'), 0, str('size=16k'));
    rem.call('mount(MS_SHARED)', NR.mount, 0, str('/tmp/a'), 0, MS.SHARED, 0);
    rem.call('mount(MS_BIND)', NR.mount, str('/tmp/a'), str('/tmp/b'), 0, MS.BIND, 0);
    rem.call('mount(MS_PRIVATE)', NR.mount, 0, str('/tmp/b'), 0, MS.PRIVATE, 0);
    rem.call('move_mount(MOVE_MOUNT_SET_GROUP)', NR.move_mount, AT_FDCWD, str('/tmp/a'), AT_FDCWD, str('/tmp/b'), MOVE_MOUNT.SET_GROUP);
    const mounts = parseMountinfo(readFileSync(`/proc/${rem.pid}/mountinfo`, 'utf8'));
    const group = (mp: string) => mounts.filter((m) => m.mountpoint === mp).at(-1)?.optional.find((o) => o.startsWith('shared:'));
    const a = group('/tmp/a');
    if (!a) return 'the shared tmpfs has no peer group';
    return group('/tmp/b') === a || 'the bind did not join the peer group';
  });
}
