// --help, the short usage and --version, generated from the option table.
import { CHECK_FEATURES, OPTION_TABLE, type HelpGroup, type OptionSpec } from '../options/table.js';
import { CRIU_VERSION, cryoVersion } from '../version.js';

export { CRIU_VERSION, cryoVersion };

/**
 * `--version` output. The first line is CRIU's exact format, which tools
 * (LXC, go-criu users) parse; the second names the implementation.
 */
export function versionText(): string {
  return `Version: ${CRIU_VERSION}\ncryo: ${cryoVersion()}\n`;
}

const COMMANDS: ReadonlyArray<readonly [string, string]> = [
  ['dump', 'checkpoint the process tree rooted at a pid'],
  ['pre-dump', 'copy memory ahead of a dump, to shorten the freeze'],
  ['restore', 'bring a checkpointed tree back'],
  ['check', 'test whether this kernel has what checkpointing needs'],
  ['page-server', 'receive pages from a dump over the network'],
  ['service', 'serve RPC requests on a socket'],
  ['dedup', 'remove pages duplicated across incremental images'],
  ['lazy-pages', 'serve memory to a lazy restore'],
  ['cpuinfo dump', 'save this CPU\'s description into an image'],
  ['cpuinfo check', 'compare this CPU with a saved description'],
];

/** The short usage CRIU prints on a usage error or with no arguments. */
export function shortUsage(prog: string): string {
  const lines = [
    'Usage:',
    `  ${prog} dump|pre-dump -t PID [<options>]`,
    `  ${prog} restore [<options>]`,
    `  ${prog} check [--feature FEAT]`,
    `  ${prog} page-server`,
    `  ${prog} service [<options>]`,
    `  ${prog} dedup`,
    `  ${prog} lazy-pages -D DIR [<options>]`,
    '',
    'Commands:',
    ...COMMANDS.map(([c, h]) => `  ${c.padEnd(15)}${h}`),
  ];
  return lines.join('\n') + '\n';
}

/** The one-line hint that follows a usage error. */
export function usageHint(prog: string): string {
  return `Run '${prog} --help' for the list of options.\n`;
}

const GROUPS: ReadonlyArray<readonly [HelpGroup, string]> = [
  ['generic', 'Dump and restore:'],
  ['external', 'External resources:'],
  ['special', 'Special resources:'],
  ['logging', 'Logging:'],
  ['memory', 'Memory dumping:'],
  ['server', 'Page server and service:'],
  ['check', 'Check:'],
  ['config', 'Configuration files:'],
  ['other', 'Other:'],
];

const HELP_COLUMN = 26;
const WIDTH = 80;

/** `-t|--tree PID`, `-v[N]|--verbosity[=N]`, `   --pidfile FILE`. */
export function optionLabel(o: OptionSpec): string {
  const mv = o.metavar ?? 'ARG';
  let long = `--${o.long}`;
  let short = o.short !== undefined ? `-${o.short}` : '';
  if (o.arg === 'required') long += ` ${mv}`;
  if (o.arg === 'optional') {
    long += `[=${mv}]`;
    if (short) short += `[${mv}]`;
  }
  return short ? `  ${short}|${long}` : `     ${long}`;
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of text.split(' ')) {
    if (cur && cur.length + 1 + word.length > width) {
      out.push(cur);
      cur = word;
    } else {
      cur = cur ? `${cur} ${word}` : word;
    }
  }
  if (cur) out.push(cur);
  return out;
}

function entry(o: OptionSpec): string[] {
  const label = optionLabel(o);
  const pad = ' '.repeat(HELP_COLUMN);
  const body = wrap(o.unsupported && !o.unsupported.partial ? `${o.help} (not supported yet)` : o.help, WIDTH - HELP_COLUMN);
  const lines: string[] = [];
  if (label.length < HELP_COLUMN - 1) {
    lines.push(label.padEnd(HELP_COLUMN) + (body[0] ?? ''));
    body.slice(1).forEach((b) => lines.push(pad + b));
  } else {
    lines.push(label);
    body.forEach((b) => lines.push(pad + b));
  }
  return lines;
}

/** Full --help text. */
export function fullHelp(prog: string): string {
  const out: string[] = [shortUsage(prog).trimEnd(), ''];
  out.push('Boolean options without an argument can also be negated as --no-NAME');
  out.push('(for example --display-stats and --no-display-stats).', '');
  for (const [group, title] of GROUPS) {
    const members = OPTION_TABLE.filter((o) => o.group === group && o.hidden !== true);
    if (members.length === 0) continue;
    out.push(title);
    for (const o of members) {
      out.push(...entry(o));
      if (o.long === 'feature') {
        wrap(CHECK_FEATURES.join(', '), WIDTH - HELP_COLUMN - 2).forEach((l) =>
          out.push(' '.repeat(HELP_COLUMN + 2) + l),
        );
      }
    }
    out.push('');
  }
  return out.join('\n');
}
