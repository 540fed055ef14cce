// Zombies: dumped as a core with only the exit status (CRIU's TASK_DEAD), and on
// restore a task made to end as the dumped one did, by exit_group or by the
// same signal, so that its parent's wait sees the same status.
import { readFileSync } from 'node:fs';
import { NR, SIG, PR, ptrace } from '../sys/index.js';
import { create, CoreEntrySchema, CoreEntry_March, TaskCoreEntrySchema, TASK_DEAD, type ImageDir } from '../images/index.js';
import { CryoError, type Logger } from '../context.js';
import { TaskGoneError, type Remote } from '../tracer/remote.js';
import { kSigaction } from '../abi/index.js';

/** A zombie: only its exit code and a core saying so. */
export function dumpZombie(pid: number, vpid: number, stat: { exitCode: number; comm: string }, dir: ImageDir, log: Logger): void {
  const core = create(CoreEntrySchema, {
    mtype: CoreEntry_March.X86_64,
    tc: create(TaskCoreEntrySchema, {
      taskState: TASK_DEAD, exitCode: stat.exitCode, personality: 0, flags: 0,
      blkSigset: 0n, comm: stat.comm,
    }),
  });
  dir.write('core', [core], vpid);
  log.debug(`zombie ${pid} exit code ${stat.exitCode}`);
}

/**
 * Make a freshly cloned task end as the dumped zombie did: `status` is the wait
 * status CRIU keeps (exit code << 8, or the killing signal in the low bits).
 */
export function becomeZombie(rem: Remote, status: number): void {
  const sig = status & 0x7f;
  if (sig) {
    if (!killsByDefault(sig)) throw new CryoError(`zombie ${rem.pid}: its wait status says signal ${sig} killed it, which no signal of that number does`);
    // As CRIU: not dumpable, so dying of SIGSEGV or SIGQUIT writes no core file.
    rem.call('prctl(PR_SET_DUMPABLE)', NR.prctl, PR.SET_DUMPABLE, 0, 0, 0, 0);
    // Default action, unblocked, then let it go with the signal: it dies of it.
    // (SIGKILL's action cannot be changed, nor need it be.)
    if (sig !== SIG.KILL) rem.call('rt_sigaction', NR.rt_sigaction, sig, rem.put(kSigaction.encode({})), 0, 8);
    rem.releaseScratch();
    ptrace.setSigmask(rem.pid, 0n);
    ptrace.detach(rem.pid, sig);
    // It dies on its own time: its parent's SIGCHLD is sent by then, which the
    // restore drains right after (the dumped parent had none pending).
    untilZombie(rem.pid);
    return;
  }
  try {
    rem.callRaw(NR.exit_group, (status >> 8) & 0xff);
  } catch (e) {
    if (e instanceof TaskGoneError) return; // the tracer's wait took only the ptrace side
    throw e;
  }
  throw new Error(`task ${rem.pid} did not exit`);
}

/** Wait (5 s at most) until task `pid` is a zombie: /proc's state Z, set as its parent is notified. */
function untilZombie(pid: number): void {
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 5000; i++) {
    let st: string;
    try {
      st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return; // reaped already
    }
    if (st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) === 'Z') return;
    Atomics.wait(tick, 0, 0, 1);
  }
  throw new CryoError(`zombie ${pid}: it did not die of its signal within 5 s`);
}

/** A signal whose default action ends the process (not one that stops, continues or is ignored). */
function killsByDefault(sig: number): boolean {
  const harmless: number[] = [SIG.STOP, SIG.TSTP, SIG.TTIN, SIG.TTOU, SIG.CONT, SIG.CHLD, 23 /* SIGURG */, 28 /* SIGWINCH */];
  return sig >= 1 && sig <= 64 && !harmless.includes(sig);
}
