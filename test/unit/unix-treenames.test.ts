// The names of unix sockets of a tree with its own mount namespace (unix-treenames.ts):
// every step is taken from the tree's root, never from cryo's view, where the same
// path names a file of the host. The tree's root here is a directory R, and the
// names are paths that exist on this side too (under the test's own directory H):
// what is at H must be left alone, what is at R/H is the tree's.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { create, UnixSkEntrySchema, FilePermsEntrySchema } from '../../src/images/index.js';
import { O, SOCK, sock } from '../../src/sys/index.js';
import { rootFs, treeNames } from '../../src/objects/files/unix-treenames.js';

function setup() {
  const h = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-treenames-'));
  const root = path.join(h, 'root');
  fs.mkdirSync(path.join(root, h), { recursive: true });
  const rootFd = fs.openSync(root, O.PATH | O.DIRECTORY);
  const binds: Array<{ name: string; dir: string }> = [];
  // The helper's part, played here: bind in the tree's root (chroot), in `dir`.
  const bindIn = (fd: number, name: Uint8Array, dir: string) => {
    const n = Buffer.from(name).toString();
    binds.push({ name: n, dir });
    const at = n.startsWith('/') ? path.join(root, n) : path.join(root, dir, n);
    sock.bindUnix(fd, Buffer.from(at));
  };
  const done = () => {
    fs.closeSync(rootFd);
    fs.rmSync(h, { recursive: true, force: true });
  };
  return { h, root, names: treeNames(rootFs(rootFd, bindIn)), binds, done };
}

const entry = (name: string, more: Partial<{ nameDir: string; deleted: boolean; mode: number }> = {}) =>
  create(UnixSkEntrySchema, {
    ino: 1, type: SOCK.DGRAM, name: Buffer.from(name),
    ...(more.nameDir ? { nameDir: more.nameDir } : {}),
    ...(more.deleted ? { deleted: true } : {}),
    ...(more.mode ? { filePerms: create(FilePermsEntrySchema, { mode: more.mode, uid: process.getuid!(), gid: process.getgid!() }) } : {}),
  });

/** A socket file made by a bound and closed socket at `p`. */
function socketFile(p: string): fs.Stats {
  const s = sock.socket(1, SOCK.DGRAM);
  sock.bindUnix(s, Buffer.from(p));
  fs.closeSync(s);
  return fs.lstatSync(p);
}

test('tree names: a stale socket file is cleared and the name bound in the tree, with its mode; the host\'s file at the same path stays', () => {
  const { h, root, names, binds, done } = setup();
  try {
    const name = path.join(h, 'x.sock');
    const host = socketFile(name);
    socketFile(path.join(root, name));
    const fd = sock.socket(1, SOCK.DGRAM);
    try {
      assert.equal(names.bind(fd, entry(name, { mode: 0o140604 })), undefined);
      assert.deepEqual(binds, [{ name, dir: '/' }]);
      assert.equal(fs.lstatSync(path.join(root, name)).mode & 0o7777, 0o604);
      const now = fs.lstatSync(name);
      assert.equal(now.ino, host.ino, "the host's file was replaced");
      assert.equal(now.mode, host.mode);
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    done();
  }
});

test('tree names: a relative name is bound in its directory of the tree', () => {
  const { h, root, names, binds, done } = setup();
  try {
    fs.mkdirSync(path.join(h, 'd'));
    fs.mkdirSync(path.join(root, h, 'd'));
    const fd = sock.socket(1, SOCK.DGRAM);
    try {
      names.bind(fd, entry('r.sock', { nameDir: path.join(h, 'd') }));
      assert.deepEqual(binds, [{ name: 'r.sock', dir: path.join(h, 'd') }]);
      assert.ok(fs.lstatSync(path.join(root, h, 'd/r.sock')).isSocket());
      assert.deepEqual(fs.readdirSync(path.join(h, 'd')), []);
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    done();
  }
});

test('tree names: a removed name is bound in the tree with its directories made and taken away again; what the path holds there is put back; the host is left alone', () => {
  const { h, root, names, done } = setup();
  try {
    // The tree's path holds a file now; the host's directories are absent from the tree.
    const name = path.join(h, 'a/b/g.sock');
    fs.mkdirSync(path.join(h, 'a/b'), { recursive: true });
    fs.writeFileSync(path.join(h, 'a/b/g.sock'), 'host');
    const s = sock.socket(1, SOCK.DGRAM);
    const c = sock.socket(1, SOCK.DGRAM);
    try {
      const ghost = names.bind(s, entry(name, { deleted: true }));
      assert.ok(ghost !== undefined);
      assert.ok(!fs.existsSync(path.join(root, h, 'a')), 'the directories made stay in the tree');
      assert.equal(fs.readFileSync(path.join(h, 'a/b/g.sock'), 'utf8'), 'host');
      // Reached through its O_PATH fd.
      names.connect(c, entry('c'), entry(name, { deleted: true }), ghost);
      assert.equal(sock.sendMsg(c, Buffer.from('hi'), []), 2);
      fs.closeSync(ghost);
      // The tree's path holds a file of its own: moved aside for the bind, then back.
      fs.mkdirSync(path.join(root, h, 'a/b'), { recursive: true });
      fs.writeFileSync(path.join(root, name), 'tree');
      const s2 = sock.socket(1, SOCK.DGRAM);
      try {
        fs.closeSync(names.bind(s2, entry(name, { deleted: true }))!);
      } finally {
        fs.closeSync(s2);
      }
      assert.equal(fs.readFileSync(path.join(root, name), 'utf8'), 'tree');
      assert.deepEqual(fs.readdirSync(path.join(root, h, 'a/b')), ['g.sock']);
      assert.equal(fs.readFileSync(path.join(h, 'a/b/g.sock'), 'utf8'), 'host');
    } finally {
      fs.closeSync(s);
      fs.closeSync(c);
    }
  } finally {
    done();
  }
});

test('tree names: a connection by name reaches the tree\'s socket, not the host\'s at the same path', () => {
  const { h, root, names, done } = setup();
  try {
    const name = path.join(h, 'l.sock');
    // Non-blocking: an accept with nothing waiting fails at once.
    const hostL = sock.socket(1, SOCK.STREAM | SOCK.NONBLOCK);
    const treeL = sock.socket(1, SOCK.STREAM | SOCK.NONBLOCK);
    const c = sock.socket(1, SOCK.STREAM);
    try {
      sock.bindUnix(hostL, Buffer.from(name));
      sock.listen(hostL, 1);
      sock.bindUnix(treeL, Buffer.from(path.join(root, name)));
      sock.listen(treeL, 1);
      names.connect(c, entry('c'), entry(name));
      fs.closeSync(sock.accept(treeL));
      // A symlink in the tree leads inside it too, never to the host's path.
      fs.symlinkSync(name, path.join(root, h, 'link.sock'));
      const c2 = sock.socket(1, SOCK.STREAM);
      try {
        names.connect(c2, entry('c'), entry(path.join(h, 'link.sock')));
        fs.closeSync(sock.accept(treeL));
        assert.throws(() => sock.accept(hostL), /EAGAIN/);
      } finally {
        fs.closeSync(c2);
      }
      fs.rmSync(path.join(root, name));
      const c3 = sock.socket(1, SOCK.STREAM);
      try {
        assert.throws(() => names.connect(c3, entry('c'), entry(name)), /in the tree's mount namespace: .*ENOENT/);
      } finally {
        fs.closeSync(c3);
      }
    } finally {
      for (const f of [hostL, treeL, c]) fs.closeSync(f);
    }
  } finally {
    done();
  }
});
