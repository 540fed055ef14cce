// getopt_long as glibc does it, first on a small spec, then on CRIU's table.
// Expected messages and permutations were checked against glibc 2.36 via
// Debian's criu binary.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { getoptAll, type GetoptSpec } from '../../src/options/getopt.js';
import { buildGetoptSpec } from '../../src/options/parse.js';

const small: GetoptSpec = {
  shortOpts: 'ab:c::',
  longOpts: [
    { name: 'alpha', hasArg: 'none', identity: 'a' },
    { name: 'beta', hasArg: 'required', identity: 'b' },
    { name: 'gamma', hasArg: 'optional', identity: 'c' },
    { name: 'alps', hasArg: 'none', identity: 'x' },
    { name: 'same-one', hasArg: 'none', identity: 'same' },
    { name: 'same-two', hasArg: 'none', identity: 'same' },
  ],
};

function scan(argv: string[], spec = small, requireOrder = false) {
  return getoptAll(argv, spec, { progName: 'prog', requireOrder });
}

/** Items as compact strings: `-a`, `-b=1`, `--beta=1`, `!message`. */
function compact(argv: string[], spec = small, requireOrder = false) {
  const r = scan(argv, spec, requireOrder);
  const items = r.items.map((i) => {
    if (i.kind === 'error') return `!${i.message}`;
    const name = i.kind === 'short' ? `-${i.char}` : `--${spec.longOpts[i.index]!.name}`;
    return i.arg === undefined ? name : `${name}=${i.arg}`;
  });
  return { items, operands: r.operands };
}

describe('getopt: short options', () => {
  it('clusters flags and attaches or takes required arguments', () => {
    assert.deepEqual(compact(['-ab', 'x', '-b42', '-a']).items, ['-a', '-b=x', '-b=42', '-a']);
    assert.deepEqual(compact(['-aab7']).items, ['-a', '-a', '-b=7']);
  });
  it('takes optional arguments only when attached', () => {
    assert.deepEqual(compact(['-c4']), { items: ['-c=4'], operands: [] });
    assert.deepEqual(compact(['-c', '4']), { items: ['-c'], operands: ['4'] });
    assert.deepEqual(compact(['-ac']).items, ['-a', '-c']);
    assert.deepEqual(compact(['-ca']).items, ['-c=a']);
  });
  it('reports unknown letters and missing arguments like glibc', () => {
    assert.deepEqual(compact(['-q']).items, ["!prog: invalid option -- 'q'"]);
    assert.deepEqual(compact(['-aqa']).items, ['-a', "!prog: invalid option -- 'q'", '-a']);
    assert.deepEqual(compact(['-b']).items, ["!prog: option requires an argument -- 'b'"]);
    assert.deepEqual(compact(['-:']).items, ["!prog: invalid option -- ':'"]);
  });
});

describe('getopt: long options', () => {
  it('takes required arguments with = or as the next word', () => {
    assert.deepEqual(compact(['--beta=1', '--beta', '2', '--beta=']).items, ['--beta=1', '--beta=2', '--beta=']);
  });
  it('takes optional arguments only with =', () => {
    assert.deepEqual(compact(['--gamma', 'x']), { items: ['--gamma'], operands: ['x'] });
    assert.deepEqual(compact(['--gamma=x']).items, ['--gamma=x']);
  });
  it('accepts unambiguous prefixes and exact names over prefixes', () => {
    assert.deepEqual(compact(['--be', '1', '--gam=2', '--alpha']).items, ['--beta=1', '--gamma=2', '--alpha']);
  });
  it('rejects ambiguous prefixes, listing the candidates in table order', () => {
    assert.deepEqual(compact(['--al']).items, ["!prog: option '--al' is ambiguous; possibilities: '--alpha' '--alps'"]);
    assert.deepEqual(compact(['--al=3']).items, [
      "!prog: option '--al=3' is ambiguous; possibilities: '--alpha' '--alps'",
    ]);
  });
  it('treats a prefix of names with one identity as unambiguous (first wins)', () => {
    assert.deepEqual(compact(['--same']).items, ['--same-one']);
  });
  it('reports unknown names, stray and missing arguments', () => {
    assert.deepEqual(compact(['--nope=1']).items, ["!prog: unrecognized option '--nope=1'"]);
    assert.deepEqual(compact(['--alph=1']).items, ["!prog: option '--alpha' doesn't allow an argument"]);
    assert.deepEqual(compact(['--be']).items, ["!prog: option '--beta' requires an argument"]);
  });
});

describe('getopt: permutation and --', () => {
  it('moves operands after the options, keeping their order', () => {
    assert.deepEqual(compact(['x', '-a', 'y', '--beta', 'z', 'w']), {
      items: ['-a', '--beta=z'],
      operands: ['x', 'y', 'w'],
    });
  });
  it('treats a lone - as an operand', () => {
    assert.deepEqual(compact(['-', '-a']), { items: ['-a'], operands: ['-'] });
  });
  it('stops at --, which is dropped; what follows are operands', () => {
    assert.deepEqual(compact(['x', '-a', '--', '-b', '--', 'y']), {
      items: ['-a'],
      operands: ['x', '-b', '--', 'y'],
    });
    assert.deepEqual(compact(['--']), { items: [], operands: [] });
  });
  it('stops at the first operand in require-order mode (POSIXLY_CORRECT)', () => {
    assert.deepEqual(compact(['-a', 'x', '-a'], small, true), { items: ['-a'], operands: ['x', '-a'] });
  });
});

describe('getopt on the CRIU table', () => {
  const { spec } = buildGetoptSpec();
  const c = (argv: string[]) => compact(argv, spec);

  it('has CRIU\'s short letters with their argument kinds', () => {
    const letters = [...spec.shortOpts.replace(/:/g, '')].sort().join('');
    assert.equal(letters, [...'dSsRthDovxVrjJlWLM'].sort().join(''));
    for (const [l, k] of [['t', ':'], ['v', '::'], ['x', '::'], ['D', ':'], ['M', ':']] as const) {
      assert.match(spec.shortOpts, new RegExp(`${l}${k}(?!:)`));
    }
  });
  it('-v4 sets a level while -v 4 leaves 4 as an operand', () => {
    assert.deepEqual(c(['-v4', 'dump']), { items: ['-v=4'], operands: ['dump'] });
    assert.deepEqual(c(['-v', '4', 'dump']), { items: ['-v'], operands: ['4', 'dump'] });
    assert.deepEqual(c(['--verbosity', '4']), { items: ['--verbosity'], operands: ['4'] });
  });
  it('knows the ambiguities criu reports', () => {
    assert.deepEqual(c(['--tcp']).items, [
      "!prog: option '--tcp' is ambiguous; possibilities: '--tcp-established' '--tcp-close'",
    ]);
    assert.deepEqual(c(['--no-restore']).items, [
      "!prog: option '--no-restore' is ambiguous; possibilities: '--no-restore-detached' '--no-restore-sibling'",
    ]);
    assert.deepEqual(c(['--d']).items, [
      "!prog: option '--d' is ambiguous; possibilities: '--daemon' '--deprecated' '--display-stats'",
    ]);
    assert.deepEqual(c(['--ext']).items, [
      "!prog: option '--ext' is ambiguous; possibilities: '--ext-unix-sk' '--ext-mount-map' '--external' '--extra'",
    ]);
    assert.deepEqual(c(['--enable-ext']).items, [
      "!prog: option '--enable-ext' is ambiguous; possibilities: '--enable-external-sharing' '--enable-external-masters'",
    ]);
  });
  it('accepts prefixes criu accepts', () => {
    assert.deepEqual(c(['--leave-r', '--images', 'd', '--log-f=x']).items, [
      '--leave-running',
      '--images-dir=d',
      '--log-file=x',
    ]);
    assert.deepEqual(c(['--leave-r=1']).items, ["!prog: option '--leave-running' doesn't allow an argument"]);
  });
  it('has --no-X only for CRIU\'s BOOL_OPT options', () => {
    const names = new Set(spec.longOpts.map((o) => o.name));
    for (const n of ['no-shell-job', 'no-tcp-established', 'no-ghost-fiemap', 'no-daemon', 'no-tls', 'no-allow-uprobes']) {
      assert.ok(names.has(n), n);
    }
    for (const n of ['no-leave-running', 'no-lazy-pages', 'no-enable-external-sharing', 'no-tls-no-cn-verify', 'no-ext-unix-sk']) {
      assert.ok(!names.has(n), n);
    }
    assert.ok(names.has('no-default-config'));
  });
});
