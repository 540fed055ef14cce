// A getopt_long that behaves like glibc's (2.26 and later), step for step:
// argument permutation, clustered short flags, required and optional
// arguments, unambiguous prefixes of long options, `--`, and the same
// diagnostics. It knows nothing about CRIU; the option table feeds it.
//
// Errors are values: next() returns { kind: 'error' } where glibc would
// print a message and return '?'. Parsing can continue after an error, as
// with glibc, but CRIU (and cryo) stop at the first one.

/** How an option takes its argument, as in `struct option.has_arg`. */
export type ArgKind = 'none' | 'required' | 'optional';

/** One entry of the long option array. */
export interface LongOption {
  readonly name: string;
  readonly hasArg: ArgKind;
  /**
   * What the option does, as glibc compares it when a prefix matches several
   * names: two entries with equal `hasArg` and `identity` are the same option
   * (glibc compares `has_arg`, `flag` and `val`), so a prefix matching only
   * such entries is not ambiguous.
   */
  readonly identity: string;
}

export interface GetoptSpec {
  /** Short option letters in getopt syntax: `x` flag, `x:` required, `x::` optional. */
  readonly shortOpts: string;
  readonly longOpts: readonly LongOption[];
}

/** One result of the scan. `arg` is undefined when no argument was given. */
export type GetoptItem =
  | { readonly kind: 'short'; readonly char: string; readonly arg?: string | undefined }
  | { readonly kind: 'long'; readonly index: number; readonly arg?: string | undefined }
  | { readonly kind: 'error'; readonly message: string };

export interface GetoptSettings {
  /** argv[0] as it appears in diagnostics. */
  readonly progName: string;
  /** Stop at the first non-option (glibc does this when POSIXLY_CORRECT is set or shortOpts starts with '+'). */
  readonly requireOrder?: boolean;
}

type ShortKind = ArgKind | undefined;

/** Parse getopt's short option string into letter → argument kind. */
function shortKind(shortOpts: string, c: string): ShortKind {
  if (c === ':' || c === ';') return undefined;
  let i = shortOpts.startsWith('+') || shortOpts.startsWith('-') ? 1 : 0;
  if (shortOpts[i] === ':') i++;
  for (; i < shortOpts.length; i++) {
    const letter = shortOpts[i]!;
    let kind: ArgKind = 'none';
    if (shortOpts[i + 1] === ':') {
      kind = shortOpts[i + 2] === ':' ? 'optional' : 'required';
    }
    if (letter === c) return kind;
    if (kind === 'required') i += 1;
    else if (kind === 'optional') i += 2;
  }
  return undefined;
}

/**
 * The scanner. `argv` excludes the program name (glibc's argv[1..]).
 * Call next() until it returns null; then `operands` holds the non-option
 * arguments in the order glibc leaves them after permutation.
 */
export class Getopt {
  private readonly argv: string[];
  private readonly requireOrder: boolean;
  private optind = 0;
  private nextchar: string | null = null;
  private firstNonopt = 0;
  private lastNonopt = 0;
  private done = false;

  constructor(
    argv: readonly string[],
    private readonly spec: GetoptSpec,
    private readonly settings: GetoptSettings,
  ) {
    this.argv = [...argv];
    this.requireOrder = settings.requireOrder === true || spec.shortOpts.startsWith('+');
  }

  /** Non-option arguments; valid once next() has returned null. */
  get operands(): string[] {
    return this.argv.slice(this.optind);
  }

  /** The argument vector as permuted so far (glibc permutes argv in place). */
  get permuted(): readonly string[] {
    return this.argv;
  }

  private isNonOption(s: string): boolean {
    return s[0] !== '-' || s.length === 1;
  }

  /** Swap [firstNonopt, lastNonopt) with [lastNonopt, optind): glibc's exchange(). */
  private exchange(): void {
    const a = this.argv;
    const nonopts = a.slice(this.firstNonopt, this.lastNonopt);
    const opts = a.slice(this.lastNonopt, this.optind);
    a.splice(this.firstNonopt, this.optind - this.firstNonopt, ...opts, ...nonopts);
    this.firstNonopt += this.optind - this.lastNonopt;
    this.lastNonopt = this.optind;
  }

  next(): GetoptItem | null {
    if (this.done) return null;
    const argv = this.argv;
    const argc = argv.length;

    if (this.nextchar === null || this.nextchar === '') {
      if (this.lastNonopt > this.optind) this.lastNonopt = this.optind;
      if (this.firstNonopt > this.optind) this.firstNonopt = this.optind;

      if (!this.requireOrder) {
        if (this.firstNonopt !== this.lastNonopt && this.lastNonopt !== this.optind) this.exchange();
        else if (this.lastNonopt !== this.optind) this.firstNonopt = this.optind;
        while (this.optind < argc && this.isNonOption(argv[this.optind]!)) this.optind++;
        this.lastNonopt = this.optind;
      }

      if (this.optind !== argc && argv[this.optind] === '--') {
        this.optind++;
        if (this.firstNonopt !== this.lastNonopt && this.lastNonopt !== this.optind) this.exchange();
        else if (this.firstNonopt === this.lastNonopt) this.firstNonopt = this.optind;
        this.lastNonopt = argc;
        this.optind = argc;
      }

      if (this.optind === argc) {
        if (this.firstNonopt !== this.lastNonopt) this.optind = this.firstNonopt;
        this.done = true;
        return null;
      }

      const cur = argv[this.optind]!;
      if (this.isNonOption(cur)) {
        // Only reachable in require-order mode: the scan ends here.
        this.done = true;
        return null;
      }

      if (cur[1] === '-') {
        this.nextchar = cur.slice(2);
        return this.longOption();
      }
      this.nextchar = cur.slice(1);
    }
    return this.shortOption();
  }

  private longOption(): GetoptItem {
    const { progName } = this.settings;
    const longOpts = this.spec.longOpts;
    const text = this.nextchar!;
    const eq = text.indexOf('=');
    const name = eq < 0 ? text : text.slice(0, eq);

    let found = longOpts.findIndex((o) => o.name === name);
    if (found < 0) {
      const ambiguous = new Set<number>();
      for (let i = 0; i < longOpts.length; i++) {
        const o = longOpts[i]!;
        if (!o.name.startsWith(name)) continue;
        if (found < 0) {
          found = i;
        } else {
          const first = longOpts[found]!;
          if (first.hasArg !== o.hasArg || first.identity !== o.identity) {
            ambiguous.add(found);
            ambiguous.add(i);
          }
        }
      }
      if (ambiguous.size > 0) {
        const names = [...ambiguous]
          .sort((x, y) => x - y)
          .map((i) => ` '--${longOpts[i]!.name}'`)
          .join('');
        this.nextchar = null;
        this.optind++;
        return { kind: 'error', message: `${progName}: option '--${text}' is ambiguous; possibilities:${names}` };
      }
    }

    if (found < 0) {
      this.nextchar = null;
      this.optind++;
      return { kind: 'error', message: `${progName}: unrecognized option '--${text}'` };
    }

    const opt = longOpts[found]!;
    this.optind++;
    this.nextchar = null;
    let arg: string | undefined;
    if (eq >= 0) {
      if (opt.hasArg === 'none') {
        return { kind: 'error', message: `${progName}: option '--${opt.name}' doesn't allow an argument` };
      }
      arg = text.slice(eq + 1);
    } else if (opt.hasArg === 'required') {
      if (this.optind < this.argv.length) {
        arg = this.argv[this.optind++];
      } else {
        return { kind: 'error', message: `${progName}: option '--${opt.name}' requires an argument` };
      }
    }
    return { kind: 'long', index: found, arg };
  }

  private shortOption(): GetoptItem {
    const { progName } = this.settings;
    const text = this.nextchar!;
    const c = text[0]!;
    const rest = text.slice(1);
    this.nextchar = rest;
    if (rest === '') this.optind++;

    const kind = shortKind(this.spec.shortOpts, c);
    if (kind === undefined) {
      return { kind: 'error', message: `${progName}: invalid option -- '${c}'` };
    }
    if (kind === 'none') return { kind: 'short', char: c };

    this.nextchar = null;
    if (kind === 'optional') {
      if (rest !== '') {
        this.optind++;
        return { kind: 'short', char: c, arg: rest };
      }
      return { kind: 'short', char: c };
    }
    if (rest !== '') {
      this.optind++;
      return { kind: 'short', char: c, arg: rest };
    }
    if (this.optind === this.argv.length) {
      return { kind: 'error', message: `${progName}: option requires an argument -- '${c}'` };
    }
    return { kind: 'short', char: c, arg: this.argv[this.optind++] };
  }
}

/** Run a whole scan: every item in order, then the operands. */
export function getoptAll(
  argv: readonly string[],
  spec: GetoptSpec,
  settings: GetoptSettings,
): { items: GetoptItem[]; operands: string[] } {
  const g = new Getopt(argv, spec, settings);
  const items: GetoptItem[] = [];
  for (let it = g.next(); it !== null; it = g.next()) items.push(it);
  return { items, operands: g.operands };
}
