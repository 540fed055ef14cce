// `cryo service`: a unix SOCK_SEQPACKET socket at --address; each connection is
// served by a worker of its own (`cryo swrk 3` with the connection as fd 3), so
// that no state of one request reaches the next, and a crash ends one request.
import { spawn } from 'node:child_process';
import { lstatSync, unlinkSync, writeFileSync, closeSync, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NR, SOCK, trySyscall, sock } from '../sys/index.js';
import { CryoError, type Context } from '../context.js';
import { statusReady } from './server.js';
import { selfCommand, userArgs } from '../self.js';
import { runAction } from '../actions.js';

/** The env var a daemonized service finds its listening socket by. */
const LISTEN_FD_ENV = 'CRYO_SERVICE_FD';
/** Where a daemonized service finds the --status-fd its parent was given. */
const STATUS_FD_ENV = 'CRYO_SERVICE_STATUS_FD';
/** Tells a worker it serves a service connection, not the client that started it. */
export const WORKER_ENV = 'CRYO_RPC_MODE';
/** The service's own options, for its workers (action scripts, config). */
export const BASE_ENV = 'CRYO_RPC_BASE';

/**
 * Bound under a name of its own and renamed once it listens: a client that finds
 * the socket at `path` is never refused (bind makes the file before listen).
 */
function listenAt(path: string): number {
  const fd = sock.socket(1 /* AF_UNIX */, SOCK.SEQPACKET | SOCK.NONBLOCK);
  const tmp = `${path}.${process.pid}`;
  try {
    if (lstatSync(path, { throwIfNoEntry: false })?.isSocket()) unlinkSync(path);
    sock.bindUnix(fd, Buffer.from(tmp));
    sock.listen(fd, 64);
    renameSync(tmp, path);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw new CryoError(`cannot listen on ${path}: ${(e as Error).message}`);
  }
  return fd;
}

export async function runService(ctx: Context): Promise<number> {
  const { opts, log } = ctx;
  const inherited = process.env[LISTEN_FD_ENV];
  const address = resolve(opts.workDir ?? '.', opts.address ?? 'criu_service.socket');
  const lfd = inherited !== undefined ? Number(inherited) : listenAt(address);
  // As CRIU: a request's work dir is its images dir unless the service was given -W.
  const ownWorkDir = opts.workDir !== resolve(opts.imagesDir) ? opts.workDir : undefined;
  const base = JSON.stringify({ ...opts, restoreDetached: false, pidfile: undefined, logFile: undefined, workDir: ownWorkDir });
  if (opts.restoreDetached && inherited === undefined) {
    // --daemon: the service goes on in a process of its own, in a session of its own.
    // The status fd goes along as fd 4: the byte is written once the daemon listens.
    const self = selfCommand();
    const status = opts.statusFd >= 0 ? { fds: [opts.statusFd], env: { [STATUS_FD_ENV]: '4' } } : { fds: [], env: {} };
    const child = spawn(self.file, [...self.args, ...userArgs()], {
      detached: true, stdio: ['ignore', 'ignore', 'ignore', lfd, ...status.fds], env: { ...process.env, [LISTEN_FD_ENV]: '3', ...status.env },
    });
    child.unref();
    if (opts.pidfile) writeFileSync(opts.pidfile, String(child.pid));
    log.info(`service at ${address} runs as pid ${child.pid}`);
    return 0;
  }
  if (opts.pidfile && inherited === undefined) writeFileSync(opts.pidfile, String(process.pid));
  log.info(`service listening at ${address}`);
  statusReady(inherited !== undefined ? Number(process.env[STATUS_FD_ENV] ?? -1) : opts.statusFd);
  runAction(ctx, 'status-ready');
  for (;;) {
    const c = trySyscall(NR.accept4, lfd, 0, 0, SOCK.CLOEXEC);
    if (c === -11 /* EAGAIN */ || c === -4 /* EINTR */) {
      await sleep(20);
      continue;
    }
    if (c < 0) throw new CryoError(`service: accept failed (errno ${-c})`);
    const self = selfCommand();
    const worker = spawn(self.file, [...self.args, 'swrk', '3'], {
      stdio: ['ignore', 'ignore', 'inherit', c], env: { ...process.env, [WORKER_ENV]: 'service', [BASE_ENV]: base },
    });
    worker.on('error', (e) => log.error(`service: cannot start a worker: ${e.message}`));
    closeSync(c);
    log.info(`service: connection handed to worker ${worker.pid}`);
  }
}
