// Parser of /proc/PID/smaps (and maps): pure, unit-tested on captured text.

export interface Vma {
  start: bigint;
  end: bigint;
  /** "rwxp" style permissions. */
  perms: string;
  pgoff: bigint;
  dev: string;
  inode: number;
  /** Path or pseudo name ("[heap]", "[stack]", "[vdso]", ""), " (deleted)" kept. */
  name: string;
  /** Two-letter VmFlags from smaps (e.g. "rd", "wr", "gd", "dc"); empty from maps. */
  vmFlags: string[];
  /** Rss in kB from smaps, -1 from maps. */
  rssKb: number;
  /** KernelPageSize in kB from smaps (the huge page size of a hugetlb mapping), -1 from maps. */
  kernelPageKb: number;
}

const HEAD = /^([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][-psS]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$/;

/** Parse /proc/PID/maps or /proc/PID/smaps text. */
export function parseMaps(text: string): Vma[] {
  const out: Vma[] = [];
  let cur: Vma | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = HEAD.exec(line);
    if (m) {
      cur = {
        start: BigInt('0x' + m[1]),
        end: BigInt('0x' + m[2]),
        perms: m[3]!,
        pgoff: BigInt('0x' + m[4]),
        dev: m[5]!,
        inode: Number(m[6]),
        name: m[7] ?? '',
        vmFlags: [],
        rssKb: -1,
        kernelPageKb: -1,
      };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    if (line.startsWith('VmFlags:')) cur.vmFlags = line.slice(8).trim().split(/\s+/).filter(Boolean);
    else if (line.startsWith('Rss:')) cur.rssKb = Number(line.slice(4).trim().split(/\s+/)[0]);
    else if (line.startsWith('KernelPageSize:')) cur.kernelPageKb = Number(line.slice(15).trim().split(/\s+/)[0]);
  }
  return out;
}
