// The one context passed down through every layer: options, log, cleanup.
// Nothing in cryo keeps module-level mutable state; everything hangs off this.
import type { Options } from './options/index.js';
import type { Notifier } from './actions.js';
import type { Kerndat } from './kerndat.js';
import type { Cleanup } from './cleanup.js';

/** CRIU's log levels: -v0 messages only, 1 errors, 2 warnings (default), 3 info, 4 debug. */
export const LOG_MSG = 0;
export const LOG_ERROR = 1;
export const LOG_WARN = 2;
export const LOG_INFO = 3;
export const LOG_DEBUG = 4;

export interface Logger {
  readonly level: number;
  msg(text: string): void;
  error(text: string): void;
  warn(text: string): void;
  info(text: string): void;
  debug(text: string): void;
}

export interface Context {
  readonly opts: Options;
  readonly log: Logger;
  /** Set by the RPC server when the client asked for notifications (notify_scripts). */
  readonly notify?: Notifier;
  /** What the kernel can do, each fact probed once when first asked. */
  readonly kdat: Kerndat;
  /** What the running dump or restore has allocated, each with its undo (cleanup.ts). */
  readonly cleanup: Cleanup;
}

/** A logger that drops everything below `level`, writing through `write`. */
export function makeLogger(level: number, write: (line: string) => void): Logger {
  const at = (lvl: number, prefix: string) => (text: string) => {
    if (lvl <= level) write(prefix + text);
  };
  return {
    level,
    msg: at(LOG_MSG, ''),
    error: at(LOG_ERROR, 'Error: '),
    warn: at(LOG_WARN, 'Warn: '),
    info: at(LOG_INFO, ''),
    debug: at(LOG_DEBUG, ''),
  };
}

/** An error meant for the user: printed as one line, never with a stack. */
export class CryoError extends Error {
  override readonly name = 'CryoError';
  /** `crErrno`: what an RPC client is told, as CRIU's set_cr_errno (0: a plain failure). */
  constructor(message: string, readonly exitCode = 1, readonly crErrno = 0) {
    super(message);
  }
}
