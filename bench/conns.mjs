// The connections case of npm run bench: a process with COUNT established TCP
// connections (bench/conns-target.c) to a peer outside the tree, the benchmark
// itself, dumped and restored with --tcp-established.
//
// While it runs, the peer sends a byte every 2 ms on one connection (the probe)
// and the target echoes it; "outage" is the longest time the peer got no echo,
// from the freeze through the network lock and the restore to the first echo
// after it (TCP's retransmission backoff included: what a client of the
// process sees). After the restore every probe byte must have come back, and a
// message of its own on every connection must be echoed: nothing lost, no
// connection reset. Then the peer closes all, and the target must exit 0.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** h: the benchmark's helpers (runCryo, startTarget, waitFor, reapOrphan, killAndReap, live, cryoFailure, loggedMs, readDumpStats, dropImages, exists). */
export async function benchConns(exe, count, baseDir, workDir, bin, h) {
  const tag = `conns${count}-${path.basename(bin)}`;
  const row = { kind: 'conns', count, fs: path.basename(baseDir) };
  const server = net.createServer({ noDelay: true });
  const socks = [];
  server.on('connection', (s) => {
    s.on('error', (e) => (row.peerError ??= `connection ${socks.indexOf(s)}: ${e.message}`));
    socks.push(s);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: count + 16 }, resolve);
  });
  const images = path.join(baseDir, `images-${tag}`);
  fs.mkdirSync(images);
  let t;
  let done = false;
  let probe;
  try {
    t = await h.startTarget(exe, [String(server.address().port), String(count)], workDir, tag, `${count}-connection`);
    await h.waitFor(`${count} connections at the peer`, () => socks.length === count, 30_000);
    const got = socks.map(() => '');
    const arrivals = [];
    socks.forEach((s, i) =>
      s.on('data', (d) => {
        got[i] += d.toString('latin1');
        if (i === 0) arrivals.push(performance.now());
      }),
    );
    let sent = 0;
    probe = setInterval(() => {
      socks[0].write('p');
      sent++;
    }, 2);
    await h.waitFor('the probe to be echoed', () => got[0].length > 10, 10_000);

    const t0 = performance.now();
    const d = await h.runCryo(['dump', '-t', String(t.pid), '-D', images, '--tcp-established', '-v4', '-o', 'dump.log'], workDir, `${tag}.dump`, bin);
    if (d.code !== 0) throw h.cryoFailure('dump', d, path.join(images, 'dump.log'));
    row.dumpMs = d.ms;
    row.dumpLoggedMs = h.loggedMs(path.join(images, 'dump.log'), 'dumped tree');
    const how = await Promise.race([t.exited, sleep(10_000, undefined, { ref: false }).then(() => undefined)]);
    if (how === undefined) throw new Error(`pid ${t.pid} still runs 10 s after the dump`);
    await h.waitFor(`pid ${t.pid} to leave /proc`, () => !h.exists(t.pid), 10_000);
    h.live.delete(t.pid);
    h.readDumpStats(images, row);

    const pidfile = path.join(workDir, `${tag}.pid`);
    fs.rmSync(pidfile, { force: true });
    const r = await h.runCryo(['restore', '-D', images, '-d', '--tcp-established', '--pidfile', pidfile, '-v4', '-o', 'restore.log'], workDir, `${tag}.restore`, bin);
    const rpid = Number(fs.existsSync(pidfile) ? fs.readFileSync(pidfile, 'utf8').trim() : 0);
    if (rpid > 0 && h.exists(rpid)) h.live.set(rpid, null);
    if (r.code !== 0) throw h.cryoFailure('restore', r, path.join(images, 'restore.log'));
    row.restoreMs = r.ms;
    row.restoreLoggedMs = h.loggedMs(path.join(images, 'restore.log'), 'restored tree');
    if (rpid !== t.pid) throw new Error(`restored pid is ${rpid || '(none)'}, the dumped one was ${t.pid}`);

    const restored = performance.now();
    await h.waitFor('the probe to be echoed after the restore', () => arrivals.at(-1) > restored, 60_000);
    clearInterval(probe);
    probe = undefined;
    await h.waitFor(`all ${sent} probe bytes back`, () => got[0].length >= sent, 30_000);
    if (got[0] !== 'p'.repeat(sent)) throw new Error(`the probe connection echoed ${got[0].length} bytes, not the ${sent} 'p's sent`);
    let gap = 0;
    for (let i = 1; i < arrivals.length; i++) if (arrivals[i] >= t0) gap = Math.max(gap, arrivals[i] - arrivals[i - 1]);
    row.outageMs = gap;

    const base = got.map((g) => g.length);
    socks.forEach((s, i) => s.write(`c${i}.`));
    await h.waitFor(`every connection to echo its message`, () => socks.every((_, i) => got[i].length >= base[i] + `c${i}.`.length), 30_000);
    const bad = socks.findIndex((_, i) => got[i].slice(base[i]) !== `c${i}.`);
    if (bad >= 0) throw new Error(`connection ${bad} echoed "${got[bad].slice(base[bad])}", not "c${bad}."`);
    if (row.peerError) throw new Error(`the peer saw an error: ${row.peerError}`);
    for (const s of socks) s.end();
    const status = await h.reapOrphan(rpid, 30_000);
    if (status?.exited !== 0) throw new Error(`the restored target ended ${JSON.stringify(status)}: ${fs.readFileSync(t.outFile, 'utf8').trim()}`);
    row.intact = true;
    done = true;
  } catch (e) {
    row.error = e.message;
  } finally {
    if (probe) clearInterval(probe);
    for (const s of socks) s.destroy();
    server.close();
    if (t && h.live.has(t.pid)) await h.killAndReap(t.pid);
    h.dropImages(images, done);
  }
  return row;
}
