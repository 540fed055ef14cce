// Terminals that are devices of the system (the console, a virtual terminal):
// reopened by their path, the virtual terminal again the session's
// controlling terminal.
import { test } from 'node:test';
import { Session } from './harness.js';

test('the console and a virtual terminal (the session\'s controlling terminal) come back without --shell-job', { timeout: 30_000 }, async (t) => {
  await Session.for(t, 'ttydev').cycle('ttydev');
});
