// pycriu (Debian's criu package) as the RPC client of the tests: runs
// test/programs/rpcclient.py, optionally as another user, and reads its JSON lines.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { PROGRAMS_DIR } from './harness.js';

const CLIENT = path.join(PROGRAMS_DIR, 'rpcclient.py');

export type Line = Record<string, unknown>;

/** Run the pycriu client; returns its JSON lines (and a text for failure reports). */
export function client(args: string[], opts: { uid?: number } = {}): { lines: Line[]; text: string } {
  const argv = ['/usr/bin/python3', CLIENT, ...args];
  const cmd = opts.uid === undefined ? argv : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', ...argv];
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  return { lines, text: `client ${args.join(' ')} -> ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}` };
}

/** The outcome line (the one with "success"). */
export const final = (lines: Line[]): Line => lines.find((l) => 'success' in l) ?? {};
