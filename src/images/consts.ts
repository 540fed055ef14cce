// Numbers that appear inside image fields and whose meaning is part of the format
// (CRIU's image.h, pagemap.h, pid.h). Pure; no Node imports.

/** pagemap_entry.flags: the pages are in the parent image set (--prev-images-dir). */
export const PE_PARENT = 1 << 0;
/** pagemap_entry.flags: the pages may be restored lazily (lazy-pages). */
export const PE_LAZY = 1 << 1;
/** pagemap_entry.flags: the pages are in this set's pages-<pages_id>.img. */
export const PE_PRESENT = 1 << 2;

/** task_core_entry.task_state (crit prints Alive / Zombie / Stopped). */
export const TASK_ALIVE = 0x01;
export const TASK_DEAD = 0x02;
export const TASK_STOPPED = 0x03;
/** CRIU's in-memory state of a zombie; images say TASK_DEAD (older cryo images say this). */
export const TASK_ZOMBIE = 0x06;
/** Is a core's task state that of a zombie (TASK_DEAD as CRIU writes it, or TASK_ZOMBIE)? */
export const isZombieState = (s: number | undefined): boolean => s === TASK_DEAD || s === TASK_ZOMBIE;

/** vma_entry.status bits. A VMA is VMA_AREA_REGULAR plus what kind of mapping it is. */
export const VMA_AREA_NONE = 0;
export const VMA_AREA_REGULAR = 1 << 0;
export const VMA_AREA_STACK = 1 << 1;
export const VMA_AREA_VSYSCALL = 1 << 2;
export const VMA_AREA_VDSO = 1 << 3;
export const VMA_AREA_HEAP = 1 << 5;
export const VMA_FILE_PRIVATE = 1 << 6;
export const VMA_FILE_SHARED = 1 << 7;
export const VMA_ANON_SHARED = 1 << 8;
export const VMA_ANON_PRIVATE = 1 << 9;
export const VMA_AREA_SYSVIPC = 1 << 10;
export const VMA_AREA_SOCKET = 1 << 11;
export const VMA_AREA_VVAR = 1 << 12;
export const VMA_AREA_AIORING = 1 << 13;
export const VMA_AREA_MEMFD = 1 << 14;
export const VMA_AREA_SHSTK = 1 << 15;
export const VMA_AREA_GUARD = 1 << 16;
export const VMA_AREA_UPROBES = 1 << 17;
export const VMA_EXT_PLUGIN = 1 << 27;
export const VMA_CLOSE = 1 << 28;
export const VMA_NO_PROT_WRITE = 1 << 29;
export const VMA_PREMMAPED = 1 << 30;
/** As an unsigned 32-bit value, the way the field holds it. */
export const VMA_UNSUPP = 0x8000_0000;

/** Number of u32 words in each creds_entry capability set (cap_inh, cap_prm, ...). */
export const CR_CAP_SIZE = 2;
/** Bytes of task comm, NUL included. */
export const TASK_COMM_LEN = 16;
/** Name of the symlink in an images dir that points at the parent images dir. */
export const CR_PARENT_LINK = 'parent';
/** remap_file_path_entry.remap_id bit marking a ghost file (older images). */
export const REMAP_GHOST = 0x8000_0000;
