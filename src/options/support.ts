// What cryo does with each option: carries it out, accepts it as moot (`inert`,
// with the reason in the table), or refuses it (`unsupported`). A refused option
// fails the command with one line, "--X is not supported yet", before any task
// is touched: the CLI asks right after parsing, the RPC server before it runs
// the request. An option that is given but left at its default (--no-X) asks
// for nothing and passes.
import { defaultOptions, type Options } from './index.js';
import { OPTION_TABLE, type OptionSpec } from './table.js';

/** One refused option: its table entry and what is in effect, as the message names it. */
export interface Refusal {
  readonly spec: OptionSpec;
  /** "--track-mem", "--external veth[eth0]:x". */
  readonly named: string;
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The first unsupported option that `given` says was asked for and that is in
 * effect in `o` for `action`; undefined when cryo can do everything asked.
 */
export function findRefusal(o: Options, action: string, given: (spec: OptionSpec) => boolean): Refusal | undefined {
  const defaults = defaultOptions() as unknown as Record<string, unknown>;
  const values = o as unknown as Record<string, unknown>;
  for (const spec of OPTION_TABLE) {
    const u = spec.unsupported;
    if (u === undefined || !given(spec)) continue;
    if (u.actions ? !u.actions.includes(action) : action === 'check') continue;
    let named: string | undefined;
    if (u.named) named = u.named(o);
    else if (spec.prop !== undefined && !sameValue(values[spec.prop], defaults[spec.prop])) named = `--${spec.long}`;
    if (named !== undefined) return { spec, named };
  }
  return undefined;
}

/** The one line for a refusal. */
export function refusalText(r: Refusal): string {
  return `${r.named} is not supported yet`;
}
