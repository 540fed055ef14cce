// Fault injection, as CRIU's CRIU_FAULT=N (zdtm --fault N): a failure at one
// named point, so that tests can walk the way back. cryo has a place for the
// faults below; any other number is ignored, as by a CRIU that lacks it.
import { CryoError } from './context.js';

export const FI = {
  /** The dumper dies at once once the tree is frozen ("sudden detach"). */
  DUMP_EARLY: 1,
  /** The restored root dies before its children exist. */
  RESTORE_ROOT_ONLY: 2,
  /** Writing a task's pages fails. */
  DUMP_PAGES: 3,
  /** The restore fails once every task is made, before post-restore. */
  POST_RESTORE: 5,
  /**
   * cryo's own: an incremental dump takes every page its parent has as unchanged,
   * written or not, as a broken tracking would (tests prove their checks catch it).
   */
  TRACK_TRUST_ALL: 4001,
} as const;

export function faultInjected(f: (typeof FI)[keyof typeof FI]): boolean {
  const v = process.env['CRIU_FAULT'];
  return v !== undefined && Number(v) === f;
}

/** Throws the injected failure when `f` is asked for. */
export function injectFailure(f: (typeof FI)[keyof typeof FI], what: string): void {
  if (faultInjected(f)) throw new CryoError(`fault injected (CRIU_FAULT=${f}): ${what}`);
}
