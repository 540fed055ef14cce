// --join-ns KIND:{PID|FILE} (CRIU's join_ns): the restored tree goes into an
// existing namespace of that kind instead of one of its own. As CRIU, the root
// enters it before it makes any task, and the namespace is taken as it is:
// whatever the images hold of one of that kind (host name, SysV objects, the
// network's links, clocks) is not put into it.
import { closeSync, openSync } from 'node:fs';
import { AT_FDCWD, CLONE, NR, O, SysError, syscall } from '../sys/index.js';
import { CryoError } from '../context.js';
import type { JoinNs } from '../options/index.js';
import type { Remote } from '../tracer/remote.js';

/** ioctl NS_GET_NSTYPE: _IO(0xb7, 0x3), the CLONE_NEW* flag of a namespace file. */
const NS_GET_NSTYPE = 0xb703;

/** The kinds cryo joins: those a single-threaded root may enter with setns. */
const JOINABLE: Record<string, number> = { net: CLONE.NEWNET, uts: CLONE.NEWUTS, ipc: CLONE.NEWIPC, time: CLONE.NEWTIME };

export interface JoinedNs {
  kind: string;
  flag: number;
  /** The file the root opens: /proc/PID/ns/KIND for a pid, else as given. */
  path: string;
}

/**
 * Check each --join-ns before anything is made: a kind cryo joins, given once,
 * a file that is a namespace of that kind. Returns them with the CLONE_NEW*
 * flags they cover (no new namespace of those kinds is made).
 */
export function checkJoinNs(given: readonly JoinNs[], emptyNs: number): { joined: JoinedNs[]; flags: number } {
  const joined: JoinedNs[] = [];
  let flags = 0;
  for (const j of given) {
    const what = `--join-ns ${j.ns}:${j.nsFile}`;
    const flag = JOINABLE[j.ns];
    if (flag === undefined) throw new CryoError(`${what}: joining a ${j.ns} namespace is not supported yet`);
    if (j.extraOpt !== undefined) throw new CryoError(`${what}: extra options (${j.extraOpt}) are for user namespaces only`);
    if (flags & flag) throw new CryoError(`${what}: a ${j.ns} namespace is given twice`);
    if (flag & emptyNs) throw new CryoError(`${what}: conflicts with --empty-ns ${j.ns}`);
    const path = /^\d+$/.test(j.nsFile) ? `/proc/${j.nsFile}/ns/${j.ns}` : j.nsFile;
    let fd: number;
    try {
      fd = openSync(path, O.RDONLY | O.CLOEXEC);
    } catch (e) {
      throw new CryoError(`${what}: cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      let type: number;
      try {
        type = syscall('ioctl(NS_GET_NSTYPE)', NR.ioctl, fd, NS_GET_NSTYPE);
      } catch (e) {
        if (SysError.is(e)) throw new CryoError(`${what}: ${path} is not a namespace file`);
        throw e;
      }
      if (type !== flag) throw new CryoError(`${what}: ${path} is not a ${j.ns} namespace`);
    } finally {
      closeSync(fd);
    }
    flags |= flag;
    joined.push({ kind: j.ns, flag, path });
  }
  return { joined, flags };
}

/** The root (a seed, nothing of the tree in it yet) enters each namespace given. */
export function enterJoinedNs(rem: Remote, joined: readonly JoinedNs[]): void {
  for (const j of joined) {
    const fd = rem.call(`open(${j.path})`, NR.openat, AT_FDCWD, rem.put(Buffer.from(`${j.path}\0`)), O.RDONLY | O.CLOEXEC, 0);
    try {
      rem.call(`setns(${j.kind})`, NR.setns, fd, j.flag);
    } finally {
      rem.call('close', NR.close, fd);
    }
  }
}
