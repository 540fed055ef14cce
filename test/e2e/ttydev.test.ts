// Terminals that are no live pty pair: devices of the system (the console, a
// virtual terminal) and pty slaves hung up by the close of their master. Devices are
// reopened by their path, the virtual terminal again the session's
// controlling terminal.
import { test } from 'node:test';
import { Session } from './harness.js';

test('the console and a virtual terminal (the session\'s controlling terminal) come back without --shell-job', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'ttydev').cycle('ttydev');
});

test('pty slaves hung up by the close of their master come back hung up, with their number, as separate open files', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'ptyhung').cycle('ptyhung');
});
