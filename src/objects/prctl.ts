// Per-process settings of prctl and /proc: the personality, child subreaper,
// dumpable, transparent huge pages disabled, and oom_score_adj. The personality,
// subreaper and oom_score_adj are CRIU's task core fields; dumpable and THP its
// mm fields.
import { readFileSync, writeFileSync } from 'node:fs';
import { NR, PR } from '../sys/index.js';
import { ImageError, type MmEntry, type TaskCoreEntry } from '../images/index.js';
import type { TaskStateModule } from './task-state.js';
import type { Logger } from '../context.js';
import type { Remote } from '../tracer/remote.js';

export interface ProcessMisc {
  personality: number;
  childSubreaper: boolean;
  oomScoreAdj: number;
  dumpable: number;
  thpDisabled: boolean;
}

/** Read in the task (`scratch`: memory of the task's for the calls) and from /proc. */
export function dumpProcessMisc(rem: Remote, pid: number, scratch: bigint): ProcessMisc {
  const [, dumpable, thp] = rem.batch([
    { name: 'prctl(PR_GET_CHILD_SUBREAPER)', nr: NR.prctl, args: [PR.GET_CHILD_SUBREAPER, scratch] },
    { name: 'prctl(PR_GET_DUMPABLE)', nr: NR.prctl, args: [PR.GET_DUMPABLE] },
    { name: 'prctl(PR_GET_THP_DISABLE)', nr: NR.prctl, args: [PR.GET_THP_DISABLE] },
  ]);
  return {
    personality: parseInt(readFileSync(`/proc/${pid}/personality`, 'utf8').trim(), 16),
    childSubreaper: rem.mem.read(scratch, 4).readInt32LE(0) !== 0,
    oomScoreAdj: Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim()),
    dumpable: Number(dumpable),
    thpDisabled: Number(thp) !== 0,
  };
}

/** The task core's part. oom_score_adj that cannot be written (lowered below ours) is a warning, as CRIU's. */
export function restoreProcessMisc(rem: Remote, pid: number, tc: TaskCoreEntry, log: Logger): void {
  if (tc.personality) rem.call('personality', NR.personality, tc.personality);
  if (tc.childSubreaper) rem.call('prctl(PR_SET_CHILD_SUBREAPER)', NR.prctl, PR.SET_CHILD_SUBREAPER, 1);
  if (tc.oomScoreAdj === undefined) return;
  try {
    writeFileSync(`/proc/${rem.pid}/oom_score_adj`, String(tc.oomScoreAdj));
  } catch (e) {
    log.warn(`task ${pid}: cannot restore oom_score_adj: ${(e as Error).message}`);
  }
}

/**
 * Transparent huge pages stay off while the tree's memory is filled (from the
 * start of each task's memory stage, and its children inherit it): khugepaged
 * could otherwise collapse a parent's pages into a huge page its children are
 * forked with, in the way of their own pages (UFFDIO_COPY: EEXIST). The dumped
 * setting comes back in the task stage, once every child is forked and filled
 * (restoreThp); images without it had the kernel's default, on.
 */
export function holdThp(rem: Remote): void {
  rem.call('prctl(PR_SET_THP_DISABLE)', NR.prctl, PR.SET_THP_DISABLE, 1, 0, 0, 0);
}

export function restoreThp(rem: Remote, mm: MmEntry): void {
  rem.call('prctl(PR_SET_THP_DISABLE)', NR.prctl, PR.SET_THP_DISABLE, mm.thpDisabled ? 1 : 0, 0, 0, 0);
}

/** Personality flags (linux/personality.h: UNAME26 .. ADDR_LIMIT_3GB) and the persona types, PER_LINUX .. PER_HPUX. */
const PER_FLAGS = 0x0ffe0000;
const PER_MASK = 0xff;
const PER_LAST = 0x10;
const personalityOk = (v: number) => (v & PER_MASK) <= PER_LAST && (v & ~(PER_MASK | PER_FLAGS)) === 0;

/**
 * The personality a core holds. CRIU 4.2 reads /proc/PID/personality, which is
 * hex, with atoi() (cr-dump.c), and never restores it: its 0x40000
 * (ADDR_NO_RANDOMIZE) is 40000 in the image, 0x9c40, no personality at all.
 * Such a value is read back as the hex digits it was; one that is no
 * personality either way is refused.
 */
export function imagePersonality(v: number, file: string): number {
  if (personalityOk(v)) return v;
  const digits = String(v);
  const hex = digits.length <= 8 ? parseInt(digits, 16) : NaN;
  if (Number.isInteger(hex) && personalityOk(hex)) return hex;
  throw new ImageError('IMG_INVALID', file, undefined, `personality 0x${v.toString(16)} is none the kernel knows (nor read as CRIU's atoi() of /proc's hex)`);
}

/** After the credentials: changing them resets it. */
export function restoreDumpable(rem: Remote, mm: MmEntry | undefined): void {
  if (mm?.dumpable !== undefined) rem.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, mm.dumpable);
}

export const prctlModule: TaskStateModule = {
  name: 'prctl',
  dumpTask(d) {
    const m = dumpProcessMisc(d.rem, d.pid, d.scratch);
    Object.assign(d.tc, { personality: m.personality, childSubreaper: m.childSubreaper, oomScoreAdj: m.oomScoreAdj });
    Object.assign(d.mm, { dumpable: m.dumpable, thpDisabled: m.thpDisabled });
  },
  restore: {
    // CRIU's images may hold the personality as atoi() read /proc's hex.
    task: (t) => {
      // Also when false: a task forked from its parent has the parent's setting (holdThp's).
      if (t.img.mm) restoreThp(t.rem, t.img.mm);
      const tc = t.img.core.tc!;
      const pid = t.img.pstree.pid;
      restoreProcessMisc(t.rem, pid, { ...tc, personality: imagePersonality(tc.personality, `core-${pid}.img`) }, t.sh.log);
    },
    'after-creds': (t) => restoreDumpable(t.rem, t.img.mm),
  },
};
