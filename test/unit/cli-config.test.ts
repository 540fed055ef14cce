// Config files: CRIU's line syntax (its own unit-test cases, plus quirks
// checked against parse_statement() compiled from CRIU's source), and the
// order in which files, environment and command line apply.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { configFiles, parseConfigLine, parseConfigText, preParse } from '../../src/options/config.js';
import { parseCommandLine, type ParseEnv, type ParseOutcome } from '../../src/options/parse.js';

describe('config line syntax', () => {
  const cases: Array<[string, string[] | null]> = [
    // The cases of criu/unittest/unit.c.
    ['', []],
    ['\n', []],
    ['# comment\n', []],
    ['#comment\n', []],
    ['tcp-close #comment\n', ['--tcp-close']],
    [' tcp-close #comment\n', ['--tcp-close']],
    ['test "test"\n', ['--test', 'test']],
    ['dsfa "aaaaa \\"bbbbbb\\""\n', ['--dsfa', 'aaaaa "bbbbbb"']],
    ['verbosity 4\n', ['--verbosity', '4']],
    ['verbosity "\n', null],
    ['verbosity 4#comment\n', ['--verbosity', '4']],
    ['verbosity 4 #comment\n', ['--verbosity', '4']],
    ['verbosity 4  #comment\n', ['--verbosity', '4']],
    ['verbosity 4 no-comment\n', null],
    ['lsm-profile "" # more comments\n', ['--lsm-profile', '']],
    ['lsm-profile "something"# comment\n', ['--lsm-profile', 'something']],
    ['#\n', []],
    ['lsm-profile "selinux:something\\"with\\"quotes"\n', ['--lsm-profile', 'selinux:something"with"quotes']],
    ['work-dir "/tmp with spaces" no-comment\n', null],
    ['work-dir "/tmp with spaces"\n', ['--work-dir', '/tmp with spaces']],
    ['a b c d e f g h i\n', null],
    // Quirks of the same function, as the C code behaves.
    ['a b c\n', ['--a', 'b']],
    ['tree\t42\n', ['--tree', '42']],
    ['tree\t42 # x\n', ['--tree\t42']],
    ['tcp-close#x\n', ['--tcp-close#x']],
    ['   \t \n', []],
    ['lsm-profile "a#b"\n', ['--lsm-profile', 'a']],
    ['root "/x"y\n', ['--root', '/x']],
    ['work-dir "/home/USERNAME/criu/my \\"work\\" directory"\n', null],
    ['images-dir /last/line', ['--images-dir', '/last/line']],
  ];
  for (const [line, want] of cases) {
    it(JSON.stringify(line), () => assert.deepEqual(parseConfigLine(line), want));
  }

  it('parses a whole file and reports the failing line', () => {
    assert.deepEqual(parseConfigText('tcp-established\n# c\nwork-dir "/a b"\nno-restore-sibling   # x\n'), {
      ok: true,
      args: ['--tcp-established', '--work-dir', '/a b', '--no-restore-sibling'],
    });
    assert.deepEqual(parseConfigText('tcp-close\nroot "x\n'), { ok: false, line: 2 });
  });
});

describe('config sources', () => {
  it('pre-parses --help, --config and --no-default-config like CRIU', () => {
    assert.deepEqual(preParse(['dump', '--config', '/c']), { help: false, noDefaultConfig: true, configFile: '/c' });
    assert.deepEqual(preParse(['--config=/c']), { help: false, noDefaultConfig: true, configFile: '/c' });
    assert.deepEqual(preParse(['--config']), { help: false, noDefaultConfig: true, configFile: undefined });
    assert.deepEqual(preParse(['--no-default-config']), { help: false, noDefaultConfig: true, configFile: undefined });
    assert.equal(preParse(['dump', '-t', '1', '--', '-h']).help, true);
    assert.equal(preParse(['--he']).help, false);
  });
  it('lists global, user, env and --config files in that order', () => {
    const env = { HOME: '/home/u', CRIU_CONFIG_FILE: '/env.conf' };
    assert.deepEqual(configFiles(preParse(['dump']), env).map((f) => f.path), [
      '/etc/criu/default.conf',
      '/home/u/.criu/default.conf',
      '/env.conf',
    ]);
    // --config switches the default files off but not CRIU_CONFIG_FILE.
    assert.deepEqual(configFiles(preParse(['--config', '/c']), env).map((f) => f.path), ['/env.conf', '/c']);
    assert.deepEqual(configFiles(preParse(['--no-default-config']), {}).map((f) => f.path), []);
    assert.deepEqual(configFiles(preParse([]), {}).map((f) => f.path), ['/etc/criu/default.conf']);
  });
});

describe('config precedence', () => {
  const penv = (files: Record<string, string>, env: Record<string, string> = {}): ParseEnv => ({
    env: { HOME: '/home/u', ...env },
    cwd: '/w',
    progName: 'criu',
    readFile: (p) => files[p],
  });
  const run = (o: ParseOutcome) => {
    if (o.kind !== 'run') assert.fail(JSON.stringify(o));
    return o.opts;
  };
  const files = {
    '/etc/criu/default.conf': 'tcp-established\nimages-dir /global\nexternal g\ntimeout 1\n',
    '/home/u/.criu/default.conf': 'images-dir /user\nexternal u\ntimeout 2\nshell-job\n',
    '/env.conf': 'images-dir /env\nexternal e\ntimeout 3\n',
    '/cmd.conf': 'external c\ntimeout 4\n',
  };

  it('applies global, user, env, --config, argv in order; lists accumulate', () => {
    const o = run(parseCommandLine(['check', '--external', 'a'], penv(files, { CRIU_CONFIG_FILE: '/env.conf' })));
    assert.equal(o.imagesDir, '/env');
    assert.equal(o.timeout, 3);
    assert.equal(o.tcpEstablished, true);
    assert.equal(o.shellJob, true);
    assert.deepEqual(o.external, ['g', 'u', 'e', 'a']);
  });
  it('skips the default files with --config, keeps CRIU_CONFIG_FILE', () => {
    const o = run(
      parseCommandLine(['check', '--config', '/cmd.conf', '--timeout=9'], penv(files, { CRIU_CONFIG_FILE: '/env.conf' })),
    );
    assert.deepEqual(o.external, ['e', 'c']);
    assert.equal(o.timeout, 9);
    assert.equal(o.tcpEstablished, false);
    assert.equal(o.imagesDir, '/env');
  });
  it('lets the command line negate a boolean set in a file', () => {
    const o = run(parseCommandLine(['check', '--no-shell-job', '--no-tcp-established'], penv(files)));
    assert.equal(o.shellJob, false);
    assert.equal(o.tcpEstablished, false);
  });
  it('ignores missing files and operands inside files', () => {
    const o = run(parseCommandLine(['check'], penv({ '/etc/criu/default.conf': 'verbosity 4\n' })));
    // "verbosity 4" is --verbosity without an attached value plus a stray "4": one level up.
    assert.equal(o.logLevel, 3);
  });
  it('rejects a malformed file with one error, exit 1', () => {
    const r = parseCommandLine(['check'], penv({ '/etc/criu/default.conf': 'root "open\n' }));
    assert.equal(r.kind, 'error');
    if (r.kind === 'error') {
      assert.equal(r.exitCode, 1);
      assert.match(r.line, /configuration file \/etc\/criu\/default\.conf, line 1/);
    }
  });
  it('reports unknown options in a file like getopt does', () => {
    const r = parseCommandLine(['check'], penv({ '/etc/criu/default.conf': 'bogus-thing\n' }));
    assert.deepEqual(r, { kind: 'error', line: "criu: unrecognized option '--bogus-thing'", usage: true, exitCode: 1 });
  });
  it('honours help and version from a file', () => {
    assert.equal(parseCommandLine(['check'], penv({ '/etc/criu/default.conf': 'version\n' })).kind, 'version');
    assert.equal(parseCommandLine(['check'], penv({ '/etc/criu/default.conf': 'help\n' })).kind, 'help');
  });
});
