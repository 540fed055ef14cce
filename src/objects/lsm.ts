// LSM confinement (AppArmor profiles, SELinux labels). cryo does not put a
// profile on a restored task yet, so a dump refuses a confined thread, and a
// restore refuses images that record one: a confinement is never dropped. A
// --lsm-profile that this kernel cannot honour is accepted only for tasks that
// had none (CRIU refuses it outright: LXC asks for an AppArmor profile even
// where the kernel has no AppArmor).
import { existsSync, readFileSync } from 'node:fs';
import { CryoError, type Logger } from '../context.js';
import { Lsmtype, type CoreEntry } from '../images/index.js';
import { parseLsmProfile, type LsmName } from '../options/values.js';

/** The task's label in /proc/.../attr/current; undefined when no LSM of the kernel gives one (EINVAL). */
export function lsmLabel(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EINVAL' || code === 'ENOENT' || code === 'EOPNOTSUPP') return undefined;
    throw e;
  }
  return text.replace(/[\0\n]+$/, '');
}

/** AppArmor's label of a task it does not confine ("unconfined", in any mode suffix). */
const unconfined = (label: string) => label === '' || /^unconfined( \(\w+\))?$/.test(label);

/** The dump: a thread confined by an LSM fails it, naming the thread and its label. */
export function refuseConfined(pid: number, tid: number, comm: string): void {
  const label = lsmLabel(`/proc/${pid}/task/${tid}/attr/current`);
  if (label === undefined || unconfined(label)) return;
  const who = tid === pid ? `task ${pid} (${comm})` : `thread ${tid} of task ${pid} (${comm})`;
  throw new CryoError(`${who} is confined by the LSM label ${JSON.stringify(label)}, which cryo does not restore yet`);
}

/** The LSM of this kernel that labels tasks, if any. */
export function hostLsm(): LsmName | undefined {
  if (lsmLabel('/proc/self/attr/current') === undefined) return undefined;
  if (existsSync('/proc/self/attr/apparmor/current') || existsSync('/sys/kernel/security/apparmor')) return 'apparmor';
  return 'selinux';
}

/**
 * The restore's check, before anything is made: no task of the images may
 * carry a confinement (cryo cannot give it back), and a --lsm-profile must be
 * one that changes nothing: for an LSM this kernel lacks (nobody can apply it,
 * and the tasks had none), or "none".
 */
export function checkLsm(profile: string | undefined, inventoryLsm: Lsmtype | undefined, threads: Array<{ tid: number; core: CoreEntry }>, log: Logger): void {
  for (const { tid, core } of threads) {
    const c = core.threadCore?.creds;
    if (c?.lsmProfile && !unconfined(c.lsmProfile)) {
      throw new CryoError(`thread ${tid} was confined by the LSM profile ${JSON.stringify(c.lsmProfile)}, which cryo does not restore yet`);
    }
    if (c?.lsmSockcreate) throw new CryoError(`thread ${tid} has the LSM socket label ${JSON.stringify(c.lsmSockcreate)}, which cryo does not restore yet`);
  }
  if (profile === undefined) return;
  const p = parseLsmProfile(profile);
  if ('error' in p) throw new CryoError(p.error);
  if (p.type === undefined) return;
  const host = hostLsm();
  if (host !== undefined) throw new CryoError(`--lsm-profile ${profile}: cryo does not put LSM profiles on restored tasks yet`);
  const recorded = inventoryLsm === Lsmtype.APPARMOR ? 'apparmor' : inventoryLsm === Lsmtype.SELINUX ? 'selinux' : 'no LSM';
  log.warn(`--lsm-profile ${profile}: this kernel has no ${p.type}; the tasks had no LSM confinement at the dump (its host had ${recorded}) and are restored without one`);
}
