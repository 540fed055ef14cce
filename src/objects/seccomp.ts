// seccomp: the mode and filter chain of every thread. Filters are read with
// PTRACE_SECCOMP_GET_FILTER, kept in seccomp.img in CRIU's layout, and installed
// again by the thread itself, oldest first. Tracees run with
// PTRACE_O_SUSPEND_SECCOMP, so a filter never blocks the system calls cryo makes
// them do.
//
// CRIU's layout (seccomp.c): a thread's seccomp_filter is the OLDEST filter of its
// chain, and each filter's `prev` the one installed right AFTER it; the newest has
// none. So a filter cannot be the parent of two chains: threads share entries only
// when their whole chains are alike, and what the threads of a process have in
// common is found by content on restore.
import { NR, ptrace } from '../sys/index.js';
import { create, isFieldSet, SeccompFilterSchema, SeccompMode, type SeccompFilter, type ThreadCoreEntry } from '../images/index.js';
import type { Remote } from '../tracer/remote.js';
import type { TaskStateModule } from './task-state.js';

const SECCOMP_SET_MODE_STRICT = 0;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;

/** The filters of one dump, one chain for all threads whose chains are alike. */
export class SeccompTable {
  readonly filters: SeccompFilter[] = [];
  private readonly byChain = new Map<string, number>();

  /** Record a chain (oldest first); returns the index of its oldest filter. */
  add(chain: Filter[], tsync = false): number {
    const flagsOf = (f: Filter) => (f.flags & ~SECCOMP_FILTER_FLAG_TSYNC) | (tsync ? SECCOMP_FILTER_FLAG_TSYNC : 0);
    const key = chain.map((f) => `${flagsOf(f)}:${f.prog.toString('base64')};`).join('');
    const known = this.byChain.get(key);
    if (known !== undefined) return known;
    // Newest first, as CRIU writes them: each older one names the newer one as `prev`.
    let next: number | undefined;
    for (const f of [...chain].reverse()) {
      const idx = this.filters.length;
      this.filters.push(create(SeccompFilterSchema, { filter: new Uint8Array(f.prog), flags: flagsOf(f), ...(next !== undefined ? { prev: next } : {}) }));
      next = idx;
    }
    this.byChain.set(key, next!);
    return next!;
  }
}

interface Filter {
  prog: Buffer;
  flags: number;
}

/** A thread's seccomp mode (/proc status) and, in filter mode, its chain oldest first. */
export interface ThreadSeccomp {
  mode: number;
  chain: Filter[];
}

export function readSeccomp(tid: number, status: Map<string, string>): ThreadSeccomp {
  const mode = Number(status.get('Seccomp') ?? 0);
  const chain: Filter[] = [];
  if (mode !== 2) return { mode, chain };
  for (let i = 0; ; i++) {
    // PTRACE_SECCOMP_GET_FILTER's index 0 is the oldest filter (the kernel walks back from the newest).
    const prog = ptrace.seccompFilter(tid, i);
    if (!prog) break;
    let flags = 0;
    try {
      flags = ptrace.seccompFilterFlags(tid, i);
    } catch {
      /* metadata needs a newer kernel: no flags */
    }
    chain.push({ prog, flags });
  }
  return { mode, chain };
}

const sameChain = (a: Filter[], b: Filter[]): boolean =>
  a.length === b.length && a.every((f, i) => f.flags === b[i]!.flags && f.prog.equals(b[i]!.prog));

/**
 * The thread_core seccomp fields of a process's threads (the leader first), as
 * CRIU writes them: when every thread has the leader's chain, only the leader
 * keeps it, each filter marked SECCOMP_FILTER_FLAG_TSYNC, and the other threads
 * have no mode (seccomp.c's try_use_tsync); CRIU's restore then installs the
 * chain once for all threads, which share it again. Else each thread its own.
 */
export function seccompFields(threads: ThreadSeccomp[], table: SeccompTable): Array<{ seccompMode?: SeccompMode; seccompFilter?: number }> {
  const leader = threads[0]!;
  if (leader.mode === 2 && threads.length > 1 && threads.every((t) => t.mode === 2 && sameChain(t.chain, leader.chain))) {
    return threads.map((_, i) => (i === 0 ? { seccompMode: SeccompMode.filter, seccompFilter: table.add(leader.chain, true) } : {}));
  }
  return threads.map((t) => {
    if (t.mode === 0) return {};
    if (t.mode === 1) return { seccompMode: SeccompMode.strict };
    return { seccompMode: SeccompMode.filter, seccompFilter: table.add(t.chain) };
  });
}

/** The indices of a thread's filters in seccomp.img, oldest first ([] without filters). */
export function filterChain(th: ThreadCoreEntry | undefined, filters: SeccompFilter[]): number[] {
  if (th?.seccompMode !== SeccompMode.filter) return [];
  const chain: number[] = [];
  // proto2 optional: an unset `prev` reads as 0, so ask whether it is set.
  for (let i: number | undefined = th.seccompFilter; i !== undefined; ) {
    const f: SeccompFilter | undefined = filters[i];
    if (!f) throw new Error(`seccomp.img has no filter ${i}`);
    chain.push(i);
    if (chain.length > filters.length) throw new Error('seccomp.img: filter chain loops');
    i = isFieldSet(f, SeccompFilterSchema.field.prev) ? f.prev : undefined;
  }
  return chain;
}

const sameFilter = (a: SeccompFilter, b: SeccompFilter): boolean =>
  ((a.flags ?? 0) & ~SECCOMP_FILTER_FLAG_TSYNC) === ((b.flags ?? 0) & ~SECCOMP_FILTER_FLAG_TSYNC) && Buffer.from(a.filter).equals(Buffer.from(b.filter));

/**
 * How many filters of the leader's chain, oldest first, the other threads of
 * its process have too: the leader installs them before it makes its threads,
 * which inherit them. So the threads share the kernel's filter objects as they
 * did (a filter added later with SECCOMP_FILTER_FLAG_TSYNC needs that), and each
 * thread then adds the rest of its own chain. A leader's chain marked TSYNC
 * throughout, with no mode on the other threads, is all of theirs (CRIU's
 * try_use_tsync); else what they have in common is found by content, since CRIU
 * writes a chain for each thread.
 */
export function sharedFilters(leader: ThreadCoreEntry | undefined, others: Array<ThreadCoreEntry | undefined>, filters: SeccompFilter[]): number {
  const first = filterChain(leader, filters);
  if (first.length && first.every((i) => (filters[i]!.flags ?? 0) & SECCOMP_FILTER_FLAG_TSYNC) && others.every((th) => !th?.seccompMode)) return first.length;
  const chains = others.map((th) => filterChain(th, filters));
  let n = 0;
  while (n < first.length && chains.every((c) => c[n] !== undefined && sameFilter(filters[c[n]!]!, filters[first[n]!]!))) n++;
  return n;
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
    // Never TSYNC: the threads get what they share by inheriting it (sharedFilters).
    rem.call('seccomp(SET_MODE_FILTER)', NR.seccomp, SECCOMP_SET_MODE_FILTER, (f.flags ?? 0) & ~SECCOMP_FILTER_FLAG_TSYNC, rem.put(fprog, 2048));
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

export const seccompModule: TaskStateModule = {
  name: 'seccomp',
  // CRIU's layout of filters is one of the whole process, the leader's first.
  dumpThreads(d, threads) {
    const fields = seccompFields(threads.map((t) => readSeccomp(t.tid, t.status)), d.seccomp);
    threads.forEach((t, i) => Object.assign(t.tcore, fields[i]));
  },
  restore: {
    // Filters all threads have in common come from the leader, before the threads exist.
    task: (t) => {
      const th = t.img.core.threadCore;
      t.sharedFilters = sharedFilters(th, [...t.img.threadCores.values()].map((c) => c.threadCore), t.filters);
      installFilters(t.rem, filterChain(th, t.filters).slice(0, t.sharedFilters), t.filters);
    },
    // Before the credentials: installing a filter needs root (or no_new_privs).
    seccomp: (t) => {
      for (const x of t.threads) restoreSeccomp(x.rem, x.core.threadCore, t.filters, t.sharedFilters);
    },
  },
};
