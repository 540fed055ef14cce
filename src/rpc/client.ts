// A client of the RPC protocol, for programs that drive cryo (or criu) the way
// runc does: `cryo swrk` started on one end of a SOCK_SEQPACKET socketpair, or a
// connection to `cryo service`. Waiting for an answer never blocks node's event
// loop: the socket is polled.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  CriuReqSchema, CriuRespSchema, CriuReqType, CriuOptsSchema, CriuFeaturesSchema, type CriuResp, type CriuFeatures,
} from '../images/index.js';
import { MSG, SOCK, sock } from '../sys/index.js';

export type CriuOptsInit = MessageInitShape<typeof CriuOptsSchema>;

/** Called at each action point when notifications were asked for; false calls the action off. */
export type NotifyHandler = (action: string, pid: number | undefined) => boolean | Promise<boolean>;

export interface CryoClientOptions {
  /** The program to start as `PROGRAM swrk FD` (default: this package's bin/cryo). */
  binary?: string;
  /** Connect to a running `cryo service` at this socket path instead. */
  service?: string;
}

export interface OperationOptions {
  /** Images directory, opened here and passed as images_dir_fd. */
  imagesDir?: string;
  /** Other criu_opts fields. */
  opts?: CriuOptsInit;
  /** Answers notifications (and asks for them: notify_scripts). */
  notify?: NotifyHandler;
}

/** A request the other side answered with success = false. */
export class CryoRpcError extends Error {
  constructor(message: string, readonly errno: number | undefined) {
    super(message);
  }
}

const DEFAULT_BINARY = fileURLToPath(new URL('../../bin/cryo', import.meta.url));

interface Connection {
  fd: number;
  child?: ChildProcess;
}

export class Cryo {
  constructor(private readonly options: CryoClientOptions = {}) {}

  async version(): Promise<{ major: number; minor: number; name?: string }> {
    const r = await this.call(create(CriuReqSchema, { type: CriuReqType.VERSION }));
    return { major: r.version!.majorNumber, minor: r.version!.minorNumber, name: r.version!.name || undefined };
  }

  async check(): Promise<boolean> {
    const r = await this.call(create(CriuReqSchema, { type: CriuReqType.CHECK }), undefined, false);
    return r.success;
  }

  async featureCheck(features: MessageInitShape<typeof CriuFeaturesSchema>): Promise<CriuFeatures> {
    const r = await this.call(create(CriuReqSchema, { type: CriuReqType.FEATURE_CHECK, features: create(CriuFeaturesSchema, features) }));
    return r.features ?? create(CriuFeaturesSchema, {});
  }

  /** Dump the tree rooted at opts.pid (default: the caller). */
  async dump(o: OperationOptions): Promise<{ restored: boolean }> {
    const r = await this.operation(CriuReqType.DUMP, o);
    return { restored: r.dump?.restored ?? false };
  }

  /** Restore the images; returns the restored root's pid. */
  async restore(o: OperationOptions): Promise<{ pid: number }> {
    const r = await this.operation(CriuReqType.RESTORE, o);
    return { pid: r.restore!.pid };
  }

  private async operation(type: CriuReqType, o: OperationOptions): Promise<CriuResp> {
    const dirFd = o.imagesDir !== undefined ? openSync(o.imagesDir, constants.O_RDONLY | constants.O_DIRECTORY) : -1;
    try {
      const opts = create(CriuOptsSchema, { ...o.opts, imagesDirFd: dirFd, ...(o.notify ? { notifyScripts: true } : {}) });
      return await this.call(create(CriuReqSchema, { type, opts }), o.notify);
    } finally {
      if (dirFd >= 0) closeSync(dirFd);
    }
  }

  private connect(): Connection {
    if (this.options.service !== undefined) {
      const fd = sock.socket(1 /* AF_UNIX */, SOCK.SEQPACKET);
      const r = sock.connectUnix(fd, Buffer.from(this.options.service));
      if (r < 0) {
        closeSync(fd);
        throw new CryoRpcError(`cannot connect to ${this.options.service} (errno ${-r})`, -r);
      }
      return { fd };
    }
    const [mine, theirs] = sock.socketpair(SOCK.SEQPACKET);
    const child = spawn(this.options.binary ?? DEFAULT_BINARY, ['swrk', '3'], { stdio: ['ignore', 'ignore', 'inherit', theirs] });
    closeSync(theirs);
    return { fd: mine, child };
  }

  /** One request; notifications are answered until the final response. */
  private async call(req: ReturnType<typeof create<typeof CriuReqSchema>>, notify?: NotifyHandler, mustSucceed = true): Promise<CriuResp> {
    const c = this.connect();
    const exited = c.child ? new Promise((r) => c.child!.once('exit', r)) : Promise.resolve();
    try {
      sock.sendMsg(c.fd, toBinary(CriuReqSchema, req), [], undefined, MSG.NOSIGNAL);
      for (;;) {
        const pkt = sock.recvPacket(c.fd, true);
        if (pkt === 'again') {
          await sleep(2);
          continue;
        }
        if (pkt === null) throw new CryoRpcError(`${CriuReqType[req.type]}: the other side closed the connection`, undefined);
        const resp = fromBinary(CriuRespSchema, pkt);
        if (resp.type === CriuReqType.NOTIFY) {
          const ok = notify ? await notify(resp.notify?.script ?? '', resp.notify?.pid || undefined) : true;
          sock.sendMsg(c.fd, toBinary(CriuReqSchema, create(CriuReqSchema, { type: CriuReqType.NOTIFY, notifySuccess: ok })), [], undefined, MSG.NOSIGNAL);
          continue;
        }
        if (!resp.success && mustSucceed) {
          throw new CryoRpcError(`${CriuReqType[req.type]} failed: ${resp.crErrmsg || `errno ${resp.crErrno}`}`, resp.crErrno);
        }
        return resp;
      }
    } finally {
      closeSync(c.fd);
      await exited;
    }
  }
}
