// `cryo crit ...` (or bin/cryo invoked as `crit`): CRIU's image tool, with its
// verbs, options and output, plus -F/--fields.
//
//   decode [-i IN] [-o OUT] [--pretty] [-F LIST]   image -> JSON (stdin/stdout by default)
//   encode [-i IN] [-o OUT]                        JSON -> image
//   show IN [--nopl] [-F LIST]                     decode --pretty to stdout
//   info IN                                        magic and entry count
//   x DIR ps|fds|mems|rss                          explore an images directory
//
// Options are parsed as crit's argparse parses them (--opt=value, -oVALUE,
// unambiguous prefixes of long options). Damaged input is one line naming the
// file and the byte offset, exit 1; usage errors exit 2, as argparse does.
import * as fs from 'node:fs';
import { ImageError } from '../images/errors.js';
import { CRIU_VERSION } from '../version.js';
import { Converter } from './convert.js';
import { CritError, usageError } from './errors.js';
import { EXPLORERS, explore, type DirReader, type Explorer } from './explore.js';
import { checkFields, parseFieldList, selectFields } from './fields.js';
import { decodeToJson, encodeFromJson, hasExtra, imageInfo, imageKind, kindSchemas } from './image.js';
import { dumps, parseJson } from './json.js';

/** What crit needs from the outside world; main() passes the real process. */
export interface CritIO {
  /** Reads a whole file; throws the fs error (with its `code`). */
  readFile(path: string): Uint8Array;
  readStdin(): Uint8Array;
  writeFile(path: string, data: string | Uint8Array): void;
  stdout(data: string | Uint8Array): void;
  stderr(text: string): void;
}

interface OptSpec {
  long: string;
  short?: string;
  /** Takes a value. */
  arg: boolean;
}

interface Verb {
  usage: string;
  help: string;
  opts: OptSpec[];
  positionals: string[];
}

const IN = { long: 'in', short: 'i', arg: true };
const OUT = { long: 'out', short: 'o', arg: true };
const FIELDS = { long: 'fields', short: 'F', arg: true };

const VERBS: Record<string, Verb> = {
  decode: {
    usage: 'crit decode [-h] [-i IN] [-o OUT] [--pretty] [-F FIELDS]',
    help: 'convert criu image from binary type to json',
    opts: [IN, OUT, { long: 'pretty', arg: false }, FIELDS],
    positionals: [],
  },
  encode: {
    usage: 'crit encode [-h] [-i IN] [-o OUT]',
    help: 'convert criu image from json type to binary',
    opts: [IN, OUT],
    positionals: [],
  },
  info: { usage: 'crit info [-h] in', help: 'show info about image', opts: [], positionals: ['in'] },
  x: { usage: 'crit x [-h] dir {ps,fds,mems,rss}', help: 'explore image dir', opts: [], positionals: ['dir', 'what'] },
  show: {
    usage: 'crit show [-h] [--nopl] [-F FIELDS] in',
    help: 'convert criu image from binary to human-readable json',
    opts: [{ long: 'nopl', arg: false }, FIELDS],
    positionals: ['in'],
  },
};

const USAGE = 'usage: crit [-h] [--version] {decode,encode,info,x,show} ...\n';

const HELP = `${USAGE}
CRiu Image Tool (cryo)

positional arguments:
  {decode,encode,info,x,show}
    decode    ${VERBS['decode']!.help}
    encode    ${VERBS['encode']!.help}
    info      ${VERBS['info']!.help}
    x         ${VERBS['x']!.help}
    show      ${VERBS['show']!.help}

options:
  -h, --help  show this help message and exit
  --version   show program's version number and exit

  -i, --in IN          input file (stdin by default)
  -o, --out OUT        output file (stdout by default)
  --pretty             multiline with indents and some numerical fields in field-specific format
  -F, --fields LIST    decode, show: print only these fields of each entry, comma-separated;
                       nested fields by their dotted path (tc.comm, vmas.start)
  --nopl               show: do not show entry payloads, only their size
`;

type Parsed = { verb: string; opts: Map<string, string | true>; pos: string[] } | { help: string } | { version: true };

function parseArgs(argv: readonly string[]): Parsed {
  const [first, ...rest] = argv;
  if (first === undefined) throw usageError('the following arguments are required: {decode,encode,info,x,show}');
  if (first === '-h' || first === '--help') return { help: HELP };
  if (first === '--version') return { version: true };
  const verb = VERBS[first];
  if (!verb) {
    if (first.startsWith('-')) throw usageError(`unrecognized arguments: ${first}`);
    throw usageError(`argument: invalid choice: '${first}' (choose from 'decode', 'encode', 'info', 'x', 'show')`);
  }
  const opts = new Map<string, string | true>();
  const pos: string[] = [];
  let onlyPositionals = false;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (onlyPositionals || a === '-' || !a.startsWith('-')) {
      pos.push(a);
      continue;
    }
    if (a === '--') {
      onlyPositionals = true;
      continue;
    }
    if (a === '-h' || a === '--help') return { help: `usage: ${verb.usage}\n\n${verb.help}\n` };
    let spec: OptSpec | undefined;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (eq >= 0) value = a.slice(eq + 1);
      const exact = verb.opts.find((o) => o.long === name);
      const prefixed = verb.opts.filter((o) => o.long.startsWith(name));
      if (!exact && prefixed.length > 1) throw usageError(`ambiguous option: --${name} could match ${prefixed.map((o) => '--' + o.long).join(', ')}`);
      spec = exact ?? prefixed[0];
      if (!spec || name === '') throw usageError(`unrecognized arguments: ${a}`);
      if (!spec.arg && value !== undefined) throw usageError(`argument --${spec.long}: ignored explicit argument '${value}'`);
    } else {
      spec = verb.opts.find((o) => o.short === a[1]);
      if (!spec) throw usageError(`unrecognized arguments: ${a}`);
      if (a.length > 2) {
        if (!spec.arg) throw usageError(`argument -${spec.short}: ignored explicit argument '${a.slice(2)}'`);
        value = a.slice(2);
      }
    }
    if (spec.arg && value === undefined) {
      const next = rest[i + 1];
      if (next === undefined || (next.startsWith('-') && next !== '-')) {
        throw usageError(`argument ${spec.short ? `-${spec.short}/` : ''}--${spec.long}: expected one argument`);
      }
      value = next;
      i++;
    }
    opts.set(spec.long, spec.arg ? value! : true);
  }
  if (pos.length < verb.positionals.length) {
    throw usageError(`${first}: the following arguments are required: ${verb.positionals.slice(pos.length).join(', ')}`);
  }
  if (pos.length > verb.positionals.length) throw usageError(`unrecognized arguments: ${pos.slice(verb.positionals.length).join(' ')}`);
  return { verb: first, opts, pos };
}

function errnoText(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return 'No such file or directory';
  if (code === 'EACCES') return 'Permission denied';
  if (code === 'EISDIR') return 'Is a directory';
  return (e as Error).message;
}

function readInput(io: CritIO, path: string | undefined): { name: string; data: Uint8Array } {
  if (path === undefined || path === '-') return { name: '<stdin>', data: io.readStdin() };
  try {
    return { name: path, data: io.readFile(path) };
  } catch (e) {
    throw new CritError(path, undefined, `cannot read: ${errnoText(e)}`);
  }
}

function writeOutput(io: CritIO, path: string | undefined, data: string | Uint8Array): void {
  if (path === undefined || path === '-') {
    io.stdout(typeof data === 'string' ? data + '\n' : data);
    return;
  }
  try {
    io.writeFile(path, data);
  } catch (e) {
    throw new CritError(path, undefined, `cannot write: ${errnoText(e)}`);
  }
}

function decode(io: CritIO, input: string | undefined, output: string | undefined, pretty: boolean, nopl: boolean, fields: string | undefined): void {
  const tree = fields === undefined ? undefined : parseFieldList(fields);
  const { name, data } = readInput(io, input);
  const conv = new Converter();
  if (tree) {
    const key = imageKind(data, name);
    checkFields(tree, kindSchemas(key), hasExtra(key), name);
  }
  const img = decodeToJson(data, name, { pretty, nopl }, conv);
  if (tree) img.entries = img.entries.map((e) => selectFields(e, tree));
  writeOutput(io, output, dumps(img, pretty ? 4 : undefined));
}

function encode(io: CritIO, input: string | undefined, output: string | undefined): void {
  const { name, data } = readInput(io, input);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new CritError(name, undefined, 'not JSON (not UTF-8 text; encode expects the JSON that decode prints)');
  }
  const bytes = encodeFromJson(parseJson(text, name));
  writeOutput(io, output, bytes);
}

function dirReader(io: CritIO, dir: string): DirReader {
  return (file) => {
    const path = `${dir.replace(/\/+$/, '') || '/'}/${file}`;
    try {
      return io.readFile(path);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw new CritError(path, undefined, `cannot read: ${errnoText(e)}`);
    }
  };
}

/**
 * Runs one crit command line (without the program name); returns the exit code.
 * Never throws.
 */
export function runCrit(argv: readonly string[], io: CritIO): number {
  try {
    const p = parseArgs(argv);
    if ('help' in p) {
      io.stdout(p.help);
      return 0;
    }
    if ('version' in p) {
      io.stdout(`${CRIU_VERSION}\n`);
      return 0;
    }
    const opt = (k: string) => p.opts.get(k) as string | undefined;
    switch (p.verb) {
      case 'decode':
        decode(io, opt('in'), opt('out'), p.opts.has('pretty'), false, opt('fields'));
        break;
      case 'show':
        decode(io, p.pos[0], undefined, true, p.opts.has('nopl'), opt('fields'));
        break;
      case 'encode':
        encode(io, opt('in'), opt('out'));
        break;
      case 'info': {
        const { name, data } = readInput(io, p.pos[0]);
        io.stdout(dumps(imageInfo(data, name), 4) + '\n');
        break;
      }
      case 'x': {
        const [dir, what] = p.pos as [string, string];
        if (!(EXPLORERS as readonly string[]).includes(what)) {
          throw usageError(`argument what: invalid choice: '${what}' (choose from ${EXPLORERS.map((e) => `'${e}'`).join(', ')})`);
        }
        const lines = explore(what as Explorer, dir, dirReader(io, dir), new Converter());
        io.stdout(lines.map((l) => l + '\n').join(''));
        break;
      }
    }
    return 0;
  } catch (e) {
    if (CritError.is(e)) {
      if (e.exitCode === 2) io.stderr(USAGE + `crit: error: ${e.message}\n`);
      else io.stderr(`crit: ${e.message}\n`);
      return e.exitCode;
    }
    if (ImageError.is(e)) {
      io.stderr(`crit: ${e.message}\n`);
      return 1;
    }
    io.stderr(`crit: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** The real process: files, stdin, stdout (a closed pipe ends the output quietly, as `| head` expects). */
export function processCritIO(): CritIO {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  return {
    readFile: (path) => fs.readFileSync(path),
    readStdin: () => fs.readFileSync(0),
    writeFile: (path, data) => fs.writeFileSync(path, data),
    stdout: (data) => void process.stdout.write(data),
    stderr: (text) => void process.stderr.write(text),
  };
}
