// tun/tap devices through /dev/net/tun (linux/if_tun.h): a file of cryo's
// attached to a device by name, the device's settings read and set on it.
// The file serves the network namespace of the thread that opened it.
import { closeSync, openSync } from 'node:fs';
import { syscall, trySyscall } from './libc.js';
import { NR } from './nr.js';

export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_PERSIST = 0x0800;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;

export const IFF_DETACH_QUEUE = 0x0400;
export const IFF_NOFILTER = 0x1000; // TUNGETIFF only: the file has no socket filter (it shares IFF_NO_PI's bit)

const TUNSETIFF = 0x400454ca;
const TUNGETIFF = 0x800454d2;
const TUNSETQUEUE = 0x400454d9;
const TUNSETPERSIST = 0x400454cb;
const TUNSETOWNER = 0x400454cc;
const TUNSETGROUP = 0x400454ce;
const TUNGETSNDBUF = 0x800454d3;
const TUNSETSNDBUF = 0x400454d4;
const TUNGETVNETHDRSZ = 0x800454d7;
const TUNSETVNETHDRSZ = 0x400454d8;
const TUNSETIFINDEX = 0x400454da;
const TUNGETFILTER = 0x801054db;

function ifreq(name: string, flags: number): Buffer {
  const b = Buffer.alloc(40);
  b.write(name, 0, 15);
  b.writeUInt16LE(flags & 0xffff, 16);
  return b;
}

const int = (v = 0): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
};

/** A new /dev/net/tun file, not attached yet (closed by the caller). */
export function openTun(): number {
  return openSync('/dev/net/tun', 'r+');
}

/** TUNSETIFF: attach `fd` to device `name`, made when there is none; `flags` must be the device's (they become its). */
export function attach(fd: number, name: string, flags: number): void {
  syscall(`TUNSETIFF(${name})`, NR.ioctl, fd, TUNSETIFF, ifreq(name, flags));
}

/** The settings of the device `fd` is attached to that netlink does not show. */
export function settings(fd: number): { sndbuf: number; vnethdr: number } {
  const s = int();
  const v = int();
  syscall('TUNGETSNDBUF', NR.ioctl, fd, TUNGETSNDBUF, s);
  syscall('TUNGETVNETHDRSZ', NR.ioctl, fd, TUNGETVNETHDRSZ, v);
  return { sndbuf: s.readInt32LE(0), vnethdr: v.readInt32LE(0) };
}

/** The length of a tap's socket filter (a program in the memory of the task that set it); 0 when none. */
export function filterLength(fd: number): number {
  const f = Buffer.alloc(16); // struct sock_fprog
  syscall('TUNGETFILTER', NR.ioctl, fd, TUNGETFILTER, f);
  return f.readUInt16LE(0);
}

/** A device made again, attached to `fd`: its index first (TUNSETIFINDEX), then TUNSETIFF and its settings; persistent. */
export function makeDevice(fd: number, d: { name: string; index: number; flags: number; owner: number; group: number; sndbuf: number; vnethdr: number }): void {
  syscall('TUNSETIFINDEX', NR.ioctl, fd, TUNSETIFINDEX, int(d.index));
  attach(fd, d.name, d.flags);
  if (d.owner !== -1) syscall('TUNSETOWNER', NR.ioctl, fd, TUNSETOWNER, d.owner);
  if (d.group !== -1) syscall('TUNSETGROUP', NR.ioctl, fd, TUNSETGROUP, d.group);
  syscall('TUNSETSNDBUF', NR.ioctl, fd, TUNSETSNDBUF, int(d.sndbuf));
  syscall('TUNSETVNETHDRSZ', NR.ioctl, fd, TUNSETVNETHDRSZ, int(d.vnethdr));
  syscall('TUNSETPERSIST', NR.ioctl, fd, TUNSETPERSIST, 1);
}

/** Can devices be made with a given index here (TUNSETIFINDEX, as CRIU's check of "tun")? */
export function canSetIndex(): boolean {
  let fd: number;
  try {
    fd = openTun();
  } catch {
    return false;
  }
  try {
    return trySyscall(NR.ioctl, fd, TUNSETIFINDEX, int(13)) >= 0;
  } finally {
    closeSync(fd);
  }
}

/** TUNGETIFF: the device `fd` is attached to and its flags (with IFF_DETACH_QUEUE for a detached queue); undefined when it is attached to none (EBADFD). */
export function attachedTo(fd: number): { name: string; flags: number } | undefined {
  const r = Buffer.alloc(40);
  const n = trySyscall(NR.ioctl, fd, TUNGETIFF, r);
  if (n === -77 /* EBADFD */) return undefined;
  if (n < 0) syscall('TUNGETIFF', NR.ioctl, fd, TUNGETIFF, r);
  return { name: r.subarray(0, 16).toString('latin1').replace(/\0.*$/s, ''), flags: r.readUInt16LE(16) };
}

/** TUNSETQUEUE IFF_DETACH_QUEUE: the queue of `fd` (of a multi-queue device) is detached. */
export function detachQueue(fd: number): void {
  syscall('TUNSETQUEUE', NR.ioctl, fd, TUNSETQUEUE, ifreq('', IFF_DETACH_QUEUE));
}

/** TUNSETSNDBUF: the send buffer of the device's queues. */
export function setSndbuf(fd: number, bytes: number): void {
  syscall('TUNSETSNDBUF', NR.ioctl, fd, TUNSETSNDBUF, int(bytes));
}

/** TUNSETPERSIST: whether the device outlives its last file. */
export function setPersist(fd: number, on: boolean): void {
  syscall('TUNSETPERSIST', NR.ioctl, fd, TUNSETPERSIST, on ? 1 : 0);
}
