// AIO rings (io_setup), as CRIU keeps them: the ring's VMA is VMA_AREA_AIORING, its
// pages are in the task's pagemap, and mm.img lists it in `aios` with the request
// count io_setup was given. On restore a new ring is made with io_setup, brought
// to the dumped head and tail by completing requests to /dev/null (the kernel's own
// position follows), given the dumped events, and moved to the dumped address with
// mremap, which the kernel allows for AIO rings (the context id is the address).
import { create, AioRingEntrySchema, type AioRingEntry } from '../images/index.js';
import { NR, O, MREMAP, AT_FDCWD, PAGE_SIZE } from '../sys/index.js';
import { MemIO } from '../tracer/memio.js';
import type { Remote } from '../tracer/remote.js';
import { CryoError } from '../context.js';

/** struct aio_ring: id, nr, head, tail, magic, compat, incompat, header_length (u32 each). */
const HEADER = 32;
const EVENT = 32; // struct io_event
const AIO_RING_MAGIC = 0xa10a10a1;
const IOCB_SIZE = 64;
const IOCB_CMD_PWRITE = 1;

interface RingHeader {
  nr: number;
  head: number;
  tail: number;
  magic: number;
  incompat: number;
  headerLength: number;
}

function header(b: Buffer): RingHeader {
  return {
    nr: b.readUInt32LE(4), head: b.readUInt32LE(8), tail: b.readUInt32LE(12), magic: b.readUInt32LE(16),
    incompat: b.readUInt32LE(24), headerLength: b.readUInt32LE(28),
  };
}

/** How many events a ring of `len` bytes holds. */
function eventsIn(len: number): number {
  return Math.floor((len - HEADER) / EVENT);
}

/**
 * The aios entry of the ring at [start, end): the kernel rounds the count asked of
 * io_setup up (at least 4 a CPU, doubled, plus 2, to whole pages), so the count
 * that grows back to this ring is (events - 2) / 2, as CRIU estimates it.
 */
export function aioRingEntry(pid: number, start: bigint, end: bigint): AioRingEntry {
  const len = Number(end - start);
  const mem = new MemIO(pid);
  let h: RingHeader;
  try {
    h = header(mem.read(start, HEADER));
  } finally {
    mem.close();
  }
  const at = `task ${pid}: the AIO ring at 0x${start.toString(16)}`;
  if (len % PAGE_SIZE || h.magic !== AIO_RING_MAGIC || h.headerLength !== HEADER || h.incompat !== 0 || h.nr !== eventsIn(len)) {
    throw new CryoError(`${at} is not a ring cryo knows (magic 0x${h.magic.toString(16)}, ${h.nr} events in ${len} bytes)`);
  }
  if (h.head >= h.nr || h.tail >= h.nr) throw new CryoError(`${at} has head ${h.head} and tail ${h.tail} beyond its ${h.nr} events`);
  return create(AioRingEntrySchema, { id: start, ringLen: len, nrReq: Math.floor((h.nr - 2) / 2) });
}

/**
 * Make the ring `e` again in the task at its address, with `content` (the dumped
 * ring, header and events). The address must be free.
 */
export function restoreAioRing(rem: Remote, e: AioRingEntry, content: Buffer): void {
  const at = `AIO ring at 0x${e.id.toString(16)}`;
  const old = header(content);
  if (content.length !== e.ringLen || old.nr !== eventsIn(e.ringLen) || old.head >= old.nr || old.tail >= old.nr) {
    throw new CryoError(`task ${rem.pid}: the ${at} in the images is damaged (${old.nr} events, head ${old.head}, tail ${old.tail})`);
  }
  const ctxAddr = rem.put(Buffer.alloc(8), 0);
  rem.call('io_setup', NR.io_setup, e.nrReq, ctxAddr);
  const mem = new MemIO(rem.pid);
  try {
    const ctx = mem.read(ctxAddr, 8).readBigUInt64LE(0);
    const now = header(mem.read(ctx, HEADER));
    if (now.nr !== old.nr) {
      rem.call('io_destroy', NR.io_destroy, ctx);
      throw new CryoError(`task ${rem.pid}: io_setup(${e.nrReq}) made a ring of ${now.nr} events, the ${at} had ${old.nr}`);
    }
    if (old.head || old.tail) moveRing(rem, mem, ctx, old);
    // The events; the header keeps the new ring's id and the head and tail just set.
    mem.write(ctx + BigInt(HEADER), content.subarray(HEADER));
    const got = rem.call(`mremap(${at})`, NR.mremap, ctx, e.ringLen, e.ringLen, MREMAP.MAYMOVE | MREMAP.FIXED, e.id);
    if (got !== e.id) throw new CryoError(`task ${rem.pid}: the ${at} moved to 0x${got.toString(16)}`);
  } finally {
    mem.close();
  }
}

/**
 * Bring the new ring's tail (the kernel's and the ring's) to the dumped one by
 * completing writes to /dev/null, which complete at once; a tail below the head
 * means a full turn first. The head is set by hand as the events are "read".
 */
function moveRing(rem: Remote, mem: MemIO, ctx: bigint, old: RingHeader): void {
  const count = old.tail < old.head ? old.nr + old.tail : old.tail;
  const batch = Math.min(count, old.nr - 1, 4096);
  const devNull = rem.call('open(/dev/null)', NR.openat, AT_FDCWD, rem.put(Buffer.from('/dev/null\0'), 0), O.WRONLY | O.CLOEXEC, 0);
  try {
    // One iocb (a one-byte write from the scratch area) named `batch` times.
    const iocbAt = rem.scratch(IOCB_SIZE + 16 + batch * 8) + 16n;
    const iocb = Buffer.alloc(IOCB_SIZE);
    iocb.writeUInt16LE(IOCB_CMD_PWRITE, 16); // aio_lio_opcode
    iocb.writeUInt32LE(Number(devNull), 20); // aio_fildes
    iocb.writeBigUInt64LE(iocbAt, 24); // aio_buf
    iocb.writeBigUInt64LE(1n, 32); // aio_nbytes
    const ptrs = Buffer.alloc(batch * 8);
    for (let i = 0; i < batch; i++) ptrs.writeBigUInt64LE(iocbAt, i * 8);
    mem.write(iocbAt, iocb);
    mem.write(iocbAt + BigInt(IOCB_SIZE), ptrs);
    const head = Buffer.alloc(4);
    for (let done = 0; done < count; ) {
      const n = Number(rem.call('io_submit', NR.io_submit, ctx, Math.min(batch, count - done), iocbAt + BigInt(IOCB_SIZE)));
      if (n <= 0) throw new CryoError(`task ${rem.pid}: io_submit moved the new AIO ring by ${n}`);
      done += n;
      // As io_getevents would, but at once: frees the slots for the next batch.
      head.writeUInt32LE(done < old.head ? done : old.head, 0);
      mem.write(ctx + 8n, head);
    }
  } finally {
    rem.call('close', NR.close, devNull);
  }
}
