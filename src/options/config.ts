// CRIU configuration files. Each line is one option without its leading
// dashes, optionally followed by one argument, which may be double-quoted;
// `#` starts a comment. Each file becomes an argument vector that goes
// through the same getopt scan as the command line.
//
// Sources, in the order they are applied (later ones override scalars,
// lists accumulate), as CRIU's next_config() walks them:
//   1. /etc/criu/default.conf        unless --no-default-config or --config
//   2. $HOME/.criu/default.conf       likewise; skipped when HOME is unset
//   3. $CRIU_CONFIG_FILE              always, when set
//   4. the file named by --config     when given
//   5. the command line itself
// A file that cannot be opened is skipped without a word, as in CRIU.
import { isCSpace } from './values.js';

export const GLOBAL_CONFIG_FILE = '/etc/criu/default.conf';
export const USER_CONFIG_FILE = '.criu/default.conf';

/**
 * Turn one line of a config file, as getline() returns it (with its newline),
 * into zero, one or two arguments; null when CRIU rejects the line.
 *
 * This follows CRIU's parse_statement() to the byte, including its quirks:
 * the option name ends at the first space (or, when there is none, at the
 * first tab); `#` cuts a value even inside quotes; a value that contains
 * spaces is rejected unless they come before a position CRIU computes from
 * the quote and escape offsets (so `work-dir "/tmp with spaces"` is accepted
 * but some longer quoted paths with spaces are refused, exactly as CRIU
 * refuses them). Where CRIU would read beyond its buffer we read nothing.
 */
export function parseConfigLine(line: string): string[] | null {
  if (line.length === 0) return [];
  let offset = 0;
  while (isCSpace(line[offset]) && line[offset] !== '\n') offset++;
  if (line[offset] === '\n' || line[offset] === '#') return [];

  let input = line.slice(offset);
  const nl = input.indexOf('\n');
  if (nl >= 0) input = input.slice(0, nl);

  let sep = input.indexOf(' ');
  if (sep < 0) sep = input.indexOf('\t');
  if (sep < 0) return ['--' + input];

  const name = '--' + input.slice(0, sep);
  offset = sep + 1;
  while (isCSpace(input[offset])) offset++;
  if (input[offset] === '#') return [name];

  // The value lives in a C buffer; model it as a string where '\0' ends the
  // C string but the bytes after it are still there to be read.
  let buf: string;
  if (input[offset] === '"') {
    offset++;
    const start = offset;
    if (offset >= input.length) return null;
    if (input[offset] === '"') {
      return [name, ''];
    }
    let found = false;
    let search = start + 1;
    buf = '';
    for (;;) {
      const q = input.indexOf('"', search);
      if (q < 0) break;
      search = q + 1;
      if (input[q - 1] === '\\') continue;
      found = true;
      buf = input.slice(start, q);
      offset++;
      const after = input.slice(q + 1);
      if (after.includes(' ')) {
        for (let j = 0; j < after.length - 1; j++) {
          if (after[j] === '#') break;
          if (!isCSpace(after[j])) return null;
        }
      }
      break;
    }
    if (!found) return null;
  } else {
    buf = input.slice(offset);
    const sp = buf.indexOf(' ');
    offset = sp >= 0 ? sp : 0;
  }

  if (buf.includes('\\"')) {
    let out = '';
    let skipped = 0;
    for (let j = 0; j < buf.length; j++) {
      if (buf[j] === '\\' && j + 1 < buf.length && buf[j + 1] === '"') {
        skipped++;
        continue;
      }
      out += buf[j];
    }
    buf = out + '\0' + buf.slice(out.length + 1);
    offset += skipped + 1;
  }

  const cstr = (at: number): string => {
    if (at >= buf.length) return '';
    const end = buf.indexOf('\0', at);
    return end < 0 ? buf.slice(at) : buf.slice(at, end);
  };
  const hash = cstr(0).indexOf('#');
  if (hash >= 0) buf = buf.slice(0, hash) + '\0' + buf.slice(hash + 1);

  const tail = cstr(offset);
  if (tail.includes(' ')) {
    for (let j = 0; j < tail.length - 1; j++) {
      if (!isCSpace(tail[j])) return null;
    }
    const sp = tail.indexOf(' ');
    buf = buf.slice(0, offset + sp) + '\0' + buf.slice(offset + sp + 1);
  }
  return [name, cstr(0)];
}

export type ConfigParse =
  | { readonly ok: true; readonly args: string[] }
  | { readonly ok: false; readonly line: number };

/** Parse a whole config file into arguments (without a program name). */
export function parseConfigText(text: string): ConfigParse {
  const args: string[] = [];
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  for (let i = 0; i < lines.length; i++) {
    const r = parseConfigLine(lines[i]!);
    if (r === null) return { ok: false, line: i + 1 };
    args.push(...r);
  }
  return { ok: true, args };
}

/** What CRIU looks for before parsing anything (its pre_parse()). */
export interface PreParse {
  /** -h or --help appeared as a whole argument, anywhere. */
  readonly help: boolean;
  /** Default config files are off (--no-default-config, or --config given). */
  readonly noDefaultConfig: boolean;
  /** The --config file; undefined also when --config was the last argument. */
  readonly configFile?: string | undefined;
}

/**
 * Scan argv the way CRIU does before getopt: exact `--help`/`-h` wins at once;
 * `--config FILE` and anything containing `--config=` name the config file
 * (and switch the default files off); prefixes such as `--conf` are not seen
 * here, so they are accepted by getopt but read no file, as in CRIU.
 */
export function preParse(argv: readonly string[]): PreParse {
  let noDefaultConfig = false;
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return { help: true, noDefaultConfig, configFile };
    if (a === '--no-default-config') {
      noDefaultConfig = true;
    } else if (a === '--config') {
      configFile = argv[i + 1];
      noDefaultConfig = true;
    } else if (a.includes('--config=')) {
      configFile = a.slice('--config='.length);
      noDefaultConfig = true;
    }
  }
  return { help: false, noDefaultConfig, configFile };
}

/** Where a config file came from. */
export type ConfigOrigin = 'global' | 'user' | 'env' | 'cmdline';

/** The config files to read, in order (before the command line itself). */
export function configFiles(
  pre: PreParse,
  env: Readonly<Record<string, string | undefined>>,
): Array<{ path: string; origin: ConfigOrigin }> {
  const out: Array<{ path: string; origin: ConfigOrigin }> = [];
  if (!pre.noDefaultConfig) {
    out.push({ path: GLOBAL_CONFIG_FILE, origin: 'global' });
    const home = env['HOME'];
    if (home !== undefined) out.push({ path: `${home}/${USER_CONFIG_FILE}`, origin: 'user' });
  }
  const fromEnv = env['CRIU_CONFIG_FILE'];
  if (fromEnv !== undefined) out.push({ path: fromEnv, origin: 'env' });
  if (pre.configFile !== undefined) out.push({ path: pre.configFile, origin: 'cmdline' });
  return out;
}
