import type { Context } from './context.js';
/** `cryo dump`: returns the process exit code. */
export async function runDump(_ctx: Context): Promise<number> {
  throw new Error('not implemented');
}
