// stats-dump and stats-restore: written into the work dir, as CRIU writes them
// (it opens them at its cwd, the work dir). podman exports the work dir's
// stats-dump with a checkpoint and prints both with --print-stats.
import { ImageDir, type StatsEntry } from './images/index.js';

export function writeStats(workDir: string, entry: StatsEntry, which: 'dump' | 'restore'): void {
  const d = ImageDir.open(workDir, { write: true });
  try {
    d.write('stats', [entry], which);
  } finally {
    d.close();
  }
}
