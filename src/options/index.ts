// Parsed options, the result of the option table (CLI, config files, RPC).
// Field names are camelCase forms of CRIU's long option names.
// NOTE: the CLI helper owns the table (src/options/table.ts) and may add fields here.

export interface Options {
  /** -t/--tree PID: root of the tree to dump. */
  tree?: number;
  /** -D/--images-dir DIR (default "."). */
  imagesDir: string;
  /** -W/--work-dir DIR (default: images dir). */
  workDir?: string;
  /** -o/--log-file FILE, relative to the work dir (or images dir) unless absolute. */
  logFile?: string;
  /** -v[N]: log level 0..4, default 2. */
  logLevel: number;
  /** -R/--leave-running. */
  leaveRunning: boolean;
  /** -j/--shell-job. */
  shellJob: boolean;
  /** -d/--restore-detached. */
  restoreDetached: boolean;
  /** -S/--restore-sibling. */
  restoreSibling: boolean;
  /** --pidfile FILE. */
  pidfile?: string;
}
