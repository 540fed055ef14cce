// The podman case of npm run bench: podman (runtime runc) with a busybox image
// imported from a rootfs tarball, a container counting into its /tmp,
// `podman container checkpoint` and `podman container restore` in place, wall
// times of each; runc runs the `criu` first on PATH, a link to BIN. After the
// restore the counter must go on. Everything podman keeps is in a temporary
// dir; its cgroups go below this process's memory cgroup and are removed after.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxRootfs, above, counter } from './runc.mjs';

const IMAGE = 'localhost/cryo-bench-busybox';

/** This process's cgroup of the memory controller (v1): podman's containers go below it. */
function memoryCgroup() {
  return /^\d+:memory:(.*)$/m.exec(fs.readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
}

/** podman to its exit, its stdout; with `quiet` none of our stdio (a detached container would keep it). */
function run(p, args, env, quiet = false) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const c = spawn('podman', [...p.global, ...args], { env, stdio: quiet ? 'ignore' : ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout?.on('data', (d) => (out += d));
    c.stderr?.on('data', (d) => (err += d));
    c.on('exit', (code) => resolve({ code, out: out.trim(), err, ms: performance.now() - t0 }));
  });
}

/** A podman of its own in `base` with the busybox image imported; `close()` removes it all. */
export async function podmanSetup(base) {
  const dir = fs.mkdtempSync(path.join(base, 'podman-'));
  const d = (n) => {
    const x = path.join(dir, n);
    fs.mkdirSync(x, { recursive: true });
    return x;
  };
  const global = ['--root', d('storage'), '--runroot', d('run'), '--tmpdir', d('libpod'), '--runtime', 'runc',
    '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--storage-driver', 'overlay'];
  const hadVarLib = fs.existsSync('/var/lib/containers');
  const cgroupParent = path.posix.join(memoryCgroup(), `cryo-bench-podman-${process.pid}`);
  // The cgroup dirs podman makes on the way there, removed after.
  const made = [];
  for (const h of fs.readdirSync('/sys/fs/cgroup')) {
    let c = path.join('/sys/fs/cgroup', h);
    if (!fs.existsSync(path.join(c, 'cgroup.procs'))) continue;
    for (const part of cgroupParent.split('/').filter(Boolean)) {
      c = path.join(c, part);
      if (!fs.existsSync(c)) made.push(c);
    }
  }
  const p = { dir, global, cgroupParent };
  p.close = async () => {
    await run(p, ['rm', '-f', '-a'], process.env);
    await run(p, ['rmi', '-f', '-a'], process.env);
    for (const c of made.reverse()) if (fs.existsSync(c)) spawnSync('find', [c, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
    if (!hadVarLib) fs.rmSync('/var/lib/containers', { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const root = path.join(dir, 'rootfs');
  busyboxRootfs(root);
  const tarball = path.join(dir, 'rootfs.tar.gz');
  const tar = spawnSync('tar', ['-C', root, '-czf', tarball, '.'], { encoding: 'utf8' });
  if (tar.status !== 0) throw new Error(`tar: ${tar.stderr}`);
  const imp = await run(p, ['import', tarball, IMAGE], process.env);
  if (imp.code !== 0) {
    await p.close();
    throw new Error(`podman import: ${imp.err.trim().split('\n').pop()}`);
  }
  return p;
}

/** One run, checkpoint and restore in place, of a fresh container with `bin` as the criu runc finds; the row's times, or its error. */
export async function benchPodman(p, bin, tag) {
  const binDir = fs.mkdtempSync(path.join(p.dir, `bin-${tag}-`));
  fs.symlinkSync(bin, path.join(binDir, 'criu'));
  const env = { ...process.env, PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}` };
  const name = `cryo-bench-${process.pid}-${tag}`;
  const row = { kind: 'podman' };
  const pidOf = async () => Number((await run(p, ['inspect', '-f', '{{.State.Pid}}', name], env)).out);
  try {
    // This VM lacks CAP_SYS_RESOURCE: podman's default limits would make runc raise RLIMIT_NPROC.
    const started = await run(p, ['run', '-d', '--name', name, '--network', 'none', '--cgroup-parent', p.cgroupParent,
      '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', IMAGE,
      'sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'], env, true);
    if (started.code !== 0) throw new Error(`podman run: exit ${started.code}`);
    const file = `/proc/${await pidOf()}/root/tmp/count`;
    if (!(await above(file, 3, 10_000))) throw new Error('the container does not count');
    const stopped = counter(file);
    const cp = await run(p, ['container', 'checkpoint', name], env);
    if (cp.code !== 0) throw new Error(`podman container checkpoint: ${cp.err.trim().split('\n').pop()}`);
    row.dumpMs = cp.ms;
    const rs = await run(p, ['container', 'restore', name], env, true);
    if (rs.code !== 0) throw new Error(`podman container restore: exit ${rs.code}`);
    row.restoreMs = rs.ms;
    if (!(await above(`/proc/${await pidOf()}/root/tmp/count`, stopped + 2, 10_000))) throw new Error(`the restored container does not count on from ${stopped}`);
    row.intact = true;
  } catch (e) {
    row.error = e.message;
  } finally {
    await run(p, ['rm', '-f', name], env);
    fs.rmSync(binDir, { recursive: true, force: true });
  }
  return row;
}
