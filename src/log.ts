// The command-line logger: level from -v, destination from -o.
//
// As in CRIU: messages of level "msg" always go to stdout; everything else
// goes to the log file when -o names one ("-" means stdout), else to stderr.
// From level 3 (info) up each line starts with the time since start,
// `(SS.uuuuuu) `. The log file is created (truncated) with mode 0600. Writes
// are synchronous so that nothing is lost if the process dies.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { LOG_INFO, makeLogger, type Logger } from './context.js';
import type { Options } from './options/index.js';

/** CRIU's timestamp: seconds and microseconds since start, fixed width. */
export function formatTimestamp(elapsedUs: bigint): string {
  const sec = elapsedUs / 1_000_000n;
  const usec = elapsedUs % 1_000_000n;
  const s = `(${sec.toString().padStart(2, '0')}.${usec.toString().padStart(6, '0')}`;
  // CRIU prints into a 12-byte slot: with 100 s or more the last digit gives way.
  return s.slice(0, 10) + ') ';
}

export interface LoggerSinks {
  /** Where log lines go (the log file, or stderr). */
  readonly log: (text: string) => void;
  /** Where "msg" level lines go (stdout). */
  readonly stdout: (text: string) => void;
  /** Microseconds since the logger was made; default: a monotonic clock. */
  readonly clock?: () => bigint;
}

/** A Logger at `level` over the given sinks; each call writes one line. */
export function makeCliLogger(level: number, sinks: LoggerSinks): Logger {
  const start = process.hrtime.bigint();
  const clock = sinks.clock ?? (() => (process.hrtime.bigint() - start) / 1000n);
  const stamped = level >= LOG_INFO;
  const line = (text: string): string => (text.endsWith('\n') ? text : text + '\n');
  const base = makeLogger(level, (text) => sinks.log((stamped ? formatTimestamp(clock()) : '') + line(text)));
  return {
    level,
    msg: (text) => sinks.stdout(line(text)),
    error: base.error,
    warn: base.warn,
    info: base.info,
    debug: base.debug,
  };
}

/** The open log: its Logger, whether it writes to stderr, and how to close it. */
export interface CliLog {
  readonly logger: Logger;
  /** True when log lines already reach stderr (no -o). */
  readonly toStderr: boolean;
  /** The file written, if any. */
  readonly path?: string;
  close(): void;
}

function fdWriter(fd: number): (text: string) => void {
  return (text) => {
    try {
      writeSync(fd, text);
    } catch {
      // A log that cannot be written must not take the operation down.
    }
  };
}

/**
 * Open the log for `opts` (paths already resolved by resolvePaths). Throws
 * the open error when the log file cannot be created.
 */
export function openLog(opts: Options): CliLog {
  const stdout = fdWriter(1);
  if (opts.logFile === undefined) {
    return { logger: makeCliLogger(opts.logLevel, { log: fdWriter(2), stdout }), toStderr: true, close() {} };
  }
  if (opts.logFile === '-') {
    return { logger: makeCliLogger(opts.logLevel, { log: stdout, stdout }), toStderr: false, close() {} };
  }
  const fd = openSync(
    opts.logFile,
    constants.O_CREAT | constants.O_TRUNC | constants.O_WRONLY | constants.O_APPEND,
    0o600,
  );
  let open = true;
  return {
    logger: makeCliLogger(opts.logLevel, { log: fdWriter(fd), stdout }),
    toStderr: false,
    path: opts.logFile,
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
