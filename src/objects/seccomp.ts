// seccomp: the mode and filter chain of every thread. Filters are read with
// PTRACE_SECCOMP_GET_FILTER, kept once in seccomp.img as CRIU keeps them (each
// filter points at the one installed before it, `prev`), and installed again by
// the thread itself, oldest first. Tracees run with PTRACE_O_SUSPEND_SECCOMP, so
// a filter never blocks the system calls cryo makes them do.
import { NR, ptrace } from '../sys/index.js';
import { create, isFieldSet, SeccompFilterSchema, SeccompMode, type SeccompFilter, type ThreadCoreEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';

const SECCOMP_SET_MODE_STRICT = 0;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;

/** The filters of one dump, shared by all threads whose chains are identical. */
export class SeccompTable {
  readonly filters: SeccompFilter[] = [];
  private readonly byChain = new Map<string, number>();

  /** Record a chain (oldest first); returns the index of its newest filter. */
  add(chain: Array<{ prog: Buffer; flags: number }>): number {
    let prev: number | undefined;
    let key = '';
    for (const f of chain) {
      key += `${f.flags}:${f.prog.toString('base64')};`;
      let idx = this.byChain.get(key);
      if (idx === undefined) {
        idx = this.filters.length;
        this.filters.push(create(SeccompFilterSchema, {
          filter: new Uint8Array(f.prog), flags: f.flags & ~SECCOMP_FILTER_FLAG_TSYNC,
          ...(prev !== undefined ? { prev } : {}),
        }));
        this.byChain.set(key, idx);
      }
      prev = idx;
    }
    return prev!;
  }
}

/** The thread's seccomp fields for its thread_core entry. */
export function dumpSeccomp(tid: number, status: Map<string, string>, table: SeccompTable): { seccompMode?: SeccompMode; seccompFilter?: number } {
  const mode = Number(status.get('Seccomp') ?? 0);
  if (mode === 0) return {};
  if (mode === 1) return { seccompMode: SeccompMode.strict };
  const chain: Array<{ prog: Buffer; flags: number }> = [];
  for (let i = 0; ; i++) {
    const prog = ptrace.seccompFilter(tid, i);
    if (!prog) break;
    let flags = 0;
    try {
      flags = ptrace.seccompFilterFlags(tid, i);
    } catch {
      /* metadata needs a newer kernel: no flags */
    }
    // PTRACE_SECCOMP_GET_FILTER's index 0 is the oldest filter (the kernel walks back from the newest).
    chain.push({ prog, flags });
  }
  return { seccompMode: SeccompMode.filter, seccompFilter: table.add(chain) };
}

/** The indices of a thread's filters in seccomp.img, oldest first ([] without filters). */
export function filterChain(th: ThreadCoreEntry | undefined, filters: SeccompFilter[]): number[] {
  if (th?.seccompMode !== SeccompMode.filter) return [];
  const chain: number[] = [];
  // proto2 optional: an unset `prev` reads as 0, so ask whether it is set.
  for (let i: number | undefined = th.seccompFilter; i !== undefined; ) {
    const f: SeccompFilter | undefined = filters[i];
    if (!f) throw new Error(`seccomp.img has no filter ${i}`);
    chain.unshift(i);
    if (chain.length > filters.length) throw new Error('seccomp.img: filter chain loops');
    i = isFieldSet(f, SeccompFilterSchema.field.prev) ? f.prev : undefined;
  }
  return chain;
}

/**
 * The filters every thread of a process has in common, oldest first: the
 * leader installs them before it makes its threads, which inherit them. So
 * the threads share the kernel's filter objects as they did (a filter added
 * later with SECCOMP_FILTER_FLAG_TSYNC needs that), and each thread then adds
 * the rest of its own chain.
 */
export function sharedFilters(threads: Array<ThreadCoreEntry | undefined>, filters: SeccompFilter[]): number[] {
  const chains = threads.map((th) => filterChain(th, filters));
  const first = chains[0] ?? [];
  let n = 0;
  while (n < first.length && chains.every((c) => c[n] === first[n])) n++;
  return first.slice(0, n);
}

/** Install these filters of seccomp.img in the thread, in order. */
export function installFilters(rem: Remote, idxs: number[], filters: SeccompFilter[]): void {
  for (const i of idxs) {
    const f = filters[i]!;
    const prog = Buffer.from(f.filter);
    const progAddr = rem.put(prog, 4096);
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(prog.length / 8, 0);
    fprog.writeBigUInt64LE(progAddr, 8);
    rem.call('seccomp(SET_MODE_FILTER)', NR.seccomp, SECCOMP_SET_MODE_FILTER, f.flags ?? 0, rem.put(fprog, 2048));
  }
}

/**
 * Install the thread's filters, oldest first, but the first `inherited` ones,
 * which it has already (or strict mode).
 */
export function restoreSeccomp(rem: Remote, th: ThreadCoreEntry | undefined, filters: SeccompFilter[], inherited = 0): void {
  if (!th?.seccompMode) return;
  if (th.seccompMode === SeccompMode.strict) {
    rem.call('seccomp(STRICT)', NR.seccomp, SECCOMP_SET_MODE_STRICT, 0, 0);
    return;
  }
  installFilters(rem, filterChain(th, filters).slice(inherited), filters);
}
