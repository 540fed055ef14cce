// podman 4.3 over runc, with cryo as the criu runc finds first on PATH: a
// busybox image imported from a rootfs tarball (no registry here), its
// container checkpointed and restored in place, then exported with its
// checkpoint and imported under a new name (podman's migration path). The
// counter goes on in the container's own namespaces, on its overlayfs root.
// Everything podman keeps (storage, run and tmp dirs) is in the session dir;
// its cgroups go below this process's memory cgroup; no network (--network none).
import { test, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Session, reapUntilGone, exists } from './harness.js';
import { CRYO_BIN, busyboxRootfs, checkContained, counterAbove, counterScript, readCounter, run } from './containers.js';

const HOSTNAME = 'cryo-podman-box';
const IMAGE = 'localhost/cryo-busybox';

/** This process's cgroup of the memory controller (v1): podman's containers go below it. */
function memoryCgroup(): string {
  const m = /^\d+:memory:(.*)$/m.exec(fs.readFileSync('/proc/self/cgroup', 'utf8'));
  return m?.[1] ?? '/';
}

class Podman {
  readonly global: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cgroupParent: string;
  private readonly pids = new Set<number>();
  private readonly hadVarLib = fs.existsSync('/var/lib/containers');
  /** The cgroup directories podman will make on the way to cgroupParent (where this process is at a hierarchy's root). */
  private readonly madeCgroups: string[] = [];

  constructor(readonly s: Session, readonly counter: string) {
    const d = (n: string) => s.mkdir(n);
    this.global = ['--root', d('storage'), '--runroot', d('run'), '--tmpdir', d('libpod'), '--runtime', 'runc',
      '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--storage-driver', 'overlay'];
    // runc runs "criu" from PATH: cryo's, first.
    const bin = d('bin');
    fs.symlinkSync(process.env['CRYO'] ?? CRYO_BIN, path.join(bin, 'criu'));
    this.env = { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` };
    this.cgroupParent = path.posix.join(memoryCgroup(), `cryo-podman-${process.pid}`);
    for (const h of fs.readdirSync('/sys/fs/cgroup')) {
      let dir = path.join('/sys/fs/cgroup', h);
      if (!fs.existsSync(path.join(dir, 'cgroup.procs'))) continue;
      for (const part of this.cgroupParent.split('/').filter(Boolean)) {
        dir = path.join(dir, part);
        if (!fs.existsSync(dir)) this.madeCgroups.push(dir);
      }
    }
  }

  async podman(args: string[], quiet = false): Promise<{ code: number | null; out: string; stdout: string }> {
    const r = await run('podman', [...this.global, ...args], quiet, 90_000, this.env);
    const out = `$ podman ${args.join(' ')}\n${r.stdout}${r.stderr}`;
    this.s.note(out.trimEnd());
    return { code: r.code, out, stdout: r.stdout };
  }

  async ok(args: string[], quiet = false): Promise<string> {
    const r = await this.podman(args, quiet);
    assert.equal(r.code, 0, r.out + this.s.report());
    // podman goes on after some failures (a checkpoint file it cannot export): none is expected.
    assert.doesNotMatch(r.out, /level=error/, r.out + this.s.report());
    return r.stdout.trim();
  }

  async pidOf(name: string): Promise<number> {
    const st = await this.ok(['inspect', '-f', '{{.State.Status}} {{.State.Pid}}', name]);
    const [status, pid] = st.split(' ');
    assert.equal(status, 'running', `container ${name} is ${status}`);
    this.pids.add(Number(pid));
    return Number(pid);
  }

  /** The counter file of the container whose init is `pid`, from the host. */
  counterFile(pid: number): string {
    return `/proc/${pid}/root/tmp/${this.counter}`;
  }

  async cleanup(): Promise<void> {
    await this.podman(['rm', '-f', '-a']);
    await this.podman(['rmi', '-f', '-a']);
    for (const pid of this.pids) if (exists(pid)) await reapUntilGone(pid, 10_000).catch(() => undefined);
    // podman's cgroups (the containers', conmon's) and the ones made on the way, deepest first.
    for (const dir of [...this.madeCgroups].reverse()) {
      if (fs.existsSync(dir)) spawnSync('find', [dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
    }
    // Its blob-info cache, which ignores --root.
    if (!this.hadVarLib) fs.rmSync('/var/lib/containers', { recursive: true, force: true });
  }
}

async function setup(t: TestContext): Promise<Podman> {
  const s = new Session('podman');
  const p = new Podman(s, `cryo-podman-count-${process.pid}`);
  t.after(async () => {
    await p.cleanup();
    await s.cleanup();
  });
  const root = path.join(s.dir, 'rootfs');
  busyboxRootfs(root);
  const tarball = path.join(s.dir, 'rootfs.tar.gz');
  const tar = spawnSync('tar', ['-C', root, '-czf', tarball, '.'], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  await p.ok(['import', tarball, IMAGE]);
  return p;
}

test('podman: checkpoint and restore in place, then checkpoint --export and restore --import under a new name; the counter goes on in the container', { timeout: 240_000 }, async (t) => {
  const p = await setup(t);
  const name = `cryo-pm-${process.pid}`;
  // This VM lacks CAP_SYS_RESOURCE: podman's default limits would make runc raise RLIMIT_NPROC.
  await p.ok(['run', '-d', '--name', name, '--network', 'none', '--hostname', HOSTNAME, '--cgroup-parent', p.cgroupParent,
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', IMAGE, 'sh', '-c', counterScript(p.counter)], true);
  const pid = await p.pidOf(name);
  await counterAbove(p.counterFile(pid), 3, 'the started container');

  // In place.
  const stopped = readCounter(p.counterFile(pid));
  await p.ok(['container', 'checkpoint', name]);
  await reapUntilGone(pid, 10_000);
  await p.ok(['container', 'restore', name], true);
  const rpid = await p.pidOf(name);
  assert.ok(readCounter(p.counterFile(rpid)) >= stopped, 'the restored counter went back');
  await counterAbove(p.counterFile(rpid), stopped + 2, 'the container restored in place');
  const merged2 = await p.ok(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', name]);
  checkContained(rpid, HOSTNAME, p.counter, path.join(merged2, 'tmp', p.counter));
  assert.match(fs.readFileSync(`/proc/${rpid}/mountinfo`, 'utf8'), /^\S+ \S+ \S+ \/ \/ .* - overlay /m, 'the restored root is not overlayfs');

  // Exported, and imported as another container.
  const archive = path.join(p.s.dir, 'checkpoint.tar');
  const atExport = readCounter(p.counterFile(rpid));
  await p.ok(['container', 'checkpoint', '--export', archive, name]);
  await reapUntilGone(rpid, 10_000);
  const name2 = `${name}-b`;
  await p.ok(['container', 'restore', '--import', archive, '--name', name2], true);
  const ipid = await p.pidOf(name2);
  const back = readCounter(p.counterFile(ipid));
  assert.ok(back >= atExport && back <= atExport + 15, `the imported container's counter reads ${back}, not where it was exported (${atExport})`);
  await counterAbove(p.counterFile(ipid), back + 2, 'the imported container');
  const merged3 = await p.ok(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', name2]);
  checkContained(ipid, HOSTNAME, p.counter, path.join(merged3, 'tmp', p.counter));
});

test('podman: a container run with --uidmap/--gidmap (its root is host uid 100000 in a user namespace of its own) checkpointed and restored in place; the counter goes on in the same maps', { timeout: 240_000 }, async (t) => {
  const p = await setup(t);
  const name = `cryo-pmu-${process.pid}`;
  await p.ok(['run', '-d', '--name', name, '--network', 'none', '--hostname', HOSTNAME, '--cgroup-parent', p.cgroupParent,
    '--uidmap', '0:100000:65536', '--gidmap', '0:100000:65536',
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', IMAGE, 'sh', '-c', counterScript(p.counter)], true);
  const pid = await p.pidOf(name);
  await counterAbove(p.counterFile(pid), 3, 'the started container');
  const maps = (x: number) => ['uid_map', 'gid_map'].map((f) => fs.readFileSync(`/proc/${x}/${f}`, 'utf8').trim().split(/\s+/).join(' '));
  assert.deepEqual(maps(pid), ['0 100000 65536', '0 100000 65536']);
  const stopped = readCounter(p.counterFile(pid));
  await p.ok(['container', 'checkpoint', name]);
  await reapUntilGone(pid, 10_000);
  await p.ok(['container', 'restore', name], true);
  const rpid = await p.pidOf(name);
  assert.ok(readCounter(p.counterFile(rpid)) >= stopped, 'the restored counter went back');
  await counterAbove(p.counterFile(rpid), stopped + 2, 'the restored container');
  assert.deepEqual(maps(rpid), ['0 100000 65536', '0 100000 65536'], 'the restored container has other maps');
  assert.notEqual(fs.readlinkSync(`/proc/${rpid}/ns/user`), fs.readlinkSync('/proc/self/ns/user'));
  const merged = await p.ok(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', name]);
  checkContained(rpid, HOSTNAME, p.counter, path.join(merged, 'tmp', p.counter));
});
