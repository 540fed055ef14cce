// Memory of another task through /proc/PID/mem: reads and writes any mapping,
// including read-only and PROT_NONE ones (the kernel uses FOLL_FORCE for ptracers).
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

export class MemIO {
  private fd: number;
  constructor(readonly pid: number) {
    this.fd = openSync(`/proc/${pid}/mem`, 'r+');
  }

  read(addr: bigint, len: number): Buffer {
    const b = Buffer.alloc(len);
    this.readInto(addr, b);
    return b;
  }

  /** Fill `buf` from `addr`; throws if the range is not fully readable. */
  readInto(addr: bigint, buf: Uint8Array): void {
    let done = 0;
    while (done < buf.length) {
      // Positions must be Numbers: a BigInt position makes writes fail with EIO.
      const n = readSync(this.fd, buf, done, buf.length - done, Number(addr) + done);
      if (n <= 0) throw new Error(`short read of /proc/${this.pid}/mem at 0x${(addr + BigInt(done)).toString(16)}`);
      done += n;
    }
  }

  write(addr: bigint, buf: Uint8Array): void {
    let done = 0;
    while (done < buf.length) {
      const n = writeSync(this.fd, buf, done, buf.length - done, Number(addr) + done);
      if (n <= 0) throw new Error(`short write to /proc/${this.pid}/mem at 0x${(addr + BigInt(done)).toString(16)}`);
      done += n;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
