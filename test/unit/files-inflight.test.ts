// The home task of a file in flight, as dump and restore both find it.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { carriersOf, homeOf, inflightHomes, queuedRights } from '../../src/objects/files/inflight.js';

describe('files in flight', () => {
  const facts = (held: Record<number, string>, packets: Array<[number, number[]]>) => ({
    holder: (id: number) => held[id],
    carriers: carriersOf(packets.map(([idFor, rights]) => ({ idFor, rights }))),
  });

  it('a file a task holds is at home there, whatever carries it', () => {
    assert.equal(homeOf(5, facts({ 5: 'A', 1: 'B' }, [[1, [5]]])), 'A');
  });

  it('a file only in flight is at home with the first holder of the socket carrying it, through sockets in flight', () => {
    // 1 (held by A) carries 2, which carries 3.
    assert.equal(homeOf(3, facts({ 1: 'A' }, [[1, [2]], [2, [3]]])), 'A');
  });

  it('the carriers go by socket, in the order of each socket\'s first packet', () => {
    // Socket 1 queues first (a packet without fds), then 2 carries 9, then 1 carries 9.
    const c = carriersOf([{ idFor: 1, rights: [] }, { idFor: 2, rights: [9] }, { idFor: 1, rights: [9] }]);
    assert.deepEqual(c(9), [1, 2]);
    assert.equal(homeOf(9, facts({ 1: 'A', 2: 'B' }, [[1, []], [2, [9]], [1, [9]]])), 'A');
  });

  it('a loop of sockets in flight that no task reaches has no home; one that a task reaches has', () => {
    assert.equal(homeOf(3, facts({}, [[2, [3]], [3, [2]]])), undefined);
    assert.equal(homeOf(3, facts({ 1: 'A' }, [[2, [3]], [3, [2, 3]], [1, [2]]])), 'A');
  });

  it('inflightHomes: only files no task holds, by the pid of their home, from sk-queues as restore holds it', () => {
    const pkt = (rights: number[]) => ({ msg: { scm: rights.length ? [{ rights }] : [] } });
    const queues = new Map([[10, [pkt([]), pkt([20, 30])]], [20, [pkt([40])]]]);
    const tasks = [{ pid: 7, fdinfo: [{ id: 10 }, { id: 30 }] }, { pid: 8, fdinfo: [{ id: 10 }] }, { pid: 9 }];
    assert.deepEqual([...inflightHomes(tasks, queues)], [[7, [20, 40]]]);
    assert.deepEqual(queuedRights(queues), [{ idFor: 10, rights: [] }, { idFor: 10, rights: [20, 30] }, { idFor: 20, rights: [40] }]);
  });
});
