// From argv (plus config files and environment) to a validated action and
// Options, the way CRIU's parse_options() and main() do it, without side
// effects: files are read through `readFile`, nothing is printed. The runner
// in main.ts turns the outcome into output and an exit code.
import { isAbsolute, resolve } from 'node:path';
import { defaultOptions, type Options } from './index.js';
import { applyOption, OPTION_TABLE, type OptionSpec } from './table.js';
import { configFiles, parseConfigText, preParse } from './config.js';
import { Getopt, type GetoptSpec, type LongOption } from './getopt.js';

/** CRIU's actions; `cpuinfo dump` and `cpuinfo check` are two words on the command line. */
export type Action =
  | 'dump'
  | 'pre-dump'
  | 'restore'
  | 'lazy-pages'
  | 'check'
  | 'page-server'
  | 'service'
  | 'swrk'
  | 'dedup'
  | 'cpuinfo-dump'
  | 'cpuinfo-check'
  | 'exec'
  | 'show';

const SIMPLE_ACTIONS: readonly Action[] = [
  'dump', 'pre-dump', 'restore', 'lazy-pages', 'check', 'page-server', 'service', 'swrk', 'dedup', 'exec', 'show',
];

/** A message for the log, emitted once logging is set up (CRIU's pr_warn/pr_info during parsing). */
export interface Note {
  readonly level: 'warn' | 'info';
  readonly text: string;
}

export type ParseOutcome =
  | {
      readonly kind: 'run';
      readonly action: Action;
      /** The action as typed (first word), for messages. */
      readonly command: string;
      readonly opts: Options;
      /** swrk: the descriptor argument. */
      readonly swrkFd?: string;
      readonly notes: readonly Note[];
      /** Long names of the options given (command line and config files). */
      readonly given: ReadonlySet<string>;
    }
  /** No arguments at all: print the short usage, exit 1. */
  | { readonly kind: 'usage' }
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | {
      readonly kind: 'error';
      /** The complete line to print on stderr. */
      readonly line: string;
      /** Follow it with the usage hint. */
      readonly usage: boolean;
      readonly exitCode: number;
    };

export interface ParseEnv {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths are resolved against. */
  readonly cwd: string;
  /** Program name for diagnostics (basename of argv[1]). */
  readonly progName: string;
  /** Contents of a config file, or undefined when it cannot be read. */
  readonly readFile: (path: string) => string | undefined;
}

/** One long name as getopt sees it, and what it means. */
interface LongName {
  readonly spec: OptionSpec;
  readonly on: boolean;
}

/** getopt's view of the option table: short string, long array. */
export function buildGetoptSpec(table: readonly OptionSpec[] = OPTION_TABLE): {
  spec: GetoptSpec;
  names: LongName[];
} {
  let shortOpts = '';
  const longOpts: LongOption[] = [];
  const names: LongName[] = [];
  for (const s of table) {
    if (s.short !== undefined) {
      shortOpts += s.short + (s.arg === 'required' ? ':' : s.arg === 'optional' ? '::' : '');
    }
    const identity = (on: boolean): string => (s.storesFlag ? `flag:${s.prop}=${on ? 1 : 0}` : `val:${s.long}`);
    longOpts.push({ name: s.long, hasArg: s.arg, identity: identity(true) });
    names.push({ spec: s, on: true });
    if (s.negatable) {
      longOpts.push({ name: `no-${s.long}`, hasArg: s.arg, identity: identity(false) });
      names.push({ spec: s, on: false });
    }
  }
  return { spec: { shortOpts, longOpts }, names };
}

const GETOPT = buildGetoptSpec();

type Failure = Extract<ParseOutcome, { kind: 'error' }>;
type Stop = Extract<ParseOutcome, { kind: 'help' | 'version' }>;

const err = (text: string, usage = false, exitCode = 1): Failure => ({
  kind: 'error',
  line: `Error: ${text}`,
  usage,
  exitCode,
});

/**
 * Scan one argument vector into `opts`. Returns the operands, or the outcome
 * that ends parsing (an error, help or version).
 */
function scan(
  argv: readonly string[],
  opts: Options,
  penv: ParseEnv,
  seen: Set<string>,
): string[] | Failure | Stop {
  const g = new Getopt(argv, GETOPT.spec, {
    progName: penv.progName,
    requireOrder: penv.env['POSIXLY_CORRECT'] !== undefined,
  });
  for (let item = g.next(); item !== null; item = g.next()) {
    if (item.kind === 'error') return { kind: 'error', line: item.message, usage: true, exitCode: 1 };
    let spec: OptionSpec;
    let on = true;
    let shown: string;
    if (item.kind === 'short') {
      spec = OPTION_TABLE.find((o) => o.short === item.char)!;
      shown = `-${item.char}`;
    } else {
      const n = GETOPT.names[item.index]!;
      spec = n.spec;
      on = n.on;
      shown = `--${GETOPT.spec.longOpts[item.index]!.name}`;
    }
    seen.add(spec.long);
    const r = applyOption(spec, opts, item.arg, on);
    if (r === undefined) continue;
    if ('stop' in r) return { kind: r.stop };
    if ('badArg' in r) return err(`invalid argument for ${shown}: ${item.arg ?? ''}`);
    return err(r.error, r.usage === true);
  }
  return g.operands;
}

/**
 * Apply a configuration file on top of `opts` (an RPC request's config_file,
 * which overrides the request as in CRIU); returns the options it set.
 */
export function applyConfigText(text: string, path: string, opts: Options, penv: ParseEnv): { error: string } | { seen: Set<string> } {
  const parsed = parseConfigText(text);
  if (!parsed.ok) return { error: `unsupported syntax in configuration file ${path}, line ${parsed.line}` };
  const seen = new Set<string>();
  const r = scan(parsed.args, opts, penv, seen);
  if (!Array.isArray(r)) return { error: r.kind === 'error' ? r.line : `configuration file ${path}: --${r.kind} has no place here` };
  if (r.length) return { error: `configuration file ${path}: unexpected "${r[0]}"` };
  return { seen };
}

/**
 * Parse a command line (without the program name) the way CRIU does:
 * config files first, then argv; then pick the action and validate it.
 */
export function parseCommandLine(argv: readonly string[], penv: ParseEnv): ParseOutcome {
  if (argv.length === 0) return { kind: 'usage' };
  const pre = preParse(argv);
  if (pre.help) return { kind: 'help' };

  const opts = defaultOptions();
  const seen = new Set<string>();
  for (const { path } of configFiles(pre, penv.env)) {
    const text = penv.readFile(path);
    if (text === undefined) continue;
    const parsed = parseConfigText(text);
    if (!parsed.ok) {
      return err(`unsupported syntax in configuration file ${path}, line ${parsed.line} (see criu(8))`);
    }
    const r = scan(parsed.args, opts, penv, seen);
    if (!Array.isArray(r)) return r;
  }
  const scanned = scan(argv, opts, penv, seen);
  if (!Array.isArray(scanned)) return scanned;
  const operands = scanned;

  if (operands.length === 0) return err('command is required', true);
  const command = operands[0]!;
  let action: Action;
  let rest: string[];
  if ((SIMPLE_ACTIONS as readonly string[]).includes(command)) {
    action = command as Action;
    rest = operands.slice(1);
  } else if (command === 'cpuinfo') {
    const sub = operands[1];
    if (sub === undefined) return err('cpuinfo requires an action: dump or check', true);
    if (sub !== 'dump' && sub !== 'check') return err(`unknown cpuinfo sub-command: ${sub}`, true);
    action = sub === 'dump' ? 'cpuinfo-dump' : 'cpuinfo-check';
    rest = operands.slice(2);
  } else {
    return err(`unknown command: ${command}`, true);
  }

  if (action === 'swrk') {
    if (rest.length !== 1) return { kind: 'error', line: `Usage: ${penv.progName} swrk <fd>`, usage: false, exitCode: 1 };
    return { kind: 'run', action, command, opts, swrkFd: rest[0]!, notes: [], given: seen };
  }

  const notes: Note[] = [];
  if (opts.execCmd !== undefined) {
    if (rest.length === 0) return err('--exec-cmd requires a command', true);
    if (action !== 'restore') return err('--exec-cmd is available for the restore command only', true);
    if (opts.restoreDetached) return err('--restore-detached and --exec-cmd cannot be used together', true);
    opts.execCmd = rest;
  } else if (rest.length > 0) {
    return err(`excessive parameter${rest.length > 1 ? 's' : ''} for command ${command}`, true);
  }

  if (opts.stream && !['dump', 'pre-dump', 'restore', 'cpuinfo-dump'].includes(action)) {
    return err(`--stream cannot be used with the ${command} command`, true);
  }
  if (action === 'restore' && opts.restoreDetached && opts.leaveStopped && opts.shellJob) {
    notes.push({ level: 'warn', text: 'a stopped and detached shell job will get SIGHUP from the kernel' });
  }

  const v = validate(action, opts, penv, notes, seen);
  if (v) return v;

  resolvePaths(opts, penv.cwd);
  return { kind: 'run', action, command, opts, notes, given: seen };
}

/** CRIU's check_options() and the per-action checks of its main(). */
function validate(
  action: Action,
  opts: Options,
  penv: ParseEnv,
  notes: Note[],
  seen: ReadonlySet<string>,
): Failure | undefined {
  // No promise here about TCP: inet sockets are refused where a dump meets one.
  if (opts.linkRemap) notes.push({ level: 'info', text: 'unlinked files may be linked back (link remap)' });
  if (opts.logPid && action === 'restore') {
    notes.push({ level: 'warn', text: '--log-pid has no effect: cryo restores every task from its one process and writes one log' });
  }
  if (!opts.deprecated && penv.env['CRIU_DEPRECATED'] !== undefined) {
    notes.push({ level: 'info', text: 'deprecated behaviour allowed by CRIU_DEPRECATED' });
    opts.deprecated = true;
  }

  if (opts.restoreSibling && !opts.restoreDetached) {
    return err('--restore-sibling only makes sense with --restore-detached');
  }
  if (opts.psSocket !== -1) {
    if (opts.address !== undefined || opts.port !== undefined) {
      notes.push({ level: 'warn', text: '--address and --port are ignored when --ps-socket is given' });
    }
    if (opts.psSocket <= 2 && opts.restoreDetached) {
      return err('standard file descriptors will be closed in daemon mode');
    }
  }
  if (opts.mntnsCompatMode && action !== 'restore') {
    return err('option --mntns-compat-mode is only valid on restore');
  }
  if (opts.inheritFd.length > 0 && action !== 'restore') {
    return err('--inherit-fd is only valid on restore');
  }

  switch (action) {
    case 'dump':
      if (opts.tree === undefined) return err('pid not specified');
      break;
    case 'pre-dump':
      if (opts.tree === undefined) return err('pid not specified');
      if (opts.lazyPages) return err('cannot pre-dump with --lazy-pages');
      break;
    case 'restore':
      if (opts.tree !== undefined) notes.push({ level: 'warn', text: '-t is obsolete for restore and ignored' });
      if (seen.has('network-lock')) {
        notes.push({ level: 'warn', text: '--network-lock is ignored on restore' });
        notes.push({ level: 'info', text: 'the network lock method recorded at dump is used' });
      }
      break;
    default:
      break;
  }
  return undefined;
}

/**
 * Make the paths absolute as CRIU sees them after its chdir(work dir): the
 * images and work dirs relative to the caller's cwd (work dir defaults to the
 * images dir), the log file and pidfile relative to the work dir. "-" as log
 * file means stdout and is kept.
 */
export function resolvePaths(opts: Options, cwd: string): void {
  opts.imagesDir = resolve(cwd, opts.imagesDir);
  opts.workDir = resolve(cwd, opts.workDir ?? opts.imagesDir);
  if (opts.logFile !== undefined && opts.logFile !== '-' && !isAbsolute(opts.logFile)) {
    opts.logFile = resolve(opts.workDir, opts.logFile);
  }
  if (opts.pidfile !== undefined && !isAbsolute(opts.pidfile)) {
    opts.pidfile = resolve(opts.workDir, opts.pidfile);
  }
}
