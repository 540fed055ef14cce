// `cryo check`: probe the kernel features cryo needs (CRIU's `criu check`).
//
// As in CRIU's kerndat, every feature is one row of one table: its name (CRIU's
// `--feature` name where CRIU has one), what it is for, whether cryo cannot work
// without it, and a probe. A Kerndat object carries what several probes share (one
// seed child driven over ptrace, the userfaultfd feature mask, the capability set)
// so that each is found out once per run. Every probe runs for real on this
// machine and leaves nothing behind: fds are closed, the seed child is killed and
// reaped before its results are used.
//
// Output follows cr_check(): `criu check` prints "Looks good." and exits 0 when
// every required feature is there; each missing required feature gives an error
// line, then "Does not look good." (a warning) and exit 1. --extra/--experimental
// (--all) add the optional rows: a warning per missing one, then CRIU's "Looks good
// but some kernel features are missing..." and exit 1. `--feature NAME` prints
// "NAME is supported" (exit 0) or an error "NAME is not supported: why" (exit 1).
import { LOG_INFO, type Context, type Logger } from './context.js';
import { FEATURES, featureNames, resultOf } from './check/features.js';
import type { FeatureKind } from './check/feature.js';

const CHECK_GOOD = 'Looks good.';
const CHECK_BAD = 'Does not look good.';
const CHECK_MAYBE =
  'Looks good but some kernel features are missing\n' +
  'which, depending on your process tree, may cause\n' +
  'dump or restore failure.';

function say(log: Logger, level: 'error' | 'warn', text: string): void {
  if (level === 'error') log.error(text);
  else log.warn(text);
}

/** `cryo check`: returns the process exit code. */
export async function runCheck(ctx: Context): Promise<number> {
  const { opts, log } = ctx;
  const started = process.hrtime.bigint();
  const k = ctx.kdat;

  if (opts.feature !== undefined) {
    const f = FEATURES.find((x) => x.name === opts.feature);
    if (f === undefined) {
      log.error(`Unknown feature ${opts.feature}; known features: ${featureNames().join(', ')}`);
      return 1;
    }
    const r = resultOf(f, k);
    if (r.ok) {
      log.msg(`${f.name} is supported`);
      return 0;
    }
    log.error(`${f.name} is not supported: ${r.detail}`);
    return 1;
  }

  const kinds = new Set<FeatureKind>(['required']);
  if (opts.extra) kinds.add('extra');
  if (opts.experimental) kinds.add('experimental');
  const rows = FEATURES.filter((f) => kinds.has(f.kind));
  const results = rows.map((f) => resultOf(f, k));
  if (log.level >= LOG_INFO) {
    for (const r of results) {
      log.info(`${r.name}: ${!r.implemented ? 'not implemented by cryo' : r.ok ? 'yes' : 'no'} (${r.description})`);
    }
    log.info(`check: ${results.length} features in ${(process.hrtime.bigint() - started) / 1000n} us`);
  }

  const badRequired = results.filter((r) => r.kind === 'required' && !r.ok);
  if (badRequired.length > 0) {
    for (const r of badRequired) log.error(r.detail ?? `${r.name} is missing`);
    log.warn(CHECK_BAD);
    return 1;
  }

  let maybe = false;
  results.forEach((r, i) => {
    if (r.kind === 'required' || r.ok || !r.implemented) return;
    say(log, rows[i]!.level, r.detail ?? rows[i]!.missing);
    maybe = true;
  });
  log.msg(maybe ? CHECK_MAYBE : CHECK_GOOD);
  return maybe ? 1 : 0;
}

export { FEATURES, featureNames, probeFeatures } from './check/features.js';
export { Kerndat } from './kerndat.js';
export type { Feature, FeatureKind, FeatureResult } from './check/feature.js';
