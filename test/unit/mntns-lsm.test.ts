// What LXC's checkpoint asks of a container's mounts (--ext-mount-map auto) and
// of its LSM profile (--lsm-profile), on captured mountinfo and made-up images.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseMountinfo } from '../../src/proc/mountinfo.js';
import { AUTODETECTED_MOUNT, classify } from '../../src/objects/mntns/dump.js';
import { checkLsm } from '../../src/objects/lsm.js';
import { parseLsmProfile } from '../../src/options/values.js';
import { create, CoreEntrySchema, CredsEntrySchema, Lsmtype, ThreadCoreEntrySchema } from '../../src/images/index.js';
import type { Logger } from '../../src/context.js';

// An LXC busybox container's mounts (cut), and the host's as cryo sees them.
const CONTAINER = parseMountinfo(`115 88 254:0 /tmp/lxcx/lxc/c1/rootfs / rw,relatime shared:1 - ext4 /dev/vda rw
116 115 0:47 / /dev rw,relatime shared:2 - tmpfs none rw,size=492k,mode=755
120 115 0:49 / /sys ro,relatime shared:16 - sysfs sysfs ro
123 115 254:0 /usr/lib /lib ro,relatime shared:18 - ext4 /dev/vda rw
127 120 0:22 /kernel/security /sys/kernel/security ro,relatime shared:17 - sysfs sysfs rw
130 116 0:26 /0 /dev/console rw,relatime shared:7 - devpts devpts rw,mode=600,ptmxmode=000
`);
const HOST = parseMountinfo(`23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
`);

describe('--ext-mount-map auto', () => {
  it('without it, a bind mount of a file system mounted outside is refused, naming it', () => {
    assert.throws(() => classify(CONTAINER, new Map(), 'task 1 (sh)'), /task 1 \(sh\): mount 123 at \/lib \(ext4\) is a bind mount of \/usr\/lib .*--external mnt\[\/lib\]:KEY/);
  });
  it('finds each where cryo sees it, the closest mount of the same file system; explicit keys win', () => {
    const roles = classify(CONTAINER, new Map([['/dev/console', 'console']]), 'task 1 (sh)', HOST);
    assert.deepEqual(roles.get(123), { role: 'external', key: AUTODETECTED_MOUNT, source: 'usr/lib' });
    assert.deepEqual(roles.get(127), { role: 'external', key: AUTODETECTED_MOUNT, source: 'sys/kernel/security' });
    assert.deepEqual(roles.get(130), { role: 'external', key: 'console' });
    assert.deepEqual(roles.get(116), { role: 'new' });
  });
  it('a file system cryo does not dump is refused, naming the --enable-fs that asked for it', () => {
    const huge = parseMountinfo('140 116 0:60 / /dev/hugepages rw,relatime shared:30 - hugetlbfs none rw,pagesize=2M\n');
    assert.throws(() => classify([...CONTAINER, ...huge], new Map([['/dev/console', 'c']]), 'task 1 (sh)', HOST, ['hugetlbfs']), {
      message: 'task 1 (sh): mount 140 at /dev/hugepages (hugetlbfs) is a file system cryo does not dump (--enable-fs hugetlbfs is not supported yet); declare it with --external mnt[/dev/hugepages]:KEY',
    });
  });
  it('a mount found nowhere outside is still refused', () => {
    assert.throws(() => classify(CONTAINER, new Map(), 'task 1 (sh)', HOST.filter((m) => m.sdev !== CONTAINER[3]!.sdev)), /mount 123 at \/lib/);
  });
});

const quiet: Logger & { warned: string[] } = {
  level: 0, warned: [], msg() {}, error() {}, info() {}, debug() {},
  warn(t: string) { this.warned.push(t); },
};
const thread = (tid: number, lsmProfile = '') => ({
  tid, core: create(CoreEntrySchema, { threadCore: create(ThreadCoreEntrySchema, { creds: create(CredsEntrySchema, { lsmProfile }) }) }),
});

describe('--lsm-profile', () => {
  it('is read as CRIU reads it', () => {
    assert.deepEqual(parseLsmProfile('apparmor:lxc-c1'), { type: 'apparmor', name: 'lxc-c1' });
    assert.deepEqual(parseLsmProfile('none:'), { type: undefined, name: '' });
    assert.deepEqual(parseLsmProfile('generated'), { error: 'invalid argument generated for --lsm-profile' });
    assert.deepEqual(parseLsmProfile('smack:x'), { error: 'unknown lsm smack' });
  });
  it('a task the images record as confined is refused, with or without the option', () => {
    for (const p of [undefined, 'none:']) {
      assert.throws(() => checkLsm(p, Lsmtype.APPARMOR, [thread(5), thread(7, 'lxc-container-default (enforce)')], quiet), {
        message: 'thread 7 was confined by the LSM profile "lxc-container-default (enforce)", which cryo does not restore yet',
      });
    }
  });
  it('unconfined tasks are restored without the profile only where the kernel lacks that LSM, with a warning', () => {
    quiet.warned.length = 0;
    const host = (() => { try { return readFileSync('/proc/self/attr/current', 'utf8'); } catch { return undefined; } })();
    if (host === undefined) {
      checkLsm('apparmor:generated', Lsmtype.NO_LSM, [thread(5, 'unconfined')], quiet);
      assert.match(quiet.warned[0] ?? '', /--lsm-profile apparmor:generated: this kernel has no apparmor; the tasks had no LSM confinement/);
    } else {
      assert.throws(() => checkLsm('apparmor:generated', Lsmtype.NO_LSM, [thread(5)], quiet), /cryo does not put LSM profiles on restored tasks yet/);
    }
  });
});
