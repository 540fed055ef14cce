// Per-process settings of prctl and /proc: the personality, child subreaper,
// dumpable, transparent huge pages disabled, and oom_score_adj. The personality,
// subreaper and oom_score_adj are CRIU's task core fields; dumpable and THP its
// mm fields.
import { readFileSync, writeFileSync } from 'node:fs';
import { NR, PR } from '../sys/index.js';
import type { MmEntry, TaskCoreEntry } from '../images/index.js';
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
  rem.call('prctl(PR_GET_CHILD_SUBREAPER)', NR.prctl, PR.GET_CHILD_SUBREAPER, scratch);
  return {
    personality: parseInt(readFileSync(`/proc/${pid}/personality`, 'utf8').trim(), 16),
    childSubreaper: rem.mem.read(scratch, 4).readInt32LE(0) !== 0,
    oomScoreAdj: Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim()),
    dumpable: Number(rem.call('prctl(PR_GET_DUMPABLE)', NR.prctl, PR.GET_DUMPABLE)),
    thpDisabled: Number(rem.call('prctl(PR_GET_THP_DISABLE)', NR.prctl, PR.GET_THP_DISABLE)) !== 0,
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

export function restoreThp(rem: Remote, mm: MmEntry): void {
  if (mm.thpDisabled !== undefined) rem.call('prctl(PR_SET_THP_DISABLE)', NR.prctl, PR.SET_THP_DISABLE, mm.thpDisabled ? 1 : 0, 0, 0, 0);
}

/** After the credentials: changing them resets it. */
export function restoreDumpable(rem: Remote, mm: MmEntry | undefined): void {
  if (mm?.dumpable !== undefined) rem.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, mm.dumpable);
}
