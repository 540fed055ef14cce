// Parser of /proc/PID/fdinfo/N: pure.

export interface FdInfo {
  pos: bigint;
  flags: number;
  mntId: number;
  ino: bigint;
  /** Every other "key: value" line, for the fd kinds that need them. */
  extra: Map<string, string>;
}

export function parseFdinfo(text: string): FdInfo {
  const info: FdInfo = { pos: 0n, flags: 0, mntId: 0, ino: 0n, extra: new Map() };
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1).trim();
    if (k === 'pos') info.pos = BigInt(v);
    else if (k === 'flags') info.flags = parseInt(v, 8);
    else if (k === 'mnt_id') info.mntId = Number(v);
    else if (k === 'ino') info.ino = BigInt(v);
    else info.extra.set(k, v);
  }
  return info;
}

/** The mount id of an fdinfo text (its "mnt_id:" line), NaN where it has none. */
export function fdinfoMntId(text: string): number {
  return Number(/^mnt_id:\s*(\d+)/m.exec(text)?.[1]);
}
