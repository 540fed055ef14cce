// An images directory: CRIU's -D / images_dir_fd. Holds the directory open by fd and
// reads and writes whole image files through /proc/self/fd/<fd>/<name>, so that a
// directory passed as an fd over RPC works the same as one named on the command line.
import * as fs from 'node:fs';
import type { Message } from '@bufbuild/protobuf';
import { DEFAULT_MAX_ENTRY_SIZE, decodeImage, encodeEntry, encodeImage, headerBytes, type Entry } from './codec.js';
import { ImageError } from './errors.js';
import {
  fileName,
  kindOf,
  type AnyEntryOf,
  type EntryOf,
  type ImageArg,
  type ImageEntries,
  type KindKey,
  type PbKindKey,
  type RawKindKey,
} from './magic.js';

/** Mode of the image files we create (CRIU's CR_FD_PERM, 0644). */
export const IMAGE_FILE_MODE = 0o644;

export interface ImageDirOptions {
  /** Open for writing images (dump); reading is always allowed. */
  write: boolean;
  /** Largest accepted entry length when reading; DEFAULT_MAX_ENTRY_SIZE when absent. */
  maxEntrySize?: number;
}

/** Writes one image file entry by entry; for large images (pagemap, pipes-data). */
export interface ImageWriter<K extends PbKindKey> {
  /** The file name, e.g. "pagemap-42.img". */
  readonly file: string;
  /** Entries written so far. */
  readonly count: number;
  /** Appends an entry; the first one is the head for kinds with a head. */
  add(msg: AnyEntryOf<K>, extra?: Uint8Array): void;
  /** Flushes and closes the file. Idempotent. */
  close(): void;
}

// libuv opens every file with O_CLOEXEC, so fds from here never leak into children.
const FLUSH_AT = 1 << 20;

function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null ? ((e as { code?: string }).code ?? undefined) : undefined;
}

class FileWriter<K extends PbKindKey> implements ImageWriter<K> {
  private parts: Uint8Array[] = [];
  private buffered = 0;
  private fd: number | undefined;
  count = 0;

  constructor(
    private readonly key: K,
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
    this.push(headerBytes(key));
  }

  add(msg: AnyEntryOf<K>, extra?: Uint8Array): void {
    if (this.fd === undefined) throw new ImageError('IMG_ENCODE', this.file, undefined, 'writer is closed');
    for (const p of encodeEntry(this.key, msg as Message, extra, this.count === 0, this.file)) this.push(p);
    this.count++;
  }

  private push(p: Uint8Array): void {
    if (p.length >= FLUSH_AT) {
      this.flush();
      this.writeAll(p);
      return;
    }
    this.parts.push(p);
    this.buffered += p.length;
    if (this.buffered >= FLUSH_AT) this.flush();
  }

  private flush(): void {
    if (this.parts.length === 0) return;
    const buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.buffered = 0;
    this.writeAll(buf);
  }

  private writeAll(buf: Uint8Array): void {
    try {
      let off = 0;
      while (off < buf.length) off += fs.writeSync(this.fd!, buf, off, buf.length - off);
    } catch (e) {
      throw new ImageError('IMG_IO', this.file, undefined, `write: ${(e as Error).message}`, { cause: e });
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      this.flush();
    } finally {
      const fd = this.fd;
      this.fd = undefined;
      fs.closeSync(fd);
    }
  }
}

export class ImageDir {
  /** The directory fd; owned (closed by close()) unless the dir came from fromFd(). */
  readonly fd: number;
  /** The directory as given, for messages. */
  readonly path: string;
  readonly writable: boolean;
  readonly maxEntrySize: number;
  private readonly ownsFd: boolean;
  private closed = false;
  /** pages-<id>.img served from another file (an fd of ours, closed with the dir): see overridePages(). */
  private readonly pageOverrides = new Map<number, number>();

  private constructor(fd: number, path: string, ownsFd: boolean, opts: ImageDirOptions) {
    this.fd = fd;
    this.path = path;
    this.ownsFd = ownsFd;
    this.writable = opts.write;
    this.maxEntrySize = opts.maxEntrySize ?? DEFAULT_MAX_ENTRY_SIZE;
  }

  /** Opens an existing directory. Throws the fs error (ENOENT, ENOTDIR, EACCES) as is. */
  static open(path: string, opts: ImageDirOptions): ImageDir {
    const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    return new ImageDir(fd, path, true, opts);
  }

  /** Wraps a directory fd we do not own (criu_opts.images_dir_fd); close() leaves it open. */
  static fromFd(fd: number, opts: ImageDirOptions): ImageDir {
    const st = fs.fstatSync(fd);
    if (!st.isDirectory()) throw new TypeError(`images fd ${fd} is not a directory`);
    return new ImageDir(fd, `fd ${fd}`, false, opts);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) fs.closeSync(this.fd);
    for (const fd of this.pageOverrides.values()) fs.closeSync(fd);
    this.pageOverrides.clear();
  }

  /**
   * From now on pages-<id>.img is the file of `fd` (taken over: closed with the
   * dir), e.g. a memfd of pages gathered from parent images.
   */
  overridePages(id: number, fd: number): void {
    const old = this.pageOverrides.get(id);
    if (old !== undefined) fs.closeSync(old);
    this.pageOverrides.set(id, fd);
  }

  /** The file name of an image, e.g. fileName('core', 42) = "core-42.img". */
  fileName(kind: KindKey, arg?: ImageArg): string {
    return fileName(kind, arg);
  }

  /** A path that opens the image from any process of ours: /proc/self/fd/<fd>/<name>. */
  pathOf(kind: KindKey, arg?: ImageArg): string {
    const over = kind === 'pages' ? this.pageOverrides.get(Number(arg)) : undefined;
    if (over !== undefined) return `/proc/self/fd/${over}`;
    return this.pathOfName(fileName(kind, arg));
  }

  /** Same as pathOf() for a file name (for files outside the kinds table). */
  pathOfName(name: string): string {
    if (this.closed) throw new Error(`image directory ${this.path} is closed`);
    if (name.includes('/') || name === '' || name === '.' || name === '..') throw new TypeError(`bad image file name ${name}`);
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  exists(kind: KindKey, arg?: ImageArg): boolean {
    return fs.existsSync(this.pathOf(kind, arg));
  }

  /** Removes an image if it is there. */
  remove(kind: KindKey, arg?: ImageArg): void {
    try {
      fs.unlinkSync(this.pathOf(kind, arg));
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
  }

  private mustWrite(name: string): void {
    if (!this.writable) throw new ImageError('IMG_IO', name, undefined, `image directory ${this.path} is open read-only`);
  }

  private create(name: string): number {
    this.mustWrite(name);
    try {
      return fs.openSync(this.pathOfName(name), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, IMAGE_FILE_MODE);
    } catch (e) {
      throw new ImageError('IMG_IO', name, undefined, `create: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Writes a whole image: magic(s), then every entry. Entries are messages, or
   * `{msg, extra}` for kinds with a payload; the first is the head for pagemap.
   */
  write<K extends PbKindKey>(kind: K, entries: ImageEntries<K> | readonly Entry<AnyEntryOf<K>>[], arg?: ImageArg): void {
    const name = fileName(kind, arg);
    const bytes = encodeImage(kind, entries as readonly AnyEntryOf<K>[], name);
    const fd = this.create(name);
    try {
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
    } catch (e) {
      throw new ImageError('IMG_IO', name, undefined, `write: ${(e as Error).message}`, { cause: e });
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Opens an image for writing entry by entry. Call close() on the writer. */
  openWriter<K extends PbKindKey>(kind: K, arg?: ImageArg): ImageWriter<K> {
    const name = fileName(kind, arg);
    const fd = this.create(name);
    try {
      return new FileWriter(kind, name, fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private load(name: string): Buffer {
    try {
      return fs.readFileSync(this.pathOfName(name));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new ImageError('IMG_MISSING', name, undefined, `no such image in ${this.path}`, { cause: e });
      throw new ImageError('IMG_IO', name, undefined, `read: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Reads every entry with its payload (if the kind has one). */
  readEntries<K extends PbKindKey>(kind: K, arg?: ImageArg): Entry<AnyEntryOf<K>>[] {
    const name = fileName(kind, arg);
    return decodeImage(kind, this.load(name), name, { maxEntrySize: this.maxEntrySize });
  }

  /** Reads every message of an image (payloads dropped); `[head, ...entries]` for pagemap. */
  read<K extends PbKindKey>(kind: K, arg?: ImageArg): ImageEntries<K> {
    return this.readEntries(kind, arg).map((e) => e.msg) as ImageEntries<K>;
  }

  /** Like read(), but undefined when the image does not exist (CRIU's optional images). */
  tryRead<K extends PbKindKey>(kind: K, arg?: ImageArg): ImageEntries<K> | undefined {
    try {
      return this.read(kind, arg);
    } catch (e) {
      if (ImageError.is(e) && e.code === 'IMG_MISSING') return undefined;
      throw e;
    }
  }

  /** Reads an image that must hold exactly one entry (core, mm, fs, inventory, stats). */
  readOne<K extends PbKindKey>(kind: K, arg?: ImageArg): EntryOf<K> {
    const all = this.read(kind, arg) as unknown as EntryOf<K>[];
    if (all.length !== 1) {
      throw new ImageError('IMG_COUNT', fileName(kind, arg), undefined, `expected exactly one entry, found ${all.length}`);
    }
    return all[0]!;
  }

  /**
   * Opens a raw image (pages-<id>.img, ip dumps, tarballs) and returns the fd:
   * 'r' read-only, 'w' created or truncated. The caller closes it.
   */
  openRaw(kind: RawKindKey, arg: ImageArg | undefined, mode: 'r' | 'w'): number {
    if (!kindOf(kind).raw) throw new TypeError(`image kind ${kind} is not raw`);
    const name = fileName(kind, arg);
    if (mode === 'w') return this.create(name);
    try {
      return fs.openSync(this.pathOf(kind, arg), fs.constants.O_RDONLY);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new ImageError('IMG_MISSING', name, undefined, `no such image in ${this.path}`, { cause: e });
      throw new ImageError('IMG_IO', name, undefined, `open: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Opens pages-<id>.img (id from pagemap_head.pages_id); see openRaw(). */
  openPages(id: number, mode: 'r' | 'w'): number {
    return this.openRaw('pages', id, mode);
  }
}
