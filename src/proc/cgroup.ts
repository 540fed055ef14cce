// /proc/PID/cgroup: one line per hierarchy, "ID:CONTROLLERS:PATH".
//   12:cpu,cpuacct:/lxc/c1     a v1 hierarchy with two controllers
//   1:name=systemd:/user.slice a named v1 hierarchy
//   0::/init.scope             the v2 (unified) hierarchy: no controller name

/** A task's group in one hierarchy: `name` as the kernel prints it, `path` from the hierarchy's root. */
export interface CgroupMember {
  name: string;
  path: string;
}

/**
 * The lines of a cgroup file, sorted by name as CRIU keeps them (so that two
 * tasks in the same groups give equal lists).
 */
export function parseCgroupFile(text: string): CgroupMember[] {
  const out: CgroupMember[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) throw new Error(`cannot parse cgroup line "${line}"`);
    // The path may itself hold colons: it is everything after the second one.
    out.push({ name: line.slice(a + 1, b), path: line.slice(b + 1) });
  }
  return out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

/**
 * The hierarchies of a cgroup file in its own order (the kernel's), each as
 * its controller names: ["cpu", "cpuacct"], ["name=systemd"], [""] for v2.
 */
export function hierarchiesOf(text: string): string[][] {
  const out: string[][] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) throw new Error(`cannot parse cgroup line "${line}"`);
    out.push(line.slice(a + 1, b).split(','));
  }
  return out;
}
