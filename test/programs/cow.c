/*
 * cow: pages a parent and its child share copy-on-write since the fork must
 * still be shared after restore (one physical page, as /proc/PID/pagemap shows),
 * and each must still see its own contents where they differ.
 *
 * anon: 64 private anonymous pages (PROT_NONE pages around it, so no neighbour
 * merges with it), all written before the fork. After it the child writes pages
 * 8..15, drops 16..23 (MADV_DONTNEED: zero for it, kept by the parent), and the
 * parent writes 24..31. Pages 0..7 and 32..63 stay shared.
 * file: a private mapping of an 8-page file; the parent writes pages 0..3 before
 * the fork (copies of its own), the child page 2 after it. Pages 0, 1 and 3 stay
 * shared, 4..7 are the file's.
 *
 * On SIGUSR1 the parent checks its contents and the sharing, then wakes the child,
 * which checks its own contents and exits 0 or 1. SIGUSR2: the parent rewrites
 * anon page 0 with its own value first, which ends the sharing of that page.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL
#define ANON_PAGES 64
#define FILE_PAGES 8

enum { SEED_ANON = 1, SEED_CHILD = 2, SEED_PARENT = 3, SEED_FILE = 4, SEED_PRIV = 5, SEED_CHILD_FILE = 6 };

static uint8_t *anon;
static uint8_t *fmap;

static void fill(uint8_t *p, uint64_t seed, uint64_t page)
{
	uint64_t *w = (uint64_t *)p;

	for (size_t i = 0; i < PG / 8; i++)
		w[i] = pattern64(seed, page * (PG / 8) + i);
}

/* 1 if the page holds the pattern (seed 0: zeroes). */
static int holds(const uint8_t *p, uint64_t seed, uint64_t page)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < PG / 8; i++)
		if (w[i] != (seed ? pattern64(seed, page * (PG / 8) + i) : 0))
			return 0;
	return 1;
}

/* The pagemap entry of addr in pid's address space (PFN and present bit). */
static uint64_t pagemap_of(pid_t pid, const void *addr)
{
	char path[64];
	uint64_t e = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)addr / PG) * 8) != 8)
		failf("cannot read %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return e;
}

#define PRESENT (1ULL << 63)
#define PFN(e) ((e) & ((1ULL << 55) - 1))

static void check_shared(pid_t child, const char *what, const uint8_t *p, int page, int want)
{
	uint64_t a = pagemap_of(getpid(), p), b = pagemap_of(child, p);
	int shared = (a & PRESENT) && (b & PRESENT) && PFN(a) && PFN(a) == PFN(b);

	if (shared != want)
		failf("%s page %d is %sshared with the child (pfn %#llx and %#llx)", what, page, shared ? "" : "not ",
		      (unsigned long long)PFN(a), (unsigned long long)PFN(b));
}

static int child_check(void)
{
	int bad = 0;

	for (int i = 0; i < ANON_PAGES; i++) {
		uint64_t seed = i >= 8 && i < 16 ? SEED_CHILD : i >= 16 && i < 24 ? 0 : SEED_ANON;

		if (!holds(anon + i * PG, seed, i)) {
			fprintf(stderr, "child: anon page %d is not as the child left it\n", i);
			bad = 1;
		}
	}
	for (int i = 0; i < FILE_PAGES; i++) {
		uint64_t seed = i == 2 ? SEED_CHILD_FILE : i < 4 ? SEED_PRIV : SEED_FILE;

		if (!holds(fmap + i * PG, seed, i)) {
			fprintf(stderr, "child: file page %d is not as the child left it\n", i);
			bad = 1;
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	char path[4096];
	uint8_t page[PG];
	uint8_t *area;
	pid_t child;
	int fd, status, corrupt, ready[2];

	prog_init();
	snprintf(path, sizeof(path), "%s/cow.dat", prog_dir(argc, argv));
	MUST((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	for (int i = 0; i < FILE_PAGES; i++) {
		fill(page, SEED_FILE, i);
		MUST(write(fd, page, PG) == (ssize_t)PG);
	}
	MUST((fmap = mmap(NULL, FILE_PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)) != MAP_FAILED);
	close(fd);
	MUST((area = mmap(NULL, (ANON_PAGES + 2) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) != MAP_FAILED);
	anon = area + PG;
	MUST(mprotect(anon, ANON_PAGES * PG, PROT_READ | PROT_WRITE) == 0);
	for (int i = 0; i < ANON_PAGES; i++)
		fill(anon + i * PG, SEED_ANON, i);
	for (int i = 0; i < 4; i++)
		fill(fmap + i * PG, SEED_PRIV, i);

	MUST(pipe(ready) == 0);
	MUST((child = fork()) >= 0);
	if (child == 0) {
		for (int i = 8; i < 16; i++)
			fill(anon + i * PG, SEED_CHILD, i);
		MUST(madvise(anon + 16 * PG, 8 * PG, MADV_DONTNEED) == 0);
		fill(fmap + 2 * PG, SEED_CHILD_FILE, 2);
		MUST(write(ready[1], "", 1) == 1);
		close(ready[0]);
		close(ready[1]);
		wait_for_signal();
		_exit(child_check());
	}
	/* The child's writes come first. */
	MUST(read(ready[0], page, 1) == 1);
	close(ready[0]);
	close(ready[1]);
	for (int i = 24; i < 32; i++)
		fill(anon + i * PG, SEED_PARENT, i);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt) {
		volatile uint64_t *w = (volatile uint64_t *)anon;

		*w = *w; /* the same value, in a copy of the parent's own */
	}
	for (int i = 0; i < ANON_PAGES; i++) {
		uint64_t seed = i >= 24 && i < 32 ? SEED_PARENT : SEED_ANON;

		if (!holds(anon + i * PG, seed, i))
			failf("anon page %d is not as the parent left it", i);
	}
	for (int i = 0; i < FILE_PAGES; i++)
		if (!holds(fmap + i * PG, i < 4 ? SEED_PRIV : SEED_FILE, i))
			failf("file page %d is not as the parent left it", i);
	for (int i = 0; i < ANON_PAGES; i++)
		check_shared(child, "anon", anon + i * PG, i, i < 8 || i >= 32);
	for (int i = 0; i < 4; i++)
		check_shared(child, "file", fmap + i * PG, i, i != 2);

	kill(child, SIGUSR1);
	if (waitpid(child, &status, 0) != child)
		failf("waitpid: %s", strerror(errno));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("the child found its memory changed (status %#x)", status);
	return prog_finish();
}
