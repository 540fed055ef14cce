// The container case of npm run bench: a busybox container of runc (`runc spec`,
// a shell counting into its /tmp), `runc checkpoint` and `runc restore -d` with
// BIN as runc's --criu, wall times of each; after the restore the counter must
// go on from where it stopped. runc's cgroups for it go below this process's own
// (a relative cgroupsPath), and runc deletes them with the container.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A root file system at `root`: busybox-static with a link per applet. */
export function busyboxRootfs(root) {
  for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp', 'etc']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  const list = spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' });
  if (list.status !== 0) throw new Error(`busybox --list: ${list.stderr}`);
  for (const a of list.stdout.split('\n').filter((x) => x && x !== 'busybox')) fs.symlinkSync('busybox', path.join(root, 'bin', a));
}

/** A bundle in `dir`: a busybox rootfs, runc's spec for the counter, its cgroups at `cgroupsPath` (relative: below runc's own). */
export function runcBundle(dir, cgroupsPath) {
  const root = path.join(dir, 'rootfs');
  busyboxRootfs(root);
  const spec = spawnSync('runc', ['spec', '--bundle', dir], { encoding: 'utf8' });
  if (spec.status !== 0) throw new Error(`runc spec: ${spec.stderr}`);
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  c.process.terminal = false;
  c.process.args = ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'];
  c.root.readonly = false;
  c.linux.cgroupsPath = cgroupsPath;
  fs.writeFileSync(file, JSON.stringify(c));
  return path.join(root, 'tmp/count');
}

/** runc to its exit (not its stdio's end: a container started detached keeps runc's stderr). */
function run(args, quiet = false) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    // quiet: no stdio of ours at all (a container run detached keeps runc's: a socket of this network namespace).
    const p = spawn('runc', args, { stdio: quiet ? 'ignore' : ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr?.on('data', (d) => (err += d));
    p.on('exit', (code) => {
      const ms = performance.now() - t0;
      p.stderr?.destroy();
      resolve({ code, err, ms });
    });
  });
}

export function counter(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim() || 'NaN');
  } catch {
    return NaN;
  }
}

export async function above(file, n, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (counter(file) > n) return true;
    await sleep(20);
  }
  return false;
}

/** One checkpoint and restore of a fresh container with `bin` as runc's criu; the row's times, or its error. */
export async function benchRunc(baseDir, bin, tag) {
  const dir = fs.mkdtempSync(path.join(baseDir, `runc-${tag}-`));
  const state = path.join(dir, 'state');
  const id = `cryo-bench-${process.pid}-${tag}`;
  const row = { kind: 'runc' };
  const runc = (args, quiet) => run(['--root', state, ...args], quiet);
  // The container's cgroups below this process's own (runc takes a relative path so).
  const file = runcBundle(dir, id);
  try {
    const started = await runc(['run', '-d', '--bundle', dir, id], true);
    if (started.code !== 0) throw new Error(`runc run: exit ${started.code}`);
    if (!(await above(file, 3, 10_000))) throw new Error('the container does not count');
    const images = path.join(dir, 'images');
    const work = path.join(dir, 'work');
    const cp = await runc(['--criu', bin, 'checkpoint', '--image-path', images, '--work-path', work, id]);
    if (cp.code !== 0) throw new Error(`runc checkpoint: ${cp.err.trim().split('\n').pop()}`);
    row.dumpMs = cp.ms;
    const stopped = counter(file);
    const rs = await runc(['--criu', bin, 'restore', '-d', '--bundle', dir, '--image-path', images, '--work-path', work, id]);
    if (rs.code !== 0) throw new Error(`runc restore: ${rs.err.trim().split('\n').pop()}`);
    row.restoreMs = rs.ms;
    if (!(await above(file, stopped + 2, 10_000))) throw new Error(`the restored container does not count on from ${stopped}`);
    row.intact = true;
  } catch (e) {
    row.error = e.message;
  } finally {
    await runc(['delete', '-f', id]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return row;
}
