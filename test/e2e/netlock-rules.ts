// The network lock's traces on this machine, for tests: the iptables and
// ip6tables rules of some connections, the nftables table of a dump, and
// their removal after a test that failed between a dump and its restore.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The lock's iptables and ip6tables rules (as `-S` prints them, after the tool's name) that name one of `ports`. */
export function iptRules(ports: number[]): string[] {
  const out: string[] = [];
  for (const cmd of ['iptables', 'ip6tables']) {
    const r = spawnSync(cmd, ['-w', '-S'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const l of r.stdout.split('\n')) {
      if (/0xc114/.test(l) && ports.some((p) => new RegExp(`--[sd]port ${p}\\b`).test(l))) out.push(`${cmd} ${l}`);
    }
  }
  return out;
}

/** nft's tables named for a dump's run id. */
export function nftTables(runId: string): string[] {
  const r = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.includes(`CRIU-${runId}`));
}

/** inventory.img as upstream CRIU 4.2's crit reads it (Debian's is older than dump_criu_run_id). */
export function inventory(images: string): Record<string, unknown> {
  const py = 'import sys, json; sys.path.insert(0, "/work/criu/lib"); from pycriu import images\n'
    + `print(json.dumps(images.load(open(${JSON.stringify(path.join(images, 'inventory.img'))}, "rb"))["entries"][0]))`;
  const r = spawnSync('/usr/bin/python3', ['-c', py], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** The local ports of the TCP connections in the images. */
function connectionPorts(images: string): number[] {
  const r = spawnSync('/usr/bin/python3', ['/usr/bin/crit', 'decode', '-i', path.join(images, 'files.img')], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) return [];
  const entries = (JSON.parse(r.stdout) as { entries: Array<{ isk?: { proto: number; src_port: number; dst_port?: number } }> }).entries;
  return entries.flatMap((e) => (e.isk && e.isk.proto === 6 && e.isk.dst_port ? [e.isk.src_port] : []));
}

/**
 * Remove what a dump into `images` locked and no restore unlocked (a test
 * that failed in between): its rules and its table. Quiet when there is none.
 */
export function dropLocks(images: string): void {
  if (!fs.existsSync(path.join(images, 'inventory.img'))) return;
  for (const line of iptRules(connectionPorts(images))) {
    const [cmd, ...rule] = line.split(' ');
    if (rule[0] === '-A') spawnSync(cmd!, ['-w', '-D', ...rule.slice(1)], { timeout: 30_000 });
  }
  const runId = String(inventory(images)['dump_criu_run_id'] ?? '');
  if (runId && nftTables(runId).length) spawnSync('nft', ['delete', 'table', 'inet', `CRIU-${runId}`], { timeout: 30_000 });
}
