// The answer to query-ext-files goes through the --external option.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { applyQueriedExternals } from '../../src/rpc/options.js';
import { defaultOptions } from '../../src/options/index.js';

describe('query-ext-files answers', () => {
  it('unix[..] and tty[..] are carried out', () => {
    const o = defaultOptions();
    applyQueriedExternals(o, ['unix[123]', 'tty[88:3]']);
    assert.deepEqual(o.external, ['unix[123]', 'tty[88:3]']);
  });

  for (const key of ['file[7:1234]', 'dev[sda]:x', 'dev[sdb]:v']) {
    it(`${key} is refused in one line`, () => {
      const o = defaultOptions();
      assert.throws(() => applyQueriedExternals(o, ['unix[1]', key]), {
        message: `RPC query-ext-files answer: external ${key} is not supported yet`,
      });
    });
  }

  it('mnt[] asks for external mounts found outside (--ext-mount-map auto)', () => {
    const o = defaultOptions();
    applyQueriedExternals(o, ['mnt[]']);
    assert.equal(o.autoExtMnt, true);
  });

  it('an empty answer changes nothing', () => {
    const o = defaultOptions();
    applyQueriedExternals(o, []);
    assert.deepEqual(o, defaultOptions());
  });
});
