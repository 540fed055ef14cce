// Errors of the image tool: bad input (a JSON text of the wrong shape, an image
// of an unknown kind, an unknown -F field) and bad usage. Each is one line
// naming the file and, where there is one, the byte offset.

const brand = Symbol.for('cryo.CritError');

export class CritError extends Error {
  override readonly name = 'CritError';

  /**
   * `file` is the input as the user named it ("<stdin>" for standard input);
   * `offset` the byte offset in it, when the problem has a place.
   */
  constructor(
    readonly file: string | undefined,
    readonly offset: number | undefined,
    detail: string,
    /** 2 for usage errors, as argparse (which crit uses) exits; 1 otherwise. */
    readonly exitCode = 1,
  ) {
    super(file === undefined ? detail : `${file}: ${detail}`);
  }

  /** True for a CritError from any copy of this module. */
  static is(e: unknown): e is CritError {
    return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[brand] === true;
  }
}

Object.defineProperty(CritError.prototype, brand, { value: true });

/** A usage error (exit 2). */
export function usageError(detail: string): CritError {
  return new CritError(undefined, undefined, detail, 2);
}
