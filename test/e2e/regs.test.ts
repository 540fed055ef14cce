import { test } from 'node:test';
import { Session } from './harness.js';

test('regs: dump, restore -d: GP, x87, SSE/AVX(/AVX-512) registers, MXCSR, x87 control word, PKRU, fs/gs base held across', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'regs').cycle('regs');
});
