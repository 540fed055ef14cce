// A busybox container for the engine tests (runc, podman): a root file system
// of busybox-static, a shell counting into a file of the container's /tmp, and
// the checks that a restored container runs where it should.
import { spawn, spawnSync } from 'node:child_process';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from './harness.js';

export const CRYO_BIN = path.join(ROOT, 'bin/cryo');

/** /bin/busybox and a link for each of its applets, plus the directories runc mounts on. */
export function busyboxRootfs(root: string): void {
  for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp', 'etc']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  const r = runSyncText('/bin/busybox', ['--list']);
  for (const applet of r.split('\n').filter((a) => a && a !== 'busybox')) {
    fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
}

function runSyncText(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The counter every engine test runs: one line a tick into /tmp/NAME of the container. */
export function counterScript(name: string): string {
  return `i=0; while :; do i=$((i+1)); echo $i > /tmp/${name}; sleep 0.2; done`;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to its end (asynchronously: the event loop keeps reaping), stdin /dev/null. */
export function run(cmd: string, args: string[], quiet = false, timeoutMs = 90_000, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // quiet: stdout and stderr /dev/null too (a daemon it starts keeps them).
    const c = spawn(cmd, args, { stdio: quiet ? 'ignore' : ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let stdout = '';
    let stderr = '';
    c.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    c.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', (e) => { clearTimeout(timer); reject(e); });
    c.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/**
 * The counter's value, read through a path (the rootfs from the host); NaN when it cannot be read.
 * The shell's `echo > file` truncates before it writes: an empty read is tried again a few times.
 */
export function readCounter(file: string): number {
  for (let tries = 0; ; tries++) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8').trim();
    } catch {
      return NaN;
    }
    if (text || tries >= 20) return Number(text || 'NaN');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
}

/** Wait until the counter at `file` exceeds `above`; returns its value. */
export async function counterAbove(file: string, above: number, what: string, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = readCounter(file);
    if (v > above) return v;
    if (Date.now() > deadline) throw new Error(`${what}: the counter at ${file} did not go above ${above} (it reads ${v})`);
    await sleep(100);
  }
}

/** The counter does not move for a while (nothing of the container runs). */
export async function counterStill(file: string, what: string): Promise<number> {
  const a = readCounter(file);
  await sleep(700);
  const b = readCounter(file);
  assert.ok(Object.is(a, b), `${what}: the counter at ${file} moved from ${a} to ${b}`);
  // Frozen between the shell's truncate and its write, the file stays empty until the restore.
  return Number.isNaN(a) ? -1 : a;
}

const ns = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

/**
 * The restored container's init: in mount, uts, ipc, net and pid namespaces
 * other than the host's (this test process's), pid 1 in its pid namespace,
 * with `hostname`, and its /tmp/NAME the very file `hostFile` of the rootfs.
 */
export function checkContained(pid: number, hostname: string, name: string, hostFile: string): void {
  for (const kind of ['mnt', 'uts', 'ipc', 'net', 'pid']) {
    assert.notEqual(ns(pid, kind), ns('self', kind), `the restored container (pid ${pid}) is in the host's ${kind} namespace`);
  }
  const nspid = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
  assert.equal(nspid?.at(-1), '1', `the restored container's init is not pid 1 of its pid namespace (NSpid ${nspid?.join(' ')})`);
  const uts = spawnSync('nsenter', ['-t', String(pid), '-u', 'cat', '/proc/sys/kernel/hostname'], { encoding: 'utf8' });
  assert.equal(uts.stdout.trim(), hostname, `hostname of the restored container: ${uts.stderr}`);
  const inside = fs.statSync(`/proc/${pid}/root/tmp/${name}`);
  const outside = fs.statSync(hostFile);
  assert.ok(inside.dev === outside.dev && inside.ino === outside.ino, `the restored container's /tmp/${name} is not ${hostFile} of its rootfs`);
  assert.ok(!fs.existsSync(`/tmp/${name}`), `the container wrote /tmp/${name} on the host`);
}
