// The rows of `cryo check`'s table (check/features.ts) and what a probe answers.
import type { Kerndat } from '../kerndat.js';

/** required: cryo cannot dump or restore without it; extra/experimental: CRIU's categories 2 and 3. */
export type FeatureKind = 'required' | 'extra' | 'experimental';

/** One row of the feature table. */
export interface Feature {
  readonly name: string;
  /** What cryo (or CRIU) uses it for. */
  readonly description: string;
  readonly kind: FeatureKind;
  /**
   * Probe the feature for real. Returns whether it is there and never throws; the
   * reason a feature is missing is left in `k.why`.
   */
  readonly probe: (k: Kerndat) => boolean;
  /** The line printed when it is missing (CRIU's wording where CRIU has one). */
  readonly missing: string;
  /** Log level of that line in an --extra run: CRIU uses pr_err for some. */
  readonly level: 'error' | 'warn';
  /** Set when cryo does not implement what this feature is for: then it is never probed. */
  readonly notImplemented?: string;
}

/** A probe's outcome, for `cryo check`, `--feature` and the RPC FEATURE_CHECK request. */
export interface FeatureResult {
  readonly name: string;
  readonly description: string;
  readonly kind: FeatureKind;
  /** False for features cryo does not implement (reported as missing, not probed). */
  readonly implemented: boolean;
  readonly ok: boolean;
  /** Why it is missing: the feature's message, then what the probe found in parentheses. */
  readonly detail?: string;
}
