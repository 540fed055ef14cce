// binfmt_misc entries: the kernel's text of an entry into CRIU's message, the
// string that registers it again, and the checks of an image's entries.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkBinfmtEntries, parseBinfmtEntry, registerString } from '../../src/objects/mntns/binfmt.js';
import { BinfmtMiscEntrySchema, create, isFieldSet } from '../../src/images/index.js';

test('binfmt: a magic entry (offset, mask, flags, disabled) is read and registered again as the kernel took it', () => {
  const e = parseBinfmtEntry('m', Buffer.from('disabled\ninterpreter /bin/interpreter\nflags: POC\noffset 9\nmagic 7351ff\nmask ff0fff\n'), 'entry m');
  assert.deepEqual([e.enabled, e.interpreter, e.flags, e.offset, e.magic, e.mask], [false, '/bin/interpreter', 'POC', 9, '7351ff', 'ff0fff']);
  assert.equal(isFieldSet(e, BinfmtMiscEntrySchema.field.extension), false);
  assert.equal(registerString(e).toString('latin1'), ':m:M:9:\\x73\\x51\\xff:\\xff\\x0f\\xff:/bin/interpreter:POC');
  // Without a mask, the field stays empty.
  const p = parseBinfmtEntry('p', Buffer.from('enabled\ninterpreter /bin/sh\nflags: \noffset 0\nmagic 6162\n'), 'entry p');
  assert.equal(registerString(p).toString(), ':p:M:0:\\x61\\x62::/bin/sh:');
});

test('binfmt: an extension keeps its bytes, not UTF-8 ones too', () => {
  const raw = Buffer.from([0xe3, 0x46, 0x7c, 0xc2, 0x54, 0x2e, 0x9f]);
  const text = Buffer.concat([Buffer.from('enabled\ninterpreter /bin/bash\nflags: F\nextension .'), raw, Buffer.from('\n')]);
  const e = parseBinfmtEntry('x', text, 'entry x');
  assert.deepEqual(Buffer.from(e.extension), raw);
  assert.deepEqual(registerString(e), Buffer.concat([Buffer.from(':x:E::'), raw, Buffer.from('::/bin/bash:F')]));
});

test('binfmt: text cryo cannot read, an interpreter that is not UTF-8 and an entry without magic or extension are refused, naming the entry', () => {
  assert.throws(() => parseBinfmtEntry('a', Buffer.from('enabled\ninterpreter /bin/sh\nwhat 1\nextension .a\n'), 'entry a'), /^CryoError: entry a: cannot read its line "what 1"$/);
  assert.throws(() => parseBinfmtEntry('b', Buffer.from('enabled\ninterpreter /bin/\xff\nextension .b\n', 'latin1'), 'entry b'), /entry b: its interpreter is not UTF-8/);
  assert.throws(() => parseBinfmtEntry('c', Buffer.from('enabled\ninterpreter /bin/sh\nflags: \n'), 'entry c'), /entry c: neither a magic nor an extension/);
  assert.throws(() => parseBinfmtEntry('d', Buffer.from('enabled\nextension .d\n'), 'entry d'), /entry d: no interpreter/);
});

test('binfmt: image entries no kernel would take are refused before anything is made', () => {
  const ok = create(BinfmtMiscEntrySchema, { name: 'ok', enabled: true, interpreter: '/bin/sh', extension: new Uint8Array([0x61]) });
  checkBinfmtEntries([ok], 'binfmt-misc.img');
  const bad = (fields: Record<string, unknown>) => create(BinfmtMiscEntrySchema, { name: 'x', enabled: true, interpreter: '/bin/sh', extension: new Uint8Array([0x61]), ...fields });
  assert.throws(() => checkBinfmtEntries([ok, ok], 'binfmt-misc.img'), /^CryoError: bad image: binfmt-misc.img: entry "ok": twice$/);
  assert.throws(() => checkBinfmtEntries([bad({ name: 'a/b' })], 'f'), /entry "a\/b": its name/);
  assert.throws(() => checkBinfmtEntries([bad({ name: 'register' })], 'f'), /its name/);
  assert.throws(() => checkBinfmtEntries([bad({ interpreter: '/bin:sh' })], 'f'), /its interpreter/);
  assert.throws(() => checkBinfmtEntries([bad({ flags: 'PX' })], 'f'), /its flags "PX"/);
  assert.throws(() => checkBinfmtEntries([bad({ extension: new Uint8Array([0x61, 0x3a]) })], 'f'), /its extension/);
  assert.throws(() => checkBinfmtEntries([bad({ magic: '7g' })], 'f'), /its magic or mask/);
  assert.throws(() => checkBinfmtEntries([bad({ magic: '7f', mask: 'fff' })], 'f'), /its magic or mask/);
});
