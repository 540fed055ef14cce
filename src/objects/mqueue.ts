// POSIX message queues of a tree's ipc namespace. They live on the namespace's
// own mqueue mount (mq_open reaches it whatever the mount namespace), so cryo
// reads and makes them from a thread in that ipc namespace. CRIU keeps none:
// cryo writes them in its own field of ipcns-var-N.img (posix_mq, 1000).
import { closeSync, fchmodSync, fchownSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { create, PosixMqEntrySchema, PosixMqMsgSchema, type PosixMqEntry } from '../images/index.js';
import { ipc, NR, O, FSOPEN_CLOEXEC, FSMOUNT_CLOEXEC, FSCONFIG, SysError, syscall } from '../sys/index.js';
import { CryoError } from '../context.js';
import type { IdView } from './userns.js';

const why = (e: unknown): string => (SysError.is(e) ? e.code : (e as Error).message);

/** `fn` with the directory of the current ipc namespace's queues: a detached mqueue mount of it. */
function onMqueueMount<T>(fn: (dir: string) => T): T {
  const fsfd = syscall('fsopen(mqueue)', NR.fsopen, Buffer.from('mqueue\0'), FSOPEN_CLOEXEC);
  try {
    syscall('fsconfig(create)', NR.fsconfig, fsfd, FSCONFIG.CMD_CREATE, 0, 0, 0);
    const mnt = syscall('fsmount', NR.fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
    try {
      return fn(`/proc/self/fd/${mnt}`);
    } finally {
      closeSync(mnt);
    }
  } finally {
    closeSync(fsfd);
  }
}

/**
 * Every queue of the current ipc namespace with its messages. There is no way to
 * read a message and leave it queued: each is received and, once all are out,
 * sent again in the same order with its priority, which gives the queue back as
 * it was (the tree is frozen: no task of it waits on the queue meanwhile). A
 * queue with a notification registered is refused before anything is taken:
 * it would fire when the empty queue is filled again, and cryo cannot make it again.
 */
export function dumpPosixQueues(ids: IdView, who: string): PosixMqEntry[] {
  try {
    return onMqueueMount((dir) => {
      return readdirSync(dir).map((name) => {
        const what = `${who}: POSIX message queue /${name}`;
        const st = statSync(`${dir}/${name}`);
        const owner = /NOTIFY_PID:(\d+)/.exec(readFileSync(`${dir}/${name}`, 'utf8'));
        if (owner && owner[1] !== '0') throw new CryoError(`${what} has a notification registered (mq_notify, by pid ${owner[1]}), which cryo cannot carry`);
        const fd = ipc.mqOpen(name, O.RDWR | O.NONBLOCK);
        try {
          const a = ipc.mqGetattr(fd);
          const msgs: Array<{ prio: number; data: Buffer }> = [];
          try {
            for (let i = 0; i < a.curmsgs; i++) msgs.push(ipc.mqReceive(fd, a.msgsize));
          } finally {
            for (const m of msgs) ipc.mqSend(fd, m.data, m.prio);
          }
          return create(PosixMqEntrySchema, {
            name, mode: st.mode & 0o777, uid: ids.nsUid(st.uid, what), gid: ids.nsGid(st.gid, what),
            maxmsg: BigInt(a.maxmsg), msgsize: BigInt(a.msgsize),
            msgs: msgs.map((m) => create(PosixMqMsgSchema, { prio: m.prio, data: m.data })),
          });
        } finally {
          closeSync(fd);
        }
      });
    });
  } catch (e) {
    if (e instanceof CryoError) throw e;
    throw new CryoError(`${who}: cannot read the POSIX message queues of its ipc namespace: ${why(e)}`);
  }
}

/** The device of the mqueue file system of ipc namespace `nsPath` (its queues' descriptors are files of it). */
export function mqueueDev(nsPath: string): number {
  return ipc.inNamespace(nsPath, 'ipc', () => onMqueueMount((dir) => statSync(dir).dev));
}

/** The limits a restore must raise while it makes `qs` (taken by mq_open without CAP_SYS_RESOURCE). */
export function queueLimits(qs: readonly PosixMqEntry[]): { queues: number; maxmsg: number; msgsize: number } {
  return {
    queues: qs.length,
    maxmsg: Math.max(0, ...qs.map((q) => Number(q.maxmsg))),
    msgsize: Math.max(0, ...qs.map((q) => Number(q.msgsize))),
  };
}

/** Make the queues of the images in the current (new, empty) ipc namespace, each with its mode, owners, limits and messages. */
export function restorePosixQueues(qs: readonly PosixMqEntry[], view: IdView, nsId: number): void {
  for (const q of qs) {
    const what = `ipc namespace ${nsId}: POSIX message queue /${q.name}`;
    if (!q.name || q.name.includes('/')) throw new CryoError(`${what}: not a queue name`);
    let fd: number;
    try {
      fd = ipc.mqOpen(q.name, O.RDWR | O.CREAT | O.EXCL | O.NONBLOCK, q.mode & 0o777, { maxmsg: Number(q.maxmsg), msgsize: Number(q.msgsize) });
    } catch (e) {
      // EMFILE here is RLIMIT_MSGQUEUE of cryo, which every queue made counts against.
      throw new CryoError(`${what}: cannot make it (${q.maxmsg} messages of ${q.msgsize} bytes): ${why(e)}`);
    }
    try {
      // The mode mq_open took went through cryo's umask.
      fchmodSync(fd, q.mode & 0o777);
      fchownSync(fd, view.hostUid(q.uid, what), view.hostGid(q.gid, what));
      for (const [i, m] of q.msgs.entries()) {
        try {
          ipc.mqSend(fd, m.data, m.prio);
        } catch (e) {
          throw new CryoError(`${what}: cannot queue message ${i} (${m.data.length} bytes): ${why(e)}`);
        }
      }
    } finally {
      closeSync(fd);
    }
  }
}
