// Files in flight: fds sent with SCM_RIGHTS and still queued in a unix socket.
// Some need a task to finish them (an epoll watches fds of a task), so each file
// has a home task, which dump and restore find alike from the same facts: the
// first task (in pstree order) that holds the file itself, else the home of the
// first socket whose queue carries it, going up through sockets that are
// themselves only in flight.

/** What the home of a file is found from; `T` is how a task is named. */
export interface InflightFacts<T> {
  /** The first task (in pstree order) with an fd of this file id. */
  holder(id: number): T | undefined;
  /** The file ids of the sockets whose queues carry this file, in sk-queues order. */
  carriers(id: number): readonly number[];
}

/** The home task of file `id`, or undefined when no task reaches it (a loop of sockets in flight). */
export function homeOf<T>(id: number, facts: InflightFacts<T>, seen: Set<number> = new Set()): T | undefined {
  const held = facts.holder(id);
  if (held !== undefined) return held;
  seen.add(id);
  for (const c of facts.carriers(id)) {
    if (seen.has(c)) continue;
    const home = homeOf(c, facts, seen);
    if (home !== undefined) return home;
  }
  return undefined;
}

/**
 * carriers() for the queued packets: each file id sent, to the sockets carrying
 * it, sockets in the order of their first packet (as a restore groups
 * sk-queues.img by socket), so that dump and restore agree.
 */
export function carriersOf(packets: Iterable<{ idFor: number; rights: readonly number[] }>): (id: number) => readonly number[] {
  const bySocket = new Map<number, number[]>();
  for (const p of packets) bySocket.set(p.idFor, [...(bySocket.get(p.idFor) ?? []), ...p.rights]);
  const by = new Map<number, number[]>();
  for (const [sk, rights] of bySocket) {
    for (const r of rights) {
      const l = by.get(r) ?? [];
      if (!l.includes(sk)) l.push(sk);
      by.set(r, l);
    }
  }
  return (id) => by.get(id) ?? [];
}

/** The packets of sk-queues.img as restore holds them (by socket), for carriersOf(). */
export function queuedRights(queues: ReadonlyMap<number, ReadonlyArray<{ msg: { scm: Array<{ rights: number[] }> } }>>): Array<{ idFor: number; rights: readonly number[] }> {
  return [...queues].flatMap(([idFor, l]) => l.map(({ msg }) => ({ idFor, rights: msg.scm[0]?.rights ?? [] })));
}

/**
 * The files only in flight (no task holds them), grouped by the pid of their
 * home task; files no task reaches are left out (the checks refuse those that
 * need a home).
 */
export function inflightHomes(
  tasks: ReadonlyArray<{ pid: number; fdinfo?: ReadonlyArray<{ id: number }> }>,
  queues: ReadonlyMap<number, ReadonlyArray<{ msg: { scm: Array<{ rights: number[] }> } }>>,
): Map<number, number[]> {
  const holders = new Map<number, number>();
  for (const t of tasks) for (const f of t.fdinfo ?? []) if (!holders.has(f.id)) holders.set(f.id, t.pid);
  const packets = queuedRights(queues);
  const facts = { holder: (id: number) => holders.get(id), carriers: carriersOf(packets) };
  const out = new Map<number, number[]>();
  for (const id of new Set(packets.flatMap((p) => p.rights))) {
    if (holders.has(id)) continue;
    const home = homeOf(id, facts);
    if (home !== undefined) out.set(home, [...(out.get(home) ?? []), id]);
  }
  return out;
}
