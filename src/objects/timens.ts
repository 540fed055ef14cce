// The time namespace of a tree that has one of its own (timens-N.img, as
// CRIU): the values its CLOCK_MONOTONIC and CLOCK_BOOTTIME had at dump. On
// restore the root gets a new time namespace whose offsets make both clocks go
// on from those values, as if no time had passed while the tree was away.
import { readFileSync, writeFileSync } from 'node:fs';
import { create, TimensEntrySchema, type ImageDir, type TimensEntry } from '../images/index.js';
import { AT_FDCWD, CLOCK, CLONE, NR, O, clockGettime } from '../sys/index.js';
import { CryoError } from '../context.js';
import type { Remote } from '../tracer/remote.js';

const NS = 1_000_000_000n;

/** /proc/PID/timens_offsets: the offsets of the namespace PID's next children get, in ns. */
function offsets(pid: number | 'self'): { monotonic: bigint; boottime: bigint } {
  const out = { monotonic: 0n, boottime: 0n };
  for (const line of readFileSync(`/proc/${pid}/timens_offsets`, 'utf8').split('\n')) {
    const m = /^(monotonic|boottime)\s+(-?\d+)\s+(\d+)$/.exec(line.trim());
    if (m) out[m[1] as 'monotonic' | 'boottime'] = BigInt(m[2]!) * NS + BigInt(m[3]!);
  }
  return out;
}

/** The clock as the host (the initial time namespace) has it now. */
function hostClock(which: 'monotonic' | 'boottime'): bigint {
  return clockGettime(which === 'monotonic' ? CLOCK.MONOTONIC : CLOCK.BOOTTIME) - offsets('self')[which];
}

/** Dump the time namespace of `root` (whose children get the same one: checked before). */
export function dumpTimeNs(root: number, nsId: number, dir: ImageDir): void {
  const theirs = offsets(root);
  const ts = (which: 'monotonic' | 'boottime') => {
    const v = hostClock(which) + theirs[which];
    return { tvSec: v / NS, tvNsec: v % NS };
  };
  dir.write('timens', [create(TimensEntrySchema, { monotonic: ts('monotonic'), boottime: ts('boottime') })], nsId);
}

export function loadTimeNs(dir: ImageDir, nsId: number): TimensEntry {
  const e = dir.readOne('timens', nsId);
  for (const [what, t] of [['monotonic', e.monotonic], ['boottime', e.boottime]] as const) {
    if (!t) throw new CryoError(`bad image: ${dir.fileName('timens', nsId)}: no ${what} clock`);
    if (t.tvNsec >= NS) throw new CryoError(`bad image: ${dir.fileName('timens', nsId)}: ${what} tv_nsec ${t.tvNsec} is not below 10^9`);
  }
  return e;
}

/**
 * Put the root `rem` (a seed, cryo's child, nothing of the tree in it yet) in a
 * new time namespace: it unshares one (its children's), cryo sets the offsets
 * before any task is in it (they are frozen then), and the root enters it.
 */
export function restoreTimeNs(rem: Remote, e: TimensEntry): void {
  rem.call('unshare(CLONE_NEWTIME)', NR.unshare, CLONE.NEWTIME);
  // One line per clock, as CRIU writes them: "<clockid> <sec> <nsec>".
  for (const [which, clock, t] of [['monotonic', CLOCK.MONOTONIC, e.monotonic!], ['boottime', CLOCK.BOOTTIME, e.boottime!]] as const) {
    const off = t.tvSec * NS + t.tvNsec - hostClock(which);
    // Floor division: the kernel wants 0 <= nsec < 10^9 with the sign on the seconds.
    let sec = off / NS;
    let nsec = off % NS;
    if (nsec < 0n) {
      nsec += NS;
      sec -= 1n;
    }
    try {
      writeFileSync(`/proc/${rem.pid}/timens_offsets`, `${clock} ${sec} ${nsec}\n`);
    } catch (err) {
      throw new CryoError(`cannot set the ${which} offset (${sec}s ${nsec}ns) of the root's new time namespace: ${(err as Error).message}`);
    }
  }
  const path = rem.put(Buffer.from('/proc/thread-self/ns/time_for_children\0'));
  const fd = rem.call('open(time_for_children)', NR.openat, AT_FDCWD, path, O.RDONLY | O.CLOEXEC, 0);
  try {
    rem.call('setns(time)', NR.setns, fd, CLONE.NEWTIME);
  } finally {
    rem.call('close', NR.close, fd);
  }
}
