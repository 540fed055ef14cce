// The uts namespace of a tree that has one of its own (utsns-N.img, as CRIU):
// its host and domain names, read and set by a thread of cryo's inside it.
import { create, UtsnsEntrySchema, type ImageDir, type UtsnsEntry } from '../images/index.js';
import { ipc, NR, syscall } from '../sys/index.js';
import { CryoError } from '../context.js';

/** struct utsname: six fields of 65 bytes; nodename is the second, domainname the sixth. */
const FIELD = 65;

function field(b: Buffer, i: number): string {
  const f = b.subarray(i * FIELD, (i + 1) * FIELD);
  const end = f.indexOf(0);
  return f.subarray(0, end < 0 ? FIELD : end).toString('utf8');
}

export function dumpUtsNs(nsPath: string, nsId: number, dir: ImageDir): void {
  const b = Buffer.alloc(6 * FIELD);
  ipc.inNamespace(nsPath, 'uts', () => syscall('uname', NR.uname, b));
  dir.write('utsns', [create(UtsnsEntrySchema, { nodename: field(b, 1), domainname: field(b, 5) })], nsId);
}

export function loadUtsNs(dir: ImageDir, nsId: number): UtsnsEntry {
  const e = dir.readOne('utsns', nsId);
  for (const [what, v] of [['nodename', e.nodename], ['domainname', e.domainname]] as const) {
    if (Buffer.byteLength(v) > 64) throw new CryoError(`bad image: ${dir.fileName('utsns', nsId)}: ${what} is longer than 64 bytes`);
  }
  return e;
}

/** Set the names in `nsPath`, the restored root's new uts namespace. */
export function restoreUtsNs(nsPath: string, e: UtsnsEntry): void {
  ipc.inNamespace(nsPath, 'uts', () => {
    const host = Buffer.from(e.nodename);
    const domain = Buffer.from(e.domainname);
    syscall('sethostname', NR.sethostname, host, host.length);
    syscall('setdomainname', NR.setdomainname, domain, domain.length);
  });
}
