// The versions cryo reports: the CRIU interface it implements, and its own.
import { readFileSync } from 'node:fs';

/** The CRIU interface cryo implements (what `--version` and RPC VERSION report). */
export const CRIU_VERSION_MAJOR = 4;
export const CRIU_VERSION_MINOR = 2;
export const CRIU_VERSION = `${CRIU_VERSION_MAJOR}.${CRIU_VERSION_MINOR}`;

/**
 * cryo's own version, from package.json: one level up from src/, dist/ and the
 * bundle dist/cryo.mjs alike.
 */
export function cryoVersion(): string {
  for (const rel of ['../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'cryo' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      /* try the next place */
    }
  }
  return 'unknown';
}
