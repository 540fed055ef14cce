// The network lock, as CRIU's for a tree in the host's network namespace: each
// TCP connection dumped gets netfilter rules that drop its packets both ways,
// put in before its socket goes into repair mode. A dump whose tasks run on
// (-R, -s, a failure) takes them out again; a dump that kills its tasks leaves
// them, so that the peer's packets meet no socket and get no reset, until the
// restore has made the connections again (from what the images say) and takes
// them out. Packets marked SOCCR_MARK (CRIU's own) pass.
//
// iptables: per connection, a DROP rule in INPUT and one in OUTPUT (iptables or
// ip6tables). nftables: one table "inet CRIU-<dump run id>" whose chains drop
// what is in its sets of connections; taken out whole. The connections a frozen
// tree has are locked in one batch (lockAll): a command per connection costs
// milliseconds each, which a tree with thousands of them spends frozen.
import { randomUUID } from 'node:crypto';
import { runCommand, type CommandResult } from '../sys/exec.js';
import { AF } from '../sys/index.js';
import type { Logger } from '../context.js';

export type LockMethod = 'iptables' | 'nftables' | 'skip';

/** inventory.img's network_lock_method: CRIU's enum NETWORK_LOCK_METHOD. */
export const LOCK_METHOD_CODE: Record<LockMethod, number> = { iptables: 0, nftables: 1, skip: 2 };

export function lockMethodOf(code: number | undefined): LockMethod | undefined {
  // Images without it are from a CRIU that knew iptables only.
  if (code === undefined) return 'iptables';
  return (Object.keys(LOCK_METHOD_CODE) as LockMethod[]).find((m) => LOCK_METHOD_CODE[m] === code);
}

/** CRIU's SOCCR_MARK. */
const SOCCR_MARK = '0xC114';

/** One connection as its socket sees it: its own end (src) and its peer's (dst), addresses as 32-bit words of their bytes. */
export interface LockedConn {
  family: number;
  src: readonly number[];
  srcPort: number;
  dst: readonly number[];
  dstPort: number;
}

/** Run a command; what went wrong, or undefined. */
export type Runner = (argv: string[], input?: string) => CommandResult;

function failure(r: CommandResult): string | undefined {
  if (r.error) return r.error === 'ENOENT' ? 'not installed' : `cannot run (${r.error})`;
  if (r.status === 0) return undefined;
  const line = (r.stderr || r.stdout).split('\n').map((l) => l.trim()).find((l) => l) ?? '';
  return `${r.status === null ? 'killed' : `exit ${r.status}`}${line ? `: ${line}` : ''}`;
}

function ntop(family: number, words: readonly number[]): string {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, 4 * i));
  if (family === AF.INET) return [...b.subarray(0, 4)].join('.');
  return Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':');
}

/** The connection in the family its packets use: an IPv4-mapped IPv6 one is IPv4 (as CRIU). */
function wire(c: LockedConn): { v6: boolean; src: string; dst: string } {
  const mapped = c.family === AF.INET6 && c.dst[0] === 0 && c.dst[1] === 0 && c.dst[2] === 0xffff0000;
  if (c.family === AF.INET || mapped) {
    const w = (a: readonly number[]) => (c.family === AF.INET ? a : [a[3] ?? 0]);
    return { v6: false, src: ntop(AF.INET, w(c.src)), dst: ntop(AF.INET, w(c.dst)) };
  }
  return { v6: true, src: ntop(AF.INET6, c.src), dst: ntop(AF.INET6, c.dst) };
}

/** CRIU's IPTABLES_CONN_CMD: packets from `from` to `to` dropped in `chain`. */
function iptablesRule(v6: boolean, op: '-I' | '-D', chain: 'INPUT' | 'OUTPUT', from: [string, number], to: [string, number]): string[] {
  return [v6 ? 'ip6tables' : 'iptables', '-w', '-t', 'filter', op, chain, '--protocol', 'tcp', '-m', 'mark', '!', '--mark', SOCCR_MARK,
    '--source', from[0], '--sport', String(from[1]), '--destination', to[0], '--dport', String(to[1]), '-j', 'DROP'];
}

/** A rule of iptablesRule as a line of iptables-restore's input (without "iptables -w -t filter"). */
const restoreLine = (argv: readonly string[]) => argv.slice(4).join(' ');

/** The rules of conns, of one family, as one iptables-restore batch. */
function iptablesBatch(conns: readonly LockedConn[], op: '-I' | '-D'): string {
  return `*filter\n${conns.flatMap((c) => iptablesRules(c, op)).map(restoreLine).join('\n')}\nCOMMIT\n`;
}

/** The connection's packets as a key: the same for the same packets, whatever the family of its socket. */
function connKey(c: LockedConn): string {
  const w = wire(c);
  return `${w.src}.${c.srcPort}-${w.dst}.${c.dstPort}`;
}

function iptablesRules(c: LockedConn, op: '-I' | '-D'): string[][] {
  const w = wire(c);
  return [
    iptablesRule(w.v6, op, 'INPUT', [w.dst, c.dstPort], [w.src, c.srcPort]),
    iptablesRule(w.v6, op, 'OUTPUT', [w.src, c.srcPort], [w.dst, c.dstPort]),
  ];
}

export function nftTableName(runId: string): string {
  return `inet CRIU-${runId}`;
}

/** nftables_init_connection_lock: the table, its chains (SOCCR_MARK passes) and the sets of connections. */
function nftInitScript(table: string): string {
  const l = [
    `create table ${table}`,
    `add chain ${table} output { type filter hook output priority 0; }`,
    `add rule ${table} output meta mark ${SOCCR_MARK} accept`,
    `add chain ${table} input { type filter hook input priority 0; }`,
    `add rule ${table} input meta mark ${SOCCR_MARK} accept`,
  ];
  for (const [n, ip] of [['4', 'ip'], ['6', 'ip6']] as const) {
    l.push(`add set ${table} conns${n} { type ${ip === 'ip' ? 'ipv4_addr' : 'ipv6_addr'} . inet_service . ${ip === 'ip' ? 'ipv4_addr' : 'ipv6_addr'} . inet_service; }`);
    for (const chain of ['output', 'input']) l.push(`add rule ${table} ${chain} ${ip} saddr . tcp sport . ${ip} daddr . tcp dport @conns${n} drop`);
  }
  return l.join('\n') + '\n';
}

/**
 * The dump's side of the lock: one per dump, with the run id the images keep
 * (inventory's dump_criu_run_id, which names the nftables table).
 */
export class NetLock {
  readonly runId = randomUUID();
  /** The nftables table exists (made at the first connection locked). */
  private table = false;
  /** The connections locked by this dump, by connKey. */
  private readonly locked = new Map<string, LockedConn>();

  /** The method; undefined until the first use for the default ('auto'). */
  private chosen: LockMethod | undefined;

  constructor(asked: LockMethod | 'auto', private readonly log: Logger, private readonly run: Runner = runCommand) {
    this.chosen = asked === 'auto' ? undefined : asked;
  }

  /**
   * The method asked for, or by default nftables where it works (the probe of
   * check --feature network_lock_nftables), else iptables: chosen at the first
   * use, so that a dump that locks nothing asks nft nothing.
   */
  get method(): LockMethod {
    if (this.chosen === undefined) {
      const nft = probeNftLock(this.run);
      this.chosen = nft === true ? 'nftables' : 'iptables';
      this.log.info(`network lock: ${this.chosen}, the default${nft === true ? '' : ` (nftables cannot: ${nft})`}`);
    }
    return this.chosen;
  }

  /** What inventory.img records: the method used (iptables where nothing was locked and none chosen). */
  get recorded(): LockMethod {
    return this.chosen ?? 'iptables';
  }

  /** The tree's network namespace is locked whole (lockNetns): no connection is locked by itself, as CRIU. */
  private wholeNs = false;

  /**
   * Lock the connections in one batch per command (iptables-restore for each
   * family, or one nft script); throws an Error saying why it cannot, with none
   * of them locked.
   */
  lockAll(conns: readonly LockedConn[]): void {
    if (this.wholeNs) return;
    const todo = [...new Map(conns.map((c) => [connKey(c), c])).values()].filter((c) => !this.locked.has(connKey(c)));
    if (todo.length === 0 || this.method === 'skip') return;
    if (this.method === 'iptables') {
      const v4 = todo.filter((c) => !wire(c).v6);
      const v6 = todo.filter((c) => wire(c).v6);
      if (v4.length) this.restore(false, iptablesBatch(v4, '-I'));
      if (v6.length) {
        try {
          this.restore(true, iptablesBatch(v6, '-I'));
        } catch (e) {
          if (v4.length) this.quietRestore(false, iptablesBatch(v4, '-D'));
          throw e;
        }
      }
    } else {
      const table = nftTableName(this.runId);
      const init = this.table ? '' : nftInitScript(table);
      this.nft(init + todo.map((c) => nftElements(table, c)).join(''));
      this.table = true;
    }
    for (const c of todo) this.locked.set(connKey(c), c);
    this.log.info(`locked ${todo.length} connection(s) in one batch (${this.method})`);
  }

  /** Lock `c` before its socket goes into repair mode (if lockAll did not); throws an Error saying why it cannot. */
  lock(c: LockedConn): void {
    if (this.method === 'skip' || this.wholeNs || this.locked.has(connKey(c))) return;
    if (this.method === 'iptables') {
      const [input, output] = iptablesRules(c, '-I');
      this.must(input!);
      try {
        this.must(output!);
      } catch (e) {
        this.quiet(iptablesRules(c, '-D')[0]!);
        throw e;
      }
    } else {
      const table = nftTableName(this.runId);
      if (!this.table) {
        this.nft(nftInitScript(table));
        this.table = true;
      }
      // Both directions in one batch: nft applies it whole or not at all.
      this.nft(nftElements(table, c));
    }
    this.locked.set(connKey(c), c);
    this.log.info(`locked the connection ${wire(c).src}:${c.srcPort} - ${wire(c).dst}:${c.dstPort} (${this.method})`);
  }

  /** The end of a dump whose tasks run on (or that failed): the lock goes, every connection's. */
  release(): void {
    if (this.chosen === undefined) return; // nothing was locked
    if (this.method === 'iptables') {
      const conns = [...this.locked.values()];
      this.locked.clear();
      for (const v6 of [false, true]) {
        const some = conns.filter((c) => wire(c).v6 === v6);
        // One batch; should it fail (a rule someone took out), rule by rule.
        if (some.length && !this.quietRestore(v6, iptablesBatch(some, '-D'), false)) {
          for (const c of some) for (const argv of iptablesRules(c, '-D')) this.quiet(argv);
        }
      }
      return;
    }
    this.locked.clear();
    if (this.method !== 'nftables' || !this.table) return;
    const why = failure(this.run(['nft', 'delete', 'table', ...nftTableName(this.runId).split(' ')]));
    if (why) this.log.error(`cannot remove the nftables table ${nftTableName(this.runId)}: ${why}`);
    this.table = false;
  }

  /**
   * A tree in a network namespace of its own (CRIU's network_lock_internal):
   * the whole namespace is locked, every packet but SOCCR_MARK's dropped. To be
   * called from a thread in that namespace; throws an Error saying why it cannot.
   */
  lockNetns(v6: boolean): void {
    lockNetnsRules(this.method, this.runId, v6, this.run);
    this.wholeNs = this.method !== 'skip';
    if (this.wholeNs) this.log.info(`locked the tree's network namespace (${this.method})`);
  }

  private restore(v6: boolean, conf: string): void {
    const why = failure(this.run([v6 ? 'ip6tables-restore' : 'iptables-restore', '-w', '--noflush'], conf));
    if (why) throw new Error(`${v6 ? 'ip6tables-restore' : 'iptables-restore'} ${why}`);
  }

  /** A batch that may fail: logged (when loud), never thrown; whether it went in. */
  private quietRestore(v6: boolean, conf: string, loud = true): boolean {
    try {
      this.restore(v6, conf);
      return true;
    } catch (e) {
      if (loud) this.log.error(`cannot take the lock's rules out: ${(e as Error).message}`);
      return false;
    }
  }

  private must(argv: string[]): void {
    const why = failure(this.run(argv));
    if (why) throw new Error(`${argv[0]} ${why}`);
  }

  private nft(script: string): void {
    const why = failure(this.run(['nft', '-f', '-'], script));
    if (why) throw new Error(`nft ${why}`);
  }

  private quiet(argv: string[]): void {
    const why = failure(this.run(argv));
    if (why) this.log.error(`cannot remove the rule "${argv.join(' ')}": ${why}`);
  }
}

/**
 * Restore: the connections of the images are there again, so their rules go,
 * as CRIU's network_unlock() (nftables: the dump's table). What cannot be
 * removed is logged; the restored tree runs on regardless.
 */
export function unlockRestored(method: LockMethod, table: string, conns: readonly LockedConn[], log: Logger, run: Runner = runCommand): void {
  if (method === 'skip') return;
  if (method === 'nftables') {
    // A dump that locked no connection made no table.
    if (!conns.length) return;
    const r = run(['nft', 'delete', 'table', ...table.split(' ')]);
    if (noSuchTable(r)) return;
    const why = failure(r);
    if (why) log.error(`cannot remove the nftables table ${table}: ${why}`);
    else log.info(`unlocked the network: removed the nftables table ${table}`);
    return;
  }
  // One batch per family; should one fail (a rule missing), rule by rule.
  const left = [false, true].flatMap((v6) => {
    const some = conns.filter((c) => wire(c).v6 === v6);
    if (!some.length) return [];
    const r = run([v6 ? 'ip6tables-restore' : 'iptables-restore', '-w', '--noflush'], iptablesBatch(some, '-D'));
    if (failure(r)) return some;
    log.info(`unlocked ${some.length} ${v6 ? 'IPv6' : 'IPv4'} connection(s) in one batch`);
    return [];
  });
  for (const c of left) {
    for (const argv of iptablesRules(c, '-D')) {
      const why = failure(run(argv));
      // A connection dumped with no rule of its own (by an older cryo) has none to remove.
      if (why) log.warn(`cannot remove the rule "${argv.join(' ')}": ${why}`);
    }
    log.info(`unlocked the connection ${wire(c).src}:${c.srcPort} - ${wire(c).dst}:${c.dstPort}`);
  }
}

/** nft's answer to the delete of a table that is not there (one command, not a list and a delete). */
function noSuchTable(r: CommandResult): boolean {
  return r.status !== 0 && !r.error && /No such file or directory/.test(r.stderr);
}

/** The nft commands that put `c` (both directions) in the table's set of its family. */
function nftElements(table: string, c: LockedConn): string {
  const w = wire(c);
  const n = w.v6 ? '6' : '4';
  return `add element ${table} conns${n} { ${w.dst} . ${c.dstPort} . ${w.src} . ${c.srcPort} }\n`
    + `add element ${table} conns${n} { ${w.src} . ${c.srcPort} . ${w.dst} . ${c.dstPort} }\n`;
}

/** CRIU's lock of a whole network namespace, and its two steps out (jumps first: the nft backend wants it so). */
const IPT_LOCK = `*filter\n:CRIU - [0:0]\n-I INPUT -j CRIU\n-I OUTPUT -j CRIU\n-A CRIU -m mark --mark ${SOCCR_MARK} -j ACCEPT\n-A CRIU -j DROP\nCOMMIT\n`;
const IPT_UNJUMP = '*filter\n:CRIU - [0:0]\n-D INPUT -j CRIU\n-D OUTPUT -j CRIU\nCOMMIT\n';
const IPT_UNCHAIN = '*filter\n:CRIU - [0:0]\n-X CRIU\nCOMMIT\n';

/**
 * CRIU's network_lock_internal: every packet of the network namespace the
 * calling thread is in dropped but SOCCR_MARK's, by the dump (before its
 * firewall is dumped) and by the restore of a namespace it makes (before its
 * links come up). Throws an Error saying why it cannot, with nothing locked.
 */
export function lockNetnsRules(method: LockMethod, runId: string, v6: boolean, run: Runner = runCommand): void {
  if (method === 'skip') return;
  const apply = (argv: string[], input: string): void => {
    const why = failure(run(argv, input));
    if (why) throw new Error(`${argv[0]} ${why}`);
  };
  if (method === 'nftables') {
    const t = nftTableName(runId);
    apply(['nft', '-f', '-'], [`create table ${t}`,
      `add chain ${t} output { type filter hook output priority 0; policy drop; }`, `add rule ${t} output meta mark ${SOCCR_MARK} accept`,
      `add chain ${t} input { type filter hook input priority 0; policy drop; }`, `add rule ${t} input meta mark ${SOCCR_MARK} accept`].join('\n') + '\n');
    return;
  }
  apply(['iptables-restore', '-w', '--noflush'], IPT_LOCK);
  if (!v6) return;
  try {
    apply(['ip6tables-restore', '-w', '--noflush'], IPT_LOCK);
  } catch (e) {
    run(['iptables-restore', '-w', '--noflush'], IPT_UNJUMP);
    run(['iptables-restore', '-w', '--noflush'], IPT_UNCHAIN);
    throw e;
  }
}

/**
 * Take the lock of a whole network namespace out (CRIU's network_unlock_internal),
 * from a thread in it: after a restore, or a dump whose tree runs on. What is
 * not there (a namespace made empty, a lock of another method) is logged only.
 */
export function unlockNetnsRules(method: LockMethod, runId: string, v6: boolean, log: Logger, run: Runner = runCommand): void {
  if (method === 'skip') return;
  if (method === 'nftables') {
    const r = run(['nft', 'delete', 'table', ...nftTableName(runId).split(' ')]);
    if (noSuchTable(r)) {
      log.warn(`the network namespace has no nftables table ${nftTableName(runId)} to unlock`);
      return;
    }
    const why = failure(r);
    if (why) log.error(`cannot remove the nftables table ${nftTableName(runId)}: ${why}`);
    else log.info(`unlocked the network namespace: removed the nftables table ${nftTableName(runId)}`);
    return;
  }
  for (const fam of v6 ? [false, true] : [false]) {
    const tool = fam ? 'ip6tables-restore' : 'iptables-restore';
    if (run([fam ? 'ip6tables' : 'iptables', '-w', '-S', 'CRIU']).status !== 0) {
      log.warn(`the network namespace has no ${fam ? 'ip6tables' : 'iptables'} chain CRIU to unlock`);
      continue;
    }
    let why = failure(run([tool, '-w', '--noflush'], IPT_UNJUMP));
    // A jump put in twice (two dumps) is taken out with a second pass, as CRIU does.
    if (!why && run([fam ? 'ip6tables' : 'iptables', '-w', '-C', 'INPUT', '-j', 'CRIU']).status === 0) why = failure(run([tool, '-w', '--noflush'], IPT_UNJUMP));
    why ??= failure(run([tool, '-w', '--noflush'], IPT_UNCHAIN));
    if (why) log.error(`cannot unlock the network namespace (${tool}): ${why}`);
    else log.info(`unlocked the network namespace (${fam ? 'ip6tables' : 'iptables'})`);
  }
}

/**
 * `check --feature network_lock_nftables`, as CRIU's kerndat: nft is there and
 * the kernel takes a table with a set of concatenated addresses and ports (made
 * and removed at once). True, or why not.
 */
export function probeNftLock(run: Runner = runCommand): true | string {
  const table = `inet CRYO-check-${process.pid}`;
  const script = `create table ${table}\n`
    + `add set ${table} conns4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }\n`
    + `add chain ${table} input { type filter hook input priority 0; }\n`
    + `add rule ${table} input ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop\n`
    + `delete table ${table}\n`;
  const why = failure(run(['nft', '-f', '-'], script));
  if (!why) return true;
  run(['nft', 'delete', 'table', ...table.split(' ')]);
  return `nft ${why}`;
}
