// The option table itself: complete, consistent, and tied to criu_opts.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { defaultOptions } from '../../src/options/index.js';
import { applyOption, findOption, OPTION_TABLE } from '../../src/options/table.js';
import { applyCpuCap, cAtoi, cStrtoul, parseSize } from '../../src/options/values.js';

/** criu_opts field names of CRIU 4.2's images/rpc.proto. */
const CRIU_OPTS_FIELDS = new Set([
  'images_dir_fd', 'images_dir', 'pid', 'leave_running', 'ext_unix_sk', 'tcp_established', 'evasive_devices',
  'shell_job', 'file_locks', 'log_level', 'log_file', 'ps', 'notify_scripts', 'root', 'parent_img', 'track_mem',
  'auto_dedup', 'work_dir_fd', 'link_remap', 'veths', 'cpu_cap', 'force_irmap', 'exec_cmd', 'ext_mnt',
  'manage_cgroups', 'cg_root', 'rst_sibling', 'inherit_fd', 'auto_ext_mnt', 'ext_sharing', 'ext_masters',
  'skip_mnt', 'enable_fs', 'unix_sk_ino', 'manage_cgroups_mode', 'ghost_limit', 'irmap_scan_paths', 'external',
  'empty_ns', 'join_ns', 'cgroup_props', 'cgroup_props_file', 'cgroup_dump_controller', 'freeze_cgroup',
  'timeout', 'tcp_skip_in_flight', 'weak_sysctls', 'lazy_pages', 'status_fd', 'orphan_pts_master',
  'config_file', 'tcp_close', 'lsm_profile', 'tls_cacert', 'tls_cacrl', 'tls_cert', 'tls_key', 'tls',
  'tls_no_cn_verify', 'cgroup_yard', 'pre_dump_mode', 'pidfd_store_sk', 'lsm_mount_context', 'network_lock',
  'mntns_compat_mode', 'skip_file_rwx_check', 'unprivileged', 'leave_stopped', 'display_stats', 'log_to_stderr',
]);

describe('option table', () => {
  it('declares each long name and short letter once', () => {
    const longs = OPTION_TABLE.map((o) => o.long);
    assert.equal(new Set(longs).size, longs.length);
    const shorts = OPTION_TABLE.flatMap((o) => (o.short ? [o.short] : []));
    assert.equal(new Set(shorts).size, shorts.length);
    // CRIU 4.2 declares 85 options; with the --no-X forms its long array has 112 names.
    assert.equal(OPTION_TABLE.length, 85);
    assert.equal(longs.length + OPTION_TABLE.filter((o) => o.negatable).length, 112);
  });
  it('names real criu_opts fields', () => {
    for (const o of OPTION_TABLE) {
      if (o.rpc === undefined) continue;
      assert.ok(CRIU_OPTS_FIELDS.has(o.rpc.split('.')[0]!), `${o.long}: ${o.rpc}`);
    }
  });
  it('gives every field its default once and fresh lists each time', () => {
    const owners = new Map<string, string>();
    for (const o of OPTION_TABLE) {
      if (o.prop === undefined || o.default === undefined) continue;
      assert.ok(!owners.has(o.prop), `${o.prop} defaulted by ${owners.get(o.prop)} and ${o.long}`);
      owners.set(o.prop, o.long);
    }
    const a = defaultOptions();
    const b = defaultOptions();
    a.external.push('x');
    assert.deepEqual(b.external, []);
    for (const o of OPTION_TABLE) {
      if (o.type === 'list' && o.prop) assert.ok(Array.isArray(a[o.prop]), o.long);
      if (o.negatable && o.prop) assert.equal(typeof a[o.prop], 'boolean', o.long);
    }
  });
  it('applies by type when an option has no custom semantics', () => {
    const o = defaultOptions();
    applyOption(findOption('shell-job')!, o, undefined);
    applyOption(findOption('root')!, o, '/r');
    applyOption(findOption('skip-mnt')!, o, '/a');
    applyOption(findOption('skip-mnt')!, o, '/b');
    assert.deepEqual([o.shellJob, o.root, o.skipMnt], [true, '/r', ['/a', '/b']]);
    applyOption(findOption('j')!, o, undefined, false);
    assert.equal(o.shellJob, false);
  });
});

describe('C value semantics', () => {
  it('atoi', () => {
    assert.deepEqual(['42', ' -7x', '+3', 'x', '', '4294967297', '99999999999999999999'].map(cAtoi), [
      42, -7, 3, 0, 0, 1, -1,
    ]);
  });
  it('strtoul', () => {
    assert.deepEqual(cStrtoul('12,3'), { value: 12n, end: 2 });
    assert.deepEqual(cStrtoul('-1'), { value: (1n << 64n) - 1n, end: 2 });
    assert.deepEqual(cStrtoul(',1'), { value: 0n, end: 0 });
  });
  it('parse_size', () => {
    assert.deepEqual(['10', '1K', '1M', '1G', 'K1'].map(parseSize), [10, 1024, 1 << 20, 1 << 30, 0]);
  });
  it('cpu caps', () => {
    assert.equal(applyCpuCap(5, 'none'), 0);
    assert.equal(applyCpuCap(5, '^none'), 0b1111);
    assert.equal(applyCpuCap(5, 'fpux'), undefined);
  });
});
