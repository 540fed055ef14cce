// The raw bytes that follow some entries ("extra" in crit's JSON), shown as
// CRIU's crit shows them (images.py's *_extra_handler classes): pipe and FIFO
// data, socket queues, BPF map data and ghost file contents as base64 lines;
// TCP queues as {"inq", "outq"}; SysV semaphores as a list of numbers; SysV
// message queues as [message, base64 data, ...]; SysV shared memory as base64.
// The codec (images/codec.ts) has already cut the payload to its length.
import type { Message } from '@bufbuild/protobuf';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { IpcMsgSchema } from '../images/gen/ipc-msg_pb.js';
import type { Converter } from './convert.js';
import { typeName } from './convert.js';
import { isObject, type JsonDoc, type JsonObject, type JsonValue } from './json.js';
import { base64Decode, base64Lines, humanReadable } from './pyfmt.js';

/** Where a JSON value is, for errors: `container[key]`, called `where`. */
export interface JsonPlace {
  doc: JsonDoc;
  container: object;
  key: string | number;
  where: string;
}

export interface ExtraHandler {
  /** The JSON of a payload; undefined when the entry shows no "extra". */
  toJson(msg: Message, payload: Uint8Array, conv: Converter): JsonValue | undefined;
  /** The payload bytes of an entry from its "extra" (undefined when absent). */
  fromJson(msg: Message, extra: JsonValue | undefined, at: JsonPlace, conv: Converter): Uint8Array | undefined;
  /** What `crit show --nopl` prints instead of the payload, undefined for nothing. */
  skipped(msg: Message, payload: Uint8Array): string | undefined;
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

function err(at: JsonPlace, detail: string): Error {
  return at.doc.error(`${at.where}: ${detail}`, at.container, at.key);
}

function b64(extra: JsonValue | undefined, at: JsonPlace): Uint8Array {
  if (typeof extra !== 'string') throw err(at, `expected base64 text, got ${typeName(extra)}`);
  const bytes = base64Decode(extra);
  if (!bytes) throw err(at, 'not base64');
  return bytes;
}

function place(at: JsonPlace, container: object, key: string | number, where: string): JsonPlace {
  return { doc: at.doc, container, key, where };
}


/** The payload is the data itself, as base64 (pipes, FIFOs, socket queues, BPF maps). */
const base64Data: ExtraHandler = {
  toJson: (_m, payload) => base64Lines(payload),
  fromJson: (_m, extra, at) => b64(extra, at),
  skipped: (_m, payload) => `... <${humanReadable(payload.length)}>`,
};

const tcpStream: ExtraHandler = {
  toJson(m, payload) {
    const inq = (m as unknown as { inqLen: number }).inqLen;
    const out: JsonObject = {};
    out['inq'] = base64Lines(payload.subarray(0, inq));
    out['outq'] = base64Lines(payload.subarray(inq));
    return out;
  },
  fromJson(m, extra, at) {
    if (!isObject(extra)) throw err(at, `expected {"inq": ..., "outq": ...}, got ${typeName(extra)}`);
    const inq = b64(extra['inq'], place(at, extra, 'inq', `${at.where}.inq`));
    const outq = b64(extra['outq'], place(at, extra, 'outq', `${at.where}.outq`));
    const want = m as unknown as { inqLen: number; outqLen: number };
    if (inq.length !== want.inqLen || outq.length !== want.outqLen) {
      throw err(at, `queues of ${inq.length} and ${outq.length} bytes, inq_len and outq_len say ${want.inqLen} and ${want.outqLen}`);
    }
    return Buffer.concat([inq, outq]);
  },
  skipped: (_m, payload) => `... <${humanReadable(payload.length)}>`,
};

/** ipcns-sem: nsems u16 values, padded to 8 bytes. */
const ipcSem: ExtraHandler = {
  toJson(m, payload) {
    const n = (m as unknown as { nsems: number }).nsems;
    const dv = new DataView(payload.buffer, payload.byteOffset, payload.length);
    return Array.from({ length: n }, (_, i) => dv.getUint16(2 * i, true));
  },
  fromJson(m, extra, at) {
    const n = (m as unknown as { nsems: number }).nsems;
    if (!Array.isArray(extra)) throw err(at, `expected a list of ${n} semaphore values, got ${typeName(extra)}`);
    if (extra.length !== n) throw err(at, `${extra.length} semaphore values, nsems is ${n}`);
    const out = new Uint8Array(roundUp(2 * n, 8));
    const dv = new DataView(out.buffer);
    extra.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) {
        throw err(place(at, extra, i, `${at.where}[${i}]`), `expected a number 0..65535, got ${typeName(v)}`);
      }
      dv.setUint16(2 * i, v, true);
    });
    return out;
  },
  skipped: (m) => `... <${humanReadable(2 * (m as unknown as { nsems: number }).nsems)}>`,
};

/** ipcns-msg: qnum times { u32 length, ipc_msg, msize bytes padded to 8 }. */
const ipcMsg: ExtraHandler = {
  toJson(_m, payload, conv) {
    const out: JsonValue[] = [];
    let off = 0;
    while (off < payload.length) {
      const len = new DataView(payload.buffer, payload.byteOffset + off, 4).getUint32(0, true);
      const msg = fromBinary(IpcMsgSchema, payload.subarray(off + 4, off + 4 + len));
      off += 4 + len;
      out.push(conv.toJson(IpcMsgSchema, msg, false));
      out.push(base64Lines(payload.subarray(off, off + msg.msize)));
      off += roundUp(msg.msize, 8);
    }
    return out;
  },
  fromJson(m, extra, at, conv) {
    const qnum = (m as unknown as { qnum: number }).qnum;
    if (!Array.isArray(extra) || extra.length !== 2 * qnum) {
      throw err(at, `expected a list of ${qnum} messages and their data (${2 * qnum} items), got ${typeName(extra)}${Array.isArray(extra) ? ` of ${extra.length}` : ''}`);
    }
    const parts: Uint8Array[] = [];
    for (let i = 0; i < extra.length; i += 2) {
      const msg = conv.fromJson(IpcMsgSchema, at.doc, extra, i, `${at.where}[${i}]`) as ReturnType<typeof fromBinary<typeof IpcMsgSchema>>;
      const data = b64(extra[i + 1], place(at, extra, i + 1, `${at.where}[${i + 1}]`));
      if (data.length !== msg.msize) throw err(place(at, extra, i + 1, `${at.where}[${i + 1}]`), `${data.length} bytes of data, msize is ${msg.msize}`);
      const body = toBinary(IpcMsgSchema, msg);
      const head = new Uint8Array(4);
      new DataView(head.buffer).setUint32(0, body.length, true);
      parts.push(head, body, data, new Uint8Array(roundUp(msg.msize, 8) - msg.msize));
    }
    return Buffer.concat(parts);
  },
  skipped(_m, payload) {
    // crit counts each message's length and data, without the length words and padding.
    let n = 0;
    let off = 0;
    while (off < payload.length) {
      const len = new DataView(payload.buffer, payload.byteOffset + off, 4).getUint32(0, true);
      const msg = fromBinary(IpcMsgSchema, payload.subarray(off + 4, off + 4 + len));
      n += len + msg.msize;
      off += 4 + len + roundUp(msg.msize, 8);
    }
    return `... <${humanReadable(n)}>`;
  },
};

/** ipcns-shm: `size` bytes padded to 4, unless the contents are in the pagemap (in_pagemaps). */
const ipcShm: ExtraHandler = {
  toJson(m, payload) {
    if ((m as unknown as { inPagemaps: boolean }).inPagemaps) return undefined;
    return base64Lines(payload.subarray(0, Number((m as unknown as { size: bigint }).size)));
  },
  fromJson(m, extra, at) {
    const shm = m as unknown as { inPagemaps: boolean; size: bigint };
    if (shm.inPagemaps) {
      if (extra !== undefined) throw err(at, 'this segment is in the pagemap (in_pagemaps), it has no "extra"');
      return undefined;
    }
    const data = b64(extra, at);
    if (BigInt(data.length) !== shm.size) throw err(at, `${data.length} bytes, size is ${shm.size}`);
    const out = new Uint8Array(roundUp(data.length, 4));
    out.set(data);
    return out;
  },
  skipped: (m) =>
    (m as unknown as { inPagemaps: boolean }).inPagemaps ? undefined : `... <${humanReadable(Number((m as unknown as { size: bigint }).size))}>`,
};

/**
 * ghost-file: a head without chunks is followed by the whole file; with chunks,
 * each chunk entry carries its bytes. `crit show --nopl` shows nothing for them.
 */
const ghostFile: ExtraHandler = {
  toJson(m, payload) {
    if (m.$typeName === 'criu.GhostFileEntry' && (m as unknown as { chunks: boolean }).chunks) return undefined;
    return base64Lines(payload);
  },
  fromJson(m, extra, at) {
    if (m.$typeName === 'criu.GhostFileEntry' && (m as unknown as { chunks: boolean }).chunks) {
      if (extra !== undefined) throw err(at, 'a ghost file head with chunks has no "extra" (its chunks have)');
      return undefined;
    }
    return b64(extra, at);
  },
  skipped: () => undefined,
};

/** Payload handlers by crit's magic name; kinds not listed have no payload. */
export const EXTRA_HANDLERS: Readonly<Record<string, ExtraHandler>> = {
  PIPES_DATA: base64Data,
  FIFO_DATA: base64Data,
  SK_QUEUES: base64Data,
  BPFMAP_DATA: base64Data,
  TCP_STREAM: tcpStream,
  IPCNS_SEM: ipcSem,
  IPCNS_MSG: ipcMsg,
  IPCNS_SHM: ipcShm,
  GHOST_FILE: ghostFile,
};
