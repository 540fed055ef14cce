// execvp(3) from inside node, for --exec-cmd: cryo becomes the command, which
// thus inherits the restored tree as its children.
import { spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import * as path from 'node:path';
import { addressOf, syscall, trySyscall } from './libc.js';
import { SysError } from './errors.js';
import { F, NR, O, SIG } from './nr.js';
import { kSigaction } from '../abi/index.js';

const CLOSE_RANGE_CLOEXEC = 4;
const NR_EXECVE = 59;

function findInPath(cmd: string): string {
  if (cmd.includes('/')) return cmd;
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir || '.', cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new SysError(`execvp ${cmd}`, 2 /* ENOENT */);
}

/** A NULL-terminated array of pointers to C strings, followed in the same buffer by the strings. */
function cStrings(list: string[]): Buffer {
  const bufs = list.map((s) => Buffer.from(s + '\0'));
  const head = 8 * (list.length + 1);
  const out = Buffer.concat([Buffer.alloc(head), ...bufs]);
  const base = addressOf(out);
  let off = head;
  bufs.forEach((b, i) => {
    out.writeBigUInt64LE(base + BigInt(off), 8 * i);
    off += b.length;
  });
  return out;
}

/**
 * Replace this process with `argv` (PATH searched), its stdout and stderr
 * going to `output` when given; returns only by throwing.
 */
export function execCommand(argv: string[], output?: string): never {
  const file = findInPath(argv[0]!);
  if (output) {
    const fd = openSync(output, O.WRONLY | O.APPEND | O.CREAT, 0o600);
    syscall('dup2', NR.dup2, fd, 1);
    syscall('dup2', NR.dup2, fd, 2);
    closeSync(fd);
  }
  // Nothing of cryo's leaks into the command; what node changed goes back to default.
  syscall('close_range', NR.close_range, 3, 0xffffffff, CLOSE_RANGE_CLOEXEC);
  for (const fd of [0, 1, 2]) {
    const fl = trySyscall(NR.fcntl, fd, F.GETFL);
    if (fl >= 0 && fl & O.NONBLOCK) trySyscall(NR.fcntl, fd, F.SETFL, fl & ~O.NONBLOCK);
  }
  trySyscall(NR.rt_sigaction, SIG.PIPE, kSigaction.encode({ sa_handler: 0n }), 0, 8); // SIG_DFL
  const a = cStrings(argv);
  const e = cStrings(Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`));
  const f = Buffer.from(file + '\0');
  const r = trySyscall(NR_EXECVE, f, a, e);
  throw new SysError(`execve ${file}`, -r);
}

/** What a command run to its end gave: its exit status (null if a signal ended it) and output. */
export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started at all (ENOENT...). */
  error?: string;
}

/**
 * Run `argv` (PATH searched, no shell) to its end, `input` on its stdin; for the
 * netfilter tools of the network lock. Node waits for this child by its own
 * pid, so it takes no stop of a tracee.
 */
export function runCommand(argv: string[], input?: string): CommandResult {
  const r = spawnSync(argv[0]!, argv.slice(1), { input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
  const out: CommandResult = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (r.error) out.error = (r.error as NodeJS.ErrnoException).code ?? r.error.message;
  return out;
}
