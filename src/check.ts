import type { Context } from './context.js';
/** `cryo check`: returns the process exit code. */
export async function runCheck(_ctx: Context): Promise<number> {
  throw new Error('not implemented');
}
