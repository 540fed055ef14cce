import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** Name of an errno value, e.g. 3 → "ESRCH". */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** glibc's strerror() text of the errnos a write or an open commonly ends with. */
const errnoTexts: Record<string, string> = {
  EPERM: 'Operation not permitted', ENOENT: 'No such file or directory', EIO: 'Input/output error',
  EBADF: 'Bad file descriptor', ENOMEM: 'Cannot allocate memory', EACCES: 'Permission denied',
  EFAULT: 'Bad address', EEXIST: 'File exists', EINVAL: 'Invalid argument', EFBIG: 'File too large',
  ENOSPC: 'No space left on device', EROFS: 'Read-only file system', EPIPE: 'Broken pipe',
  EDQUOT: 'Disk quota exceeded', ENXIO: 'No such device or address', ETXTBSY: 'Text file busy',
};

/** "No space left on device (ENOSPC)": strerror's text and the name, or the name alone. */
export function errnoText(errno: number): string {
  const name = errnoName(errno);
  const text = errnoTexts[name];
  return text ? `${text} (${name})` : name;
}

/** A failed system call: which call, the errno and its name. */
export class SysError extends Error {
  override readonly name = 'SysError';
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`${syscall}${detail ? ` (${detail})` : ''}: ${errnoName(errno)}`);
    this.code = errnoName(errno);
  }

  /** Brand check that survives two copies of the module (undici's trick). */
  static is(e: unknown, code?: string): e is SysError {
    return (
      typeof e === 'object' &&
      e !== null &&
      (e as { name?: unknown }).name === 'SysError' &&
      typeof (e as { errno?: unknown }).errno === 'number' &&
      (code === undefined || (e as SysError).code === code)
    );
  }
}

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const ECHILD = 10;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSYS = 38;
export const EBADRQC = 56;
export const ERESTARTSYS = 512;
export const ERESTARTNOINTR = 513;
export const ERESTARTNOHAND = 514;
export const ERESTART_RESTARTBLOCK = 516;
