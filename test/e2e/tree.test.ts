// Process trees restored with their own pids by clone3() with set_tid (check feature clone3_set_tid).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Session, critDecodeAll, imagePids, processTree, runningFree, waitFor } from './harness.js';

/** pid, state, ppid, pgid, sid of a task from /proc/PID/stat; undefined when gone. */
function ids(pid: number): { pid: number; state: string; ppid: number; pgid: number; sid: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const f = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  return { pid, state: f[0]!, ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) };
}

/** One line per task of the tree, "pid ppid pgid sid" (plus " zombie"), sorted by pid. */
function layout(root: number): string[] {
  return processTree(root)
    .flatMap((p) => {
      const i = ids(p);
      return i ? [i] : [];
    })
    .sort((a, b) => a.pid - b.pid)
    .map((i) => `pid ${i.pid} ppid ${i.ppid} pgid ${i.pgid} sid ${i.sid}${i.state === 'Z' ? ' zombie' : ''}`);
}

test('tree: sessions, groups, a grandchild and a zombie: dump, restore -d, PASS', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'tree').cycle('tree');
});

test('tree: the restored pids, ppids, sids and pgids are those dumped; the zombie is still a zombie', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'tree-ids');
  const target = await s.start('tree');
  const before = layout(target.pid);
  s.note(`tree before dump:\n  ${before.join('\n  ')}`);
  // root, A, AG, B, C, E and the zombie D
  assert.equal(before.length, 7, `tree before dump:\n${before.join('\n')}${s.report()}`);
  assert.equal(before.filter((l) => l.endsWith(' zombie')).length, 1, s.report());
  const images = s.mkdir();
  await s.dump(target, images);
  const r = await s.restore(images, target);
  const live = before.filter((l) => !l.endsWith(' zombie')).map((l) => Number(l.split(' ')[1]));
  await s.check(
    waitFor('every restored task to run, untraced', () => live.every((p) => runningFree(p)), 5_000),
  );
  const after = layout(r.pid);
  s.note(`tree after restore:\n  ${after.join('\n  ')}`);
  // The root's parent is the test process both times (its spawner, then its subreaper).
  assert.deepEqual(after, before, `the restored tree differs${s.report()}`);
  await s.expectPass(r);
});

test('tree: the images decode with crit; the zombie\'s core holds a wait status (exit 7 = 7 << 8) as CRIU writes it', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'tree-crit');
  const target = await s.start('tree');
  const zombies = layout(target.pid).filter((l) => l.endsWith(' zombie'));
  assert.equal(zombies.length, 1, s.report());
  const zombie = Number(zombies[0]!.split(' ')[1]);
  const images = s.mkdir();
  await s.dump(target, images);
  assert.deepEqual(critDecodeAll(images), [], s.report());
  // CRIU stores the raw wait status of a zombie (restore: a signal if status & 0x7f, else exit(status >> 8)).
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, `core-${zombie}.img`)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `crit decode core-${zombie}.img: ${r.stderr}${s.report()}`);
  const tc = JSON.parse(r.stdout).entries[0].tc as { exit_code: number; task_state: number };
  assert.equal(tc.exit_code, 7 << 8, `zombie ${zombie}: tc.exit_code in the image${s.report()}`);
  // What CRIU's restore needs besides: TASK_DEAD (2) for a zombie, ids-PID.img for every
  // live task, inventory root_ids of the dumper (not the root's, or CRIU sees CLONE_FILES).
  assert.equal(tc.task_state, 2, `zombie ${zombie}: task_state should be TASK_DEAD as CRIU writes it`);
  const decode = (name: string) => JSON.parse(spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, name)], { encoding: 'utf8' }).stdout).entries;
  for (const p of imagePids(images).filter((p) => p !== zombie)) {
    assert.ok(fs.existsSync(path.join(images, `ids-${p}.img`)), `no ids-${p}.img${s.report()}`);
  }
  const rootIds = decode('inventory.img')[0].root_ids as { files_id: number; vm_id: number };
  const ids = decode(`ids-${target.pid}.img`)[0] as { files_id: number; vm_id: number };
  assert.notEqual(rootIds.files_id, ids.files_id, 'inventory root_ids are the root task\'s own');
  assert.notEqual(rootIds.vm_id, ids.vm_id, 'inventory root_ids are the root task\'s own');
});

test('rebuilding a zombie leaves no SIGCHLD pending in its parent', { timeout: 30_000 }, async (t) => {
  const s = Session.for(t, 'sigchld');
  await s.cycle('sigchld');
});
