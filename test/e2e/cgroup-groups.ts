// Test cgroups: made by a test on this machine's hybrid layout (v1 controllers
// under /sys/fs/cgroup/NAME, v2 under /sys/fs/cgroup/unified) and removed when
// the test ends, also when it fails. In the memory hierarchy they go below the
// memory cgroup the test process is in (never anywhere else); in the others
// below the root, with names unique to the test process.
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestContext } from 'node:test';
import { signalPid } from './proc.js';

export const CG = '/sys/fs/cgroup';
/** Hierarchy directories under CG, v1 ones then v2. */
export const HIERARCHIES = ['cpu', 'cpuacct', 'cpuset', 'blkio', 'devices', 'freezer', 'memory', 'pids', 'systemd', 'unified'] as const;
export type Hier = (typeof HIERARCHIES)[number];

/** The name /proc/PID/cgroup gives a hierarchy directory. */
export function kernelName(h: Hier): string {
  return h === 'systemd' ? 'name=systemd' : h === 'unified' ? '' : h;
}

/** The group of `pid` in each hierarchy, by the kernel's names. */
export function groupsOf(file: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    m.set(line.slice(a + 1, b), line.slice(b + 1));
  }
  return m;
}

/** The memory cgroup the test process lives in: test groups of memory go below it. */
export const OWN_MEMORY = groupsOf('/proc/self/cgroup').get('memory') ?? '/';

export class Groups {
  /** Directories to remove at the end, made by the test or by cryo. */
  private readonly dirs = new Set<string>();

  constructor(t: TestContext) {
    t.after(() => this.removeAll());
  }

  /** A test group `name` (a path below the hierarchy's base for tests) in h, from the hierarchy's root. */
  static base(h: Hier, name: string): string {
    return h === 'memory' ? `${OWN_MEMORY === '/' ? '' : OWN_MEMORY}/${name}` : `/${name}`;
  }

  static dir(h: Hier, group: string): string {
    return `${CG}/${h}${group}`;
  }

  /** Remove this group (and the groups below it) at the end, if it exists then. */
  track(h: Hier, group: string): string {
    const d = Groups.dir(h, group);
    this.dirs.add(d);
    return d;
  }

  /** Make a group; a cpuset group gets its parent's cpus and mems, without which no task may enter. */
  mk(h: Hier, group: string): string {
    const d = this.track(h, group);
    fs.mkdirSync(d);
    if (h === 'cpuset') {
      const parent = d.slice(0, d.lastIndexOf('/'));
      for (const f of ['cpuset.cpus', 'cpuset.mems']) fs.writeFileSync(`${d}/${f}`, fs.readFileSync(`${parent}/${f}`, 'utf8').trim());
    }
    return d;
  }

  /** Remove every tracked group that exists, deepest first (with the groups below it). */
  async removeAll(): Promise<void> {
    const all: string[] = [];
    const walk = (d: string) => {
      if (!fs.existsSync(d)) return;
      all.push(d);
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(`${d}/${e.name}`);
    };
    for (const d of this.dirs) walk(d);
    // Anything still in them is a test process: it goes first.
    for (const d of all) {
      for (const p of fs.readFileSync(`${d}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        try {
          signalPid(Number(p), 'SIGKILL');
        } catch {
          // gone
        }
      }
      if (fs.existsSync(`${d}/freezer.state`)) fs.writeFileSync(`${d}/freezer.state`, 'THAWED');
      if (fs.existsSync(`${d}/cgroup.freeze`)) fs.writeFileSync(`${d}/cgroup.freeze`, '0');
    }
    for (const d of [...new Set(all)].sort((a, b) => b.length - a.length)) {
      for (let i = 0; ; i++) {
        try {
          fs.rmdirSync(d);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code === 'EBUSY' && i < 100) {
            await sleep(50);
            continue;
          }
          console.error(`cannot remove test cgroup ${d}: ${code}`);
          break;
        }
      }
    }
  }
}

/** Write a cgroup file. */
export function put(h: Hier, group: string, file: string, value: string): void {
  fs.writeFileSync(`${Groups.dir(h, group)}/${file}`, value);
}

/** Read a cgroup file, trimmed. */
export function get(h: Hier, group: string, file: string): string {
  return fs.readFileSync(`${Groups.dir(h, group)}/${file}`, 'utf8').trim();
}
