/*
 * mapflags: what a mapping is besides its contents must come back.
 *
 * - madvise bits (MADV_DONTFORK, SEQUENTIAL, RANDOM, DONTDUMP, HUGEPAGE,
 *   NOHUGEPAGE, WIPEONFORK), MAP_LOCKED and mlock(), MAP_NORESERVE and
 *   MAP_DROPPABLE: each region's smaps VmFlags of these, compared after restore;
 *   a child forked then has no DONTFORK region and zeroes in the WIPEONFORK one;
 * - guard regions (MADV_GUARD_INSTALL) in an anonymous and a private file
 *   mapping: still faulting after restore, the pages around them intact;
 * - a file opened O_RDWR, mapped MAP_SHARED with PROT_READ and closed: a later
 *   mprotect(PROT_WRITE) must still be allowed, and the write reach the file;
 * - shared anonymous memory mapped privately through /proc/self/map_files and
 *   kept open there: one object, so a write through the shared mapping shows in
 *   the private one where it has no copy of its own, and one through the fd too;
 * - membarrier() registrations;
 * - all of it after setuid(65534), as the locked region must stay locked.
 * SIGUSR2: the locked region is unlocked first.
 */
#include "common.h"

#include <fcntl.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define PG 4096UL
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#define MB_REGISTER_GLOBAL_EXPEDITED (1 << 2)
#define MB_PRIVATE_EXPEDITED (1 << 3)
#define MB_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#define MB_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 6)
#define MB_GET_REGISTRATIONS (1 << 9)

struct region {
	const char *name;
	int flags; /* mmap flags beyond MAP_ANONYMOUS */
	int advice; /* -1: none; -2: mlock() */
	uint8_t *p;
	char vmflags[128];
};

static struct region regions[] = {
	{ "dontfork", MAP_PRIVATE, MADV_DONTFORK },
	{ "sequential", MAP_PRIVATE, MADV_SEQUENTIAL },
	{ "random", MAP_PRIVATE, MADV_RANDOM },
	{ "dontdump", MAP_PRIVATE | MAP_NORESERVE, MADV_DONTDUMP },
	{ "hugepage", MAP_PRIVATE, MADV_HUGEPAGE },
	{ "nohugepage", MAP_PRIVATE, MADV_NOHUGEPAGE },
	{ "wipeonfork", MAP_PRIVATE, MADV_WIPEONFORK },
	{ "map-locked", MAP_PRIVATE | MAP_LOCKED, -1 },
	{ "mlocked", MAP_PRIVATE, -2 },
	{ "droppable", MAP_DROPPABLE, -1 },
};
#define NREGIONS (sizeof(regions) / sizeof(regions[0]))
#define REGION_PAGES 4

/* The VmFlags of interest of the VMA at addr, in smaps order. */
static void vmflags_of(const void *addr, char *out, size_t len)
{
	static const char *const keep[] = { "gd", "lo", "lf", "nr", "ht", "dp", "sr", "rr", "dc", "dd", "mg", "hg", "nh", "wf" };
	char line[512], want[32];
	FILE *f = fopen("/proc/self/smaps", "r");
	int in = 0;

	out[0] = 0;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)addr);
	while (f && fgets(line, sizeof(line), f)) {
		/* A VMA's first line starts with its address; the other lines with a capital letter. */
		if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f'))
			in = strncmp(line, want, strlen(want)) == 0;
		if (!in || strncmp(line, "VmFlags:", 8))
			continue;
		for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
			for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
				if (!strcmp(t, keep[k]) && strlen(out) + 4 < len) {
					strcat(out, t);
					strcat(out, " ");
				}
	}
	if (f)
		fclose(f);
}

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)p)[i] = pattern64(seed, i);
}

static int holds(const uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		if (((const uint64_t *)p)[i] != pattern64(seed, i))
			return 0;
	return 1;
}

static sigjmp_buf segv_jmp;
static volatile sig_atomic_t segv_armed;

static void on_segv(int sig)
{
	(void)sig;
	if (segv_armed)
		siglongjmp(segv_jmp, 1);
	abort();
}

/* 1 if touching p faults (it is written with what it holds). */
static int faults(volatile uint8_t *p)
{
	int hit;

	segv_armed = 1;
	hit = sigsetjmp(segv_jmp, 1) != 0;
	if (!hit)
		*p = *p;
	segv_armed = 0;
	return hit;
}

static long membarrier(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0, 0);
}

int main(int argc, char **argv)
{
	char path[4096];
	uint8_t buf[PG];
	uint8_t *slots, *guard_anon, *guard_file, *ro_map, *shared, *priv;
	int fd, keep_fd, shfd, corrupt;
	long registered = MB_REGISTER_PRIVATE_EXPEDITED | MB_REGISTER_GLOBAL_EXPEDITED | MB_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE;

	prog_init();
	signal(SIGSEGV, on_segv);
	/* One slot each, a PROT_NONE page between them: no two regions merge. */
	MUST((slots = mmap(NULL, NREGIONS * (REGION_PAGES + 1) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) != MAP_FAILED);
	for (size_t i = 0; i < NREGIONS; i++) {
		struct region *r = &regions[i];
		uint8_t *at = slots + i * (REGION_PAGES + 1) * PG;

		MUST((r->p = mmap(at, REGION_PAGES * PG, PROT_READ | PROT_WRITE, r->flags | MAP_ANONYMOUS | MAP_FIXED, -1, 0)) == at);
		if (r->advice >= 0)
			MUST(madvise(r->p, REGION_PAGES * PG, r->advice) == 0);
		if (r->advice == -2)
			MUST(mlock(r->p, REGION_PAGES * PG) == 0);
		fill(r->p, REGION_PAGES * PG, i + 1);
		vmflags_of(r->p, r->vmflags, sizeof(r->vmflags));
	}

	/* Guard regions: pages 1 and 2 of four, anonymous and of a file. */
	snprintf(path, sizeof(path), "%s/mapflags.dat", prog_dir(argc, argv));
	MUST((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	MUST(ftruncate(fd, 8 * PG) == 0);
	MUST((guard_anon = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) != MAP_FAILED);
	MUST((guard_file = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)) != MAP_FAILED);
	fill(guard_anon, 4 * PG, 100);
	fill(guard_file, 4 * PG, 101);
	MUST(madvise(guard_anon + PG, 2 * PG, MADV_GUARD_INSTALL) == 0);
	MUST(madvise(guard_file + PG, 2 * PG, MADV_GUARD_INSTALL) == 0);

	/* A shared read-only mapping of a file opened read-write, the fd closed. */
	MUST((ro_map = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, fd, 4 * PG)) != MAP_FAILED);
	close(fd);
	MUST((keep_fd = open(path, O_RDONLY)) >= 0); /* only to look at the file */

	/* Shared anonymous memory, and a private mapping of it from page 1 on. */
	MUST((shared = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) != MAP_FAILED);
	fill(shared, 4 * PG, 200);
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)(uintptr_t)shared,
		 (unsigned long)(uintptr_t)(shared + 4 * PG));
	MUST((shfd = open(path, O_RDWR)) >= 0);
	MUST((priv = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, shfd, PG)) != MAP_FAILED);
	fill(priv, PG, 201); /* its first page is its own now */

	for (int cmd = MB_REGISTER_GLOBAL_EXPEDITED; cmd <= MB_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE; cmd <<= 2)
		MUST(membarrier(cmd) == 0);
	MUST(membarrier(MB_GET_REGISTRATIONS) == registered);

	MUST(setuid(65534) == 0);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt)
		munlock(regions[8].p, REGION_PAGES * PG);

	for (size_t i = 0; i < NREGIONS; i++) {
		struct region *r = &regions[i];
		char now[128];

		vmflags_of(r->p, now, sizeof(now));
		if (strcmp(now, r->vmflags))
			failf("%s: VmFlags \"%s\", was \"%s\"", r->name, now, r->vmflags);
		/* The kernel may drop a droppable region's contents at any time (and cryo does). */
		if (r->flags != MAP_DROPPABLE && !holds(r->p, REGION_PAGES * PG, i + 1))
			failf("%s: the contents changed", r->name);
	}
	{
		pid_t c = fork();
		int st;

		if (c == 0) {
			const uint8_t *w = regions[6].p;
			int bad = 0;

			for (size_t i = 0; i < REGION_PAGES * PG; i++)
				bad |= w[i];
			char fl[128];

			vmflags_of(regions[0].p, fl, sizeof(fl));
			_exit(bad ? 1 : fl[0] ? 2 : 0); /* wiped, and no VMA at the dontfork region */
		}
		if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st))
			failf("fork to look at DONTFORK and WIPEONFORK: %s", strerror(errno));
		else if (WEXITSTATUS(st) == 1)
			failf("the child did not get the WIPEONFORK region wiped");
		else if (WEXITSTATUS(st) == 2)
			failf("the child got the DONTFORK region");
	}

	for (int i = 0; i < 4; i++) {
		int guarded = i == 1 || i == 2;

		if (faults(guard_anon + i * PG) != guarded)
			failf("anonymous guard region: page %d %s", i, guarded ? "can be written" : "faults");
		if (faults(guard_file + i * PG) != guarded)
			failf("file guard region: page %d %s", i, guarded ? "can be written" : "faults");
	}
	{
		uint64_t *a = (uint64_t *)guard_anon, *f = (uint64_t *)guard_file;

		for (size_t i = 0; i < PG / 8; i++) {
			size_t j = 3 * PG / 8 + i;

			if (a[i] != pattern64(100, i) || a[j] != pattern64(100, j) || f[i] != pattern64(101, i) || f[j] != pattern64(101, j)) {
				failf("guard regions: the pages around the guards changed");
				break;
			}
		}
	}

	if (mprotect(ro_map, PG, PROT_READ | PROT_WRITE))
		failf("mprotect(PROT_WRITE) of the shared file mapping: %s", strerror(errno));
	else {
		ro_map[7] = 0x5a;
		if (msync(ro_map, PG, MS_SYNC) || pread(keep_fd, buf, 8, 4 * PG) != 8 || buf[7] != 0x5a)
			failf("a write to the shared file mapping did not reach the file");
	}

	shared[3 * PG + 5] = 0x77;
	if (priv[2 * PG + 5] != 0x77)
		failf("the private mapping of shared memory does not see a write to its page 2 (another object?)");
	if (!holds(priv, PG, 201))
		failf("the private mapping of shared memory lost its own copy of page 0");
	buf[0] = 0x66;
	if (pwrite(shfd, buf, 1, 2 * PG) != 1 || shared[2 * PG] != 0x66 || priv[PG] != 0x66)
		failf("a write through the fd of the shared memory does not reach its mappings");

	if (membarrier(MB_GET_REGISTRATIONS) != registered)
		failf("membarrier registrations %#lx, were %#lx", membarrier(MB_GET_REGISTRATIONS), registered);
	if (membarrier(MB_PRIVATE_EXPEDITED))
		failf("membarrier(PRIVATE_EXPEDITED): %s", strerror(errno));
	return prog_finish();
}
