// Errors of the image layer. Every problem found in an image file (bad magic, a
// truncated or oversized entry, a message that does not decode, trailing bytes)
// becomes an ImageError naming the file and the byte offset, with a stable code.

/** Stable codes of ImageError. */
export const IMAGE_ERROR_CODES = [
  'IMG_MISSING', // the file does not exist
  'IMG_IO', // the file could not be read or written
  'IMG_BAD_MAGIC', // wrong or missing magic number
  'IMG_TRUNCATED', // the file ends inside a length, a message or a payload
  'IMG_TOO_BIG', // an entry length exceeds the limit
  'IMG_DECODE', // the message bytes are not a valid message of the schema
  'IMG_REQUIRED', // a proto2 required field is missing
  'IMG_ENCODE', // a message given to a writer cannot be written
  'IMG_COUNT', // an image holds a different number of entries than expected
  'IMG_INVALID', // an entry decodes but cannot be right: a dangling id, a size or count out of bounds
] as const;

export type ImageErrorCode = (typeof IMAGE_ERROR_CODES)[number];

const brand = Symbol.for('cryo.ImageError');

export class ImageError extends Error {
  override readonly name = 'ImageError';
  readonly code: ImageErrorCode;
  /** The file name inside the images directory. */
  readonly file: string;
  /** Byte offset in the file where the problem is, when there is one. */
  readonly offset: number | undefined;

  /** `detail` is the message after "file: ", e.g. "entry at offset 8: length 4294967295 exceeds limit". */
  constructor(code: ImageErrorCode, file: string, offset: number | undefined, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${detail}`, options);
    this.code = code;
    this.file = file;
    this.offset = offset;
  }

  /** True for an ImageError from any copy of this module. */
  static is(e: unknown): e is ImageError {
    return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[brand] === true;
  }
}

Object.defineProperty(ImageError.prototype, brand, { value: true });
