// The task-state table: the order a task's restore runs its modules in is the
// order cryo has always had (creds after files, seccomp late, rseq fixups last).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RESTORE_STAGES, TASK_STATE, restoreOrder, restoreStage, type TaskRestore, type TaskStateModule } from '../../src/objects/task-state.js';

test('restore stages run the modules in the order cryo restores them', () => {
  assert.deepEqual(restoreOrder(), [
    'files:fs',
    'task:sigactions', 'task:rlimits', 'task:prctl', 'task:creds', 'task:signals', 'task:mm', 'task:seccomp',
    'threads:timers', 'threads:thread-state',
    'seccomp:seccomp',
    'creds:creds',
    'after-creds:prctl',
    'final:thread-state',
  ]);
});

test('every module has a unique name and a part to play', () => {
  const names = TASK_STATE.map((m) => m.name);
  assert.equal(new Set(names).size, names.length);
  for (const m of TASK_STATE) {
    const restores = Object.keys(m.restore ?? {});
    for (const s of restores) assert.ok((RESTORE_STAGES as readonly string[]).includes(s), `${m.name}: stage ${s}`);
    assert.ok(restores.length || m.dumpTask || m.dumpThread || m.dumpThreads || m.dumpFiles, m.name);
  }
});

test('a stage runs only its own hooks, in table order', () => {
  const ran: string[] = [];
  const mod = (name: string, stages: string[]): TaskStateModule => ({
    name,
    restore: Object.fromEntries(stages.map((s) => [s, () => void ran.push(`${s}:${name}`)])),
  });
  const table = [mod('a', ['task', 'final']), mod('b', ['files', 'task']), mod('c', ['final'])];
  for (const s of RESTORE_STAGES) restoreStage(s, {} as TaskRestore, table);
  assert.deepEqual(ran, ['files:b', 'task:a', 'task:b', 'final:a', 'final:c']);
});
