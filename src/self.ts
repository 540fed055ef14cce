// How cryo starts itself again (service workers, --daemon): through bin/cryo when
// it came that way (CRYO_SELF, set by bin/cryo), else the same node and script.
export function selfCommand(): { file: string; args: string[] } {
  const self = process.env['CRYO_SELF'];
  if (self) return { file: self, args: [] };
  return { file: process.execPath, args: [process.argv[1]!] };
}

/** The name cryo was invoked by (criu or cryo), for messages. */
export function progName(): string {
  const p = process.env['CRYO_PROG'] ?? process.argv[1] ?? 'criu';
  return p.slice(p.lastIndexOf('/') + 1);
}

/** The command line after the program: in a snapshot run argv has no script. */
export function userArgs(): string[] {
  return process.execArgv.includes('--snapshot-blob') ? process.argv.slice(1) : process.argv.slice(2);
}
