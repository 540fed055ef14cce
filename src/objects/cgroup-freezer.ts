// --freeze-cgroup PATH on dump, as runc asks for it: the tree is frozen with the
// cgroup freezer (v1 freezer.state, v2 cgroup.freeze) while every task of the
// group is seized, so that none can fork or exit between being listed and being
// held; then the group is thawed and the tasks stop under ptrace. Tasks of the
// group outside the dumped tree are held too until the dump ends (the whole
// container is still), then let go. A group that was frozen before is frozen
// again afterwards.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CryoError, type Logger } from '../context.js';
import { releaseThread, waitForStop } from '../tracer/seize.js';

type State = 'THAWED' | 'FREEZING' | 'FROZEN';

const STEP_MS = 100;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class CgroupFreezer {
  readonly v2: boolean;
  /** The state before cryo froze the group. */
  origin: State = 'THAWED';
  /** Tasks of the group seized by the freeze that are not in the dumped tree. */
  private readonly others = new Set<number>();

  constructor(readonly path: string, private readonly timeoutS: number, private readonly log: Logger) {
    if (existsSync(join(path, 'freezer.state'))) this.v2 = false;
    else if (existsSync(join(path, 'cgroup.freeze'))) this.v2 = true;
    else throw new CryoError(`--freeze-cgroup ${path}: neither freezer.state (v1) nor cgroup.freeze (v2) is there`);
  }

  private get file(): string {
    return join(this.path, this.v2 ? 'cgroup.freeze' : 'freezer.state');
  }

  state(): State {
    const raw = readFileSync(this.file, 'utf8').trim();
    if (!this.v2) {
      if (raw === 'THAWED' || raw === 'FREEZING' || raw === 'FROZEN') return raw;
      throw new CryoError(`${this.file}: unknown freezer state "${raw}"`);
    }
    if (raw === '0') return 'THAWED';
    // cgroup.freeze says what was asked; cgroup.events says whether it is done.
    return /^frozen 1$/m.test(readFileSync(join(this.path, 'cgroup.events'), 'utf8')) ? 'FROZEN' : 'FREEZING';
  }

  private write(s: 'THAWED' | 'FROZEN'): void {
    try {
      writeFileSync(this.file, this.v2 ? (s === 'FROZEN' ? '1' : '0') : s);
    } catch (e) {
      throw new CryoError(`cannot ${s === 'FROZEN' ? 'freeze' : 'thaw'} cgroup ${this.path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }

  /** Freeze the group and wait until every task in it is frozen. */
  freeze(): void {
    const s = this.state();
    this.origin = s === 'FREEZING' ? 'FROZEN' : s;
    if (s === 'FROZEN') return;
    this.write('FROZEN');
    // Checked at once and then ever less often (a freeze usually takes a millisecond).
    const deadline = Date.now() + (this.timeoutS || 10) * 1000;
    for (let i = 1; Date.now() < deadline; i++) {
      if (this.state() === 'FROZEN') {
        this.log.info(`froze cgroup ${this.path} (${this.v2 ? 'v2' : 'v1'}) after ${i} check(s)`);
        return;
      }
      // A v1 freezer can stay FREEZING forever; asking again, or thawing and
      // freezing anew, is what CRIU found to help.
      if (!this.v2 && i % 32 === 31) {
        this.write('THAWED');
        sleepMs(STEP_MS);
      }
      if (!this.v2 && (i % 32 === 9 || i % 32 === 20 || i % 32 === 31)) this.write('FROZEN');
      sleepMs(Math.min(STEP_MS, 1 << Math.min(i - 1, 7)));
    }
    if (this.origin === 'THAWED') this.write('THAWED');
    throw new CryoError(`cannot freeze cgroup ${this.path}: still freezing after ${this.timeoutS || 10} s`);
  }

  /**
   * Thaw once every task is seized: they then stop under ptrace. As CRIU, also a
   * group that was frozen before (release() freezes it again).
   */
  thaw(): void {
    this.write('THAWED');
  }

  /** Every thread of the group and of the groups below it. */
  tids(): number[] {
    const out: number[] = [];
    const walk = (dir: string) => {
      const text = readFileSync(join(dir, this.v2 ? 'cgroup.threads' : 'tasks'), 'utf8');
      for (const l of text.split('\n')) if (l) out.push(Number(l));
      for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) walk(join(dir, d.name));
    };
    walk(this.path);
    return out;
  }

  /** Hold a seized task outside the tree until the end of the dump. */
  hold(tid: number): void {
    try {
      waitForStop(tid);
      this.others.add(tid);
      this.log.warn(`task ${tid} of the freezer cgroup ${this.path} is not in the dumped tree; it waits until the dump ends`);
    } catch (e) {
      this.log.debug(`task ${tid} of the freezer cgroup went away: ${(e as Error).message}`);
    }
  }

  /** The dump ended: let the held tasks go, and freeze the group again if it was frozen. Never throws. */
  release(): void {
    for (const tid of this.others) {
      try {
        releaseThread(tid);
      } catch (e) {
        this.log.warn(`task ${tid}: detach failed: ${(e as Error).message}`);
      }
    }
    this.others.clear();
    if (this.origin === 'FROZEN') {
      try {
        this.write('FROZEN');
      } catch (e) {
        this.log.error((e as Error).message);
      }
    }
  }
}
