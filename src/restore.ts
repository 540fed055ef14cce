import type { Context } from './context.js';
/** `cryo restore`: returns the process exit code. */
export async function runRestore(_ctx: Context): Promise<number> {
  throw new Error('not implemented');
}
