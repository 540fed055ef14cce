// A cleanup stack for one dump or restore, as gVisor's pkg/cleanup: each
// allocation pushes its own undo as it is made; a failure runs them all, newest
// first; success runs only what is to be freed either way (cryo's own fds) and
// drops the rest. The pipelines then hold no hand-written release lists.
import type { Logger } from './context.js';

interface Entry {
  what: string;
  /** Run when the operation fails. */
  undo?: () => void;
  /** Run when it succeeds. */
  done?: () => void;
}

export class Cleanup {
  private stack: Entry[] = [];

  /** Undo `what` (a task made, a link created) if the operation fails; nothing on success. */
  onFailure(what: string, undo: () => void): void {
    this.stack.push({ what, undo });
  }

  /** Free `what` (an fd cryo holds for the operation) at its end, whichever way it ends. */
  always(what: string, free: () => void): void {
    this.stack.push({ what, undo: free, done: free });
  }

  /** One thing with an undo for a failure and a different end for success (the frozen tree: thawed, or killed). */
  push(what: string, e: { undo?: () => void; done?: () => void }): void {
    this.stack.push({ what, ...e });
  }

  get size(): number {
    return this.stack.length;
  }

  /** The operation failed: every undo, newest first; one that fails is logged and the others still run. */
  unwind(log: Logger): void {
    this.run('undo', log);
  }

  /** The operation succeeded: what is freed either way, newest first; the undos are dropped. */
  release(log: Logger): void {
    this.run('done', log);
  }

  private run(which: 'undo' | 'done', log: Logger): void {
    const l = this.stack;
    this.stack = [];
    for (const e of l.reverse()) {
      try {
        e[which]?.();
      } catch (err) {
        log.warn(`cleanup: ${e.what}: ${(err as Error).message}`);
      }
    }
  }
}
