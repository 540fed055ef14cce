// The `cryo` / `criu` command: parse, set up logging, dispatch the action,
// turn every failure into one line and an exit code.
//
// Exit codes follow CRIU: 0 success, --help and --version; 1 for usage
// errors, bad options and failures; 255 for the actions CRIU itself has
// retired (exec, show).
import { Cleanup } from '../cleanup.js';
import { readFileSync, statSync } from 'node:fs';
import { runCheck } from '../check.js';
import { processCritIO, runCrit } from '../crit/cli.js';
import { CryoError, LOG_DEBUG, type Context } from '../context.js';
import { runDump } from '../dump.js';
import { runPreDump } from '../predump.js';
import { runRestore } from '../restore.js';
import { findRefusal, refusalText } from '../options/support.js';
import { serve } from '../rpc/server.js';
import { runService, WORKER_ENV, BASE_ENV } from '../rpc/service.js';
import { CRIU_VERSION, cryoVersion, fullHelp, shortUsage, usageHint, versionText } from './help.js';
import { openLog } from '../log.js';
import { parseCommandLine, type Action } from '../options/parse.js';
import { progName } from '../self.js';
import { closeInherited } from '../sys/index.js';
import { Kerndat } from '../kerndat.js';

/** What the runner needs from the outside world; main() passes the real process. */
export interface RunIO {
  readonly progName: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Change directory to the work dir, as CRIU does; omitted in tests. */
  readonly chdir?: (dir: string) => void;
  /** Effective uid; when given, non-root needs --unprivileged as in CRIU. */
  readonly geteuid?: () => number;
  /** Replace the action implementations (tests). */
  readonly runners?: Partial<Record<Action, Runner>>;
  /** --close FD: let go of a descriptor inherited from the caller; omitted in tests. */
  readonly closeFd?: (fd: number) => void;
}

/** An action's implementation: returns the exit code. */
export type Runner = (ctx: Context) => Promise<number>;

/** Actions cryo carries out; the others parse and then report that they are not supported yet. */
const RUNNERS: Partial<Record<Action, Runner>> = {
  dump: runDump,
  'pre-dump': runPreDump,
  restore: runRestore,
  check: runCheck,
  service: runService,
};

/** Actions CRIU itself refuses, with its reason. */
const RETIRED: Partial<Record<Action, string>> = {
  exec: 'the "exec" action was removed from CRIU; the Compel library replaces it',
  show: 'the "show" action was removed from CRIU; use "crit decode -i IMAGE --pretty"',
};

function readConfig(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Run one command line (without the program name) and return the exit code.
 * Never throws.
 */
export async function run(argv: readonly string[], io: RunIO): Promise<number> {
  const outcome = parseCommandLine(argv, {
    env: io.env,
    cwd: io.cwd,
    progName: io.progName,
    readFile: readConfig,
  });
  switch (outcome.kind) {
    case 'usage':
      io.stdout(shortUsage(io.progName));
      return 1;
    case 'help':
      io.stdout(fullHelp(io.progName));
      return 0;
    case 'version':
      io.stdout(versionText());
      return 0;
    case 'error':
      io.stderr(outcome.line + '\n');
      if (outcome.usage) io.stderr(usageHint(io.progName));
      return outcome.exitCode;
    case 'run':
      break;
  }

  const { action, command, opts, notes, given } = outcome;
  const fail = (text: string, code = 1): number => {
    io.stderr(`Error: ${text}\n`);
    return code;
  };
  // As CRIU, while parsing: before anything else is opened.
  for (const fd of opts.close) io.closeFd?.(fd);
  // What cryo cannot do yet is refused here, before any task is touched.
  const refused = findRefusal(opts, action, (spec) => given.has(spec.long));

  if (action === 'swrk') {
    if (refused) return fail(refusalText(refused));
    const fd = Number(outcome.swrkFd);
    if (!Number.isInteger(fd) || fd < 0) return fail(`swrk: bad socket fd ${outcome.swrkFd}`);
    // A service's worker serves a stranger: its options come from the service.
    const inService = io.env[WORKER_ENV] === 'service';
    const baseText = inService ? io.env[BASE_ENV] : undefined;
    try {
      const base = baseText ? (JSON.parse(baseText) as typeof opts) : opts;
      await serve(fd, { swrk: !inService, base });
      return 0;
    } catch (e) {
      return fail(describe(e));
    }
  }

  if (io.geteuid !== undefined && io.geteuid() !== 0 && !opts.unprivileged) {
    // CRIU prints this on stdout (pr_msg) and fails.
    io.stdout('Running as non-root requires --unprivileged (see the documentation for its limits)\n');
    return 1;
  }
  if (action !== 'service' && !isDirectory(opts.imagesDir)) {
    return fail(`cannot open the images directory ${opts.imagesDir}`);
  }
  const workDir = opts.workDir!;
  if (!isDirectory(workDir)) return fail(`cannot change to the work directory ${workDir}`);
  io.chdir?.(workDir);

  let log;
  try {
    log = openLog(opts);
  } catch (e) {
    return fail(`cannot create the log file ${opts.logFile}: ${describe(e)}`);
  }
  const logger = log.logger;
  logger.info(`Version: ${CRIU_VERSION} (cryo ${cryoVersion()})`);
  for (const n of notes) logger[n.level](n.text);

  // Report an error as one line on stderr, and in the log file too when
  // there is one; at -v4 the stack frames follow, in the log (which is
  // stderr when there is no -o).
  const report = (text: string, stack?: string): void => {
    if (!log.toStderr) logger.error(text);
    io.stderr(`Error: ${text}\n`);
    if (stack !== undefined && opts.logLevel >= LOG_DEBUG) {
      const frames = stack.split('\n').filter((l) => /^\s+at /.test(l));
      if (frames.length === 0) return;
      if (log.toStderr) io.stderr(frames.join('\n') + '\n');
      else logger.debug(frames.join('\n'));
    }
  };

  try {
    const retired = RETIRED[action];
    if (retired !== undefined) {
      report(retired);
      return 255;
    }
    if (refused) {
      report(refusalText(refused));
      return 1;
    }
    const runner = (io.runners ?? RUNNERS)[action];
    if (runner === undefined) {
      report(`"${action === command ? command : action.replace('-', ' ')}" is not supported yet`);
      return 1;
    }
    return await runner({ opts, log: logger, kdat: new Kerndat(), cleanup: new Cleanup() });
  } catch (e) {
    if (e instanceof CryoError) {
      report(e.message, e.stack);
      return e.exitCode;
    }
    report(describe(e), e instanceof Error ? e.stack : undefined);
    return 1;
  } finally {
    log.close();
  }
}

/**
 * Entry point for bin/cryo: `main(process.argv.slice(2))`. `cryo crit ...`, or
 * bin/cryo invoked under the name `crit`, is the image tool (src/crit/).
 */
export async function main(argv: string[]): Promise<void> {
  const name = progName();
  if (name === 'crit' || argv[0] === 'crit') {
    process.exitCode = runCrit(name === 'crit' ? argv : argv.slice(1), processCritIO());
    return;
  }
  const code = await run(argv, {
    progName: name,
    env: process.env,
    cwd: process.cwd(),
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    chdir: (d) => process.chdir(d),
    closeFd: (fd) => void closeInherited(fd),
    geteuid: () => process.geteuid?.() ?? 0,
  });
  process.exitCode = code;
}
