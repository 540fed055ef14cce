// The RPC worker: criu_req in, criu_resp out, one message per packet of a
// SOCK_SEQPACKET socket (CRIU's cr-service.c). `cryo swrk FD` serves the
// client that started it; the service hands each connection to a worker
// started the same way, so nothing of one request lingers into the next.
import { Cleanup } from '../cleanup.js';
import { closeSync, readFileSync, writeSync } from 'node:fs';
import { create, fromBinary, isFieldSet, toBinary } from '@bufbuild/protobuf';
import {
  CriuReqSchema, CriuRespSchema, CriuReqType, CriuVersionSchema, CriuFeaturesSchema, CriuDumpRespSchema,
  CriuRestoreRespSchema, CriuNotifySchema, ImageDir, type CriuReq, type CriuResp,
} from '../images/index.js';
import { MSG, sock, waitpid, EBADRQC, ESRCH } from '../sys/index.js';
import { CryoError, type Context } from '../context.js';
import type { Options } from '../options/index.js';
import type { Notifier } from '../actions.js';
import { openLog } from '../log.js';
import { CRIU_VERSION, cryoVersion } from '../version.js';
import { runDump } from '../dump.js';
import { runPreDump } from '../predump.js';
import { restoreTree } from '../restore.js';
import { runCheck } from '../check.js';
import { probeFeatures } from '../check/features.js';
import { execCommand } from '../sys/exec.js';
import { applyQueriedExternals, optionsFromRpc, RpcOptionsError, type RpcPeer } from './options.js';
import { becomeClient, checkImagesForClient, isPrivileged, readClient, type ClientCreds } from './peer.js';
import { Kerndat, describe } from '../kerndat.js';


export interface ServeEnv {
  /** The client started cryo itself (swrk), rather than connecting to the service. */
  swrk: boolean;
  /** Options of cryo's own command line and config files. */
  base: Options;
  /** A service client without root's full power, whose credentials the worker has taken. */
  restricted?: ClientCreds;
}

function send(sk: number, resp: CriuResp, fd?: number): void {
  sock.sendMsg(sk, toBinary(CriuRespSchema, resp), fd === undefined ? [] : [fd], undefined, MSG.NOSIGNAL);
}

function recv(sk: number): CriuReq | null {
  const pkt = sock.recvPacket(sk);
  if (pkt === null || pkt === 'again') return null;
  try {
    return fromBinary(CriuReqSchema, pkt);
  } catch (e) {
    throw new CryoError(`RPC: a request that does not parse (${(e as Error).message})`);
  }
}

/** An error already written to the request's log. */
class Logged {
  constructor(readonly error: unknown) {}
}

/**
 * A request refused before its log was open (bad options, config_file): the
 * log it names gets the reason too, when the options got as far as naming it.
 */
function logRefusal(e: unknown): void {
  if (e instanceof Logged) return;
  const o = e instanceof RpcOptionsError ? e.partial : undefined;
  if (o?.logFile === undefined || o.logFile === '-') return;
  try {
    const log = openLog(o);
    log.logger.info(`Version: ${CRIU_VERSION} (cryo ${cryoVersion()}), RPC`);
    log.logger.error(describe(e));
    log.close();
  } catch {
    // No log to be had (its directory is gone, or not the client's): the answer still says why.
  }
}

/** As CRIU: cr_errno is set only where it tells the client something (bad options, no such pid, pid taken). */
const fail = (type: CriuReqType, e0: unknown): CriuResp => {
  const e = e0 instanceof Logged ? e0.error : e0;
  const crErrno = e instanceof CryoError ? e.crErrno : 0;
  return create(CriuRespSchema, {
    type, success: false,
    ...(crErrno ? { crErrno } : {}),
    crErrmsg: e instanceof Error ? e.message : String(e),
  });
};

/** The request's options; what does not make options is EBADRQC, as in CRIU. */
function requestOptions(...args: Parameters<typeof optionsFromRpc>): Options {
  try {
    return optionsFromRpc(...args);
  } catch (e) {
    if (e instanceof RpcOptionsError) throw e; // EBADRQC already, and its log named
    throw new CryoError(e instanceof Error ? e.message : String(e), 1, EBADRQC);
  }
}

/** The uids of a live task (real, effective, saved). */
function taskUids(pid: number): number[] {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // none such: the regex below fails
  }
  const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
  if (!m) throw new CryoError(`process ${pid} does not exist`, 1, ESRCH);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** The uids the images would restore (every task's credentials). */
function imageUids(dir: string): number[] {
  const d = ImageDir.open(dir, { write: false });
  try {
    return (d.read('pstree') as Array<{ pid: number }>).flatMap((p) => {
      const c = d.readOne('core', p.pid).threadCore?.creds;
      return c ? [c.uid, c.euid, c.suid] : [];
    });
  } finally {
    d.close();
  }
}

/** A client may act only on processes it could ptrace itself; root on all. */
function permit(peer: RpcPeer, uids: number[], what: string): void {
  if (peer.uid === 0) return;
  if (uids.some((u) => u !== peer.uid)) throw new CryoError(`permission denied: uid ${peer.uid} may not ${what}`);
}

/** Tell the client about an action point and wait for its answer (CRIU's send_criu_rpc_script). */
function notifier(sk: number, o: Options): Notifier {
  return (action, info) => {
    const withPid = action === 'setup-namespaces' || action === 'post-restore';
    send(sk, create(CriuRespSchema, {
      type: CriuReqType.NOTIFY, success: true,
      notify: create(CriuNotifySchema, { script: action, ...(withPid && info.rootPid !== undefined ? { pid: info.rootPid } : {}) }),
    }), info.fd);
    const ack = recv(sk);
    if (!ack) throw new CryoError(`the RPC client went away at ${action}`);
    if (ack.type !== CriuReqType.NOTIFY || !ack.notifySuccess) throw new CryoError(`the RPC client refused ${action}`);
    if (action === 'query-ext-files') applyQueriedExternals(o, ack.opts?.external ?? []);
  };
}

/** Run `fn` with a context whose log goes where the request said. */
async function withContext<T>(o: Options, notify: Notifier | undefined, fn: (ctx: Context) => Promise<T> | T): Promise<T> {
  const log = openLog(o);
  try {
    log.logger.info(`Version: ${CRIU_VERSION} (cryo ${cryoVersion()}), RPC`);
    return await fn({ opts: o, log: log.logger, notify, kdat: new Kerndat(), cleanup: new Cleanup() });
  } catch (e) {
    // The client (runc) points its user at the log: the reason must be in it.
    log.logger.error(describe(e));
    // Where in cryo it failed, for a bug report; the client shows only the line above.
    const frames = e instanceof Error ? (e.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)) : [];
    if (frames.length > 0) log.logger.debug(frames.join('\n'));
    throw new Logged(e);
  } finally {
    log.close();
  }
}

/** Serve one request (notifications included) and send its answer. */
async function serveOne(sk: number, req: CriuReq, peer: RpcPeer, env: ServeEnv): Promise<void> {
  const T = CriuReqType;
  const rpcEnv = { peer, swrk: env.swrk, base: env.base };
  switch (req.type) {
    case T.VERSION: {
      const [major, minor] = CRIU_VERSION.split('.').map(Number);
      send(sk, create(CriuRespSchema, {
        type: T.VERSION, success: true,
        version: create(CriuVersionSchema, { majorNumber: major!, minorNumber: minor!, name: `cryo ${cryoVersion()}` }),
      }));
      return;
    }
    case T.FEATURE_CHECK: {
      const asked = req.features;
      // Answered by the rows of `cryo check`: true only where the kernel can and cryo does.
      const r = new Map(probeFeatures(['mem_dirty_track', 'lazy_pages', 'pidfd_store']).map((f) => [f.name, f.ok]));
      const features = create(CriuFeaturesSchema, {});
      const has = (f: 'memTrack' | 'lazyPages' | 'pidfdStore') => asked !== undefined && isFieldSet(asked, CriuFeaturesSchema.field[f]);
      if (has('memTrack')) features.memTrack = r.get('mem_dirty_track')!;
      if (has('lazyPages')) features.lazyPages = r.get('lazy_pages')!;
      if (has('pidfdStore')) features.pidfdStore = r.get('pidfd_store')!;
      send(sk, create(CriuRespSchema, { type: T.FEATURE_CHECK, success: true, features }));
      return;
    }
    case T.CHECK: {
      try {
        const o = requestOptions(req.opts, rpcEnv, 'check');
        const code = await withContext(o, undefined, (ctx) => runCheck(ctx));
        send(sk, create(CriuRespSchema, { type: T.CHECK, success: code === 0 }));
      } catch (e) {
        logRefusal(e);
        send(sk, fail(T.CHECK, e));
      }
      return;
    }
    case T.DUMP: {
      try {
        const o = requestOptions(req.opts, rpcEnv, 'dump');
        permit(peer, taskUids(o.tree!), `dump process ${o.tree}`);
        await withContext(o, req.opts?.notifyScripts ? notifier(sk, o) : undefined, (ctx) => runDump(ctx));
        // A client that dumped itself without --leave-running is gone: nobody to answer.
        if (o.tree !== peer.pid || o.leaveRunning) {
          send(sk, create(CriuRespSchema, { type: T.DUMP, success: true, dump: create(CriuDumpRespSchema, { restored: false }) }));
        }
      } catch (e) {
        logRefusal(e);
        send(sk, fail(T.DUMP, e));
      }
      return;
    }
    case T.PRE_DUMP: {
      // runc checkpoint --pre-dump: memory saved and tracked, the tree runs on.
      try {
        const o = requestOptions(req.opts, rpcEnv, 'pre-dump');
        permit(peer, taskUids(o.tree!), `pre-dump process ${o.tree}`);
        await withContext(o, req.opts?.notifyScripts ? notifier(sk, o) : undefined, (ctx) => runPreDump(ctx));
        send(sk, create(CriuRespSchema, { type: T.PRE_DUMP, success: true }));
      } catch (e) {
        logRefusal(e);
        send(sk, fail(T.PRE_DUMP, e));
      }
      return;
    }
    case T.RESTORE: {
      let execCmd: Options | undefined;
      try {
        const o = requestOptions(req.opts, rpcEnv, 'restore');
        // As CRIU: the tree is never restored under the worker.
        o.restoreDetached = true;
        if (env.restricted) checkImagesForClient(o.imagesDir, env.restricted);
        else permit(peer, imageUids(o.imagesDir), 'restore processes of another user');
        if (o.execCmd && !env.swrk && peer.uid !== 0) throw new CryoError('exec_cmd is not allowed in the service for this client');
        const pid = await withContext(o, req.opts?.notifyScripts ? notifier(sk, o) : undefined, (ctx) => restoreTree(ctx).rootPid);
        send(sk, create(CriuRespSchema, { type: T.RESTORE, success: true, restore: create(CriuRestoreRespSchema, { pid }) }));
        if (o.execCmd) execCmd = o;
      } catch (e) {
        logRefusal(e);
        send(sk, fail(T.RESTORE, e));
      }
      // After the answer, as CRIU: cryo becomes the command.
      if (execCmd) execAfterRestore(execCmd);
      return;
    }
    case T.WAIT_PID: {
      try {
        const { status } = waitpid(req.pid ?? -1, 0);
        send(sk, create(CriuRespSchema, { type: T.WAIT_PID, success: true, status }));
      } catch (e) {
        send(sk, fail(T.WAIT_PID, e));
      }
      return;
    }
    default:
      send(sk, fail(req.type, new CryoError(`request ${CriuReqType[req.type] ?? req.type} is not supported`)));
  }
}

/** --exec-cmd over RPC: the command's output goes to the log file, as in CRIU. */
function execAfterRestore(o: Options): never {
  execCommand(o.execCmd!, o.logFile && o.logFile !== '-' ? o.logFile : undefined);
}

/** Serve the requests of one connection until the client is done. */
export async function serve(sk: number, env: ServeEnv): Promise<void> {
  const peer = sock.peerCred(sk);
  if (!env.swrk) {
    // Before the request is read: its paths and config file are opened as the client.
    try {
      const client = readClient(sk);
      if (!isPrivileged(client)) {
        becomeClient(client);
        env = { ...env, restricted: client };
      }
    } catch (e) {
      send(sk, fail(CriuReqType.EMPTY, e));
      return;
    }
  }
  for (;;) {
    let req: CriuReq | null;
    try {
      req = recv(sk);
    } catch (e) {
      send(sk, fail(CriuReqType.EMPTY, e));
      return;
    }
    if (!req) return;
    await serveOne(sk, req, peer, env);
    if (!req.keepOpen) return;
  }
}

/** Write the status byte (--status-fd): the service is ready. */
export function statusReady(fd: number): void {
  if (fd < 0) return;
  // As CRIU's status_ready(): one zero byte, then the fd is closed (the caller sees EOF).
  try {
    writeSync(fd, Buffer.from([0]));
  } finally {
    closeSync(fd);
  }
}
