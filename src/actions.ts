// Action points of dump and restore (CRIU's action scripts): at each, an RPC
// client that asked for notifications is told and must agree, then the scripts
// of cryo's own command line or config (--action-script) run. A client can
// never name a script: only cryo's own options can.
import { spawnSync } from 'node:child_process';
import { CryoError, type Context } from './context.js';

export type ScriptAction =
  | 'pre-dump' | 'post-dump' | 'pre-restore' | 'post-restore' | 'network-lock' | 'network-unlock'
  | 'setup-namespaces' | 'post-setup-namespaces' | 'pre-resume' | 'post-resume'
  | 'orphan-pts-master' | 'status-ready' | 'query-ext-files';

export interface ActionInfo {
  /** The root of the tree (CRTOOLS_INIT_PID; the pid sent with setup-namespaces and post-restore). */
  rootPid?: number;
  /** An fd passed to the RPC client with the notification (orphan-pts-master). */
  fd?: number;
}

/** Tells an RPC client about an action point; throws when the client says no. */
export type Notifier = (action: ScriptAction, info: ActionInfo) => void;

/** Run the action point: the RPC notification first, then the scripts. Throws CryoError on a refusal. */
export function runAction(ctx: Context, action: ScriptAction, info: ActionInfo = {}): void {
  ctx.log.debug(`action point ${action}`);
  ctx.notify?.(action, info);
  if (action === 'query-ext-files') return; // asked of RPC clients only
  for (const script of ctx.opts.actionScript) {
    const env: Record<string, string | undefined> = {
      ...process.env,
      CRTOOLS_SCRIPT_ACTION: action,
      CRTOOLS_IMAGE_DIR: ctx.opts.imagesDir,
    };
    if (info.rootPid !== undefined) env['CRTOOLS_INIT_PID'] = String(info.rootPid);
    const r = spawnSync(script, [], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.error) throw new CryoError(`action script ${script} (${action}) cannot run: ${r.error.message}`);
    if (r.status !== 0) {
      throw new CryoError(`action script ${script} failed at ${action} (${r.signal ? `signal ${r.signal}` : `exit ${r.status}`})`);
    }
  }
}
