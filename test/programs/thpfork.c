/* Transparent huge pages off or on per process, across forks, with memory
 * shared copy-on-write: the parent keeps THP on and fills a 4 MiB region; its
 * child turns THP off and rewrites part of the region; the child's child turns
 * it on again and rewrites another part. cryo keeps THP off in every task while
 * the tree's memory is filled: after restore each task has its own setting back
 * and its own contents. SIGUSR2: the parent flips its setting first (FAIL). */
#include "common.h"
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define LEN (4UL << 20)
#define PG 4096UL

static unsigned char *region;

static void fill(int gen, unsigned long from, unsigned long to)
{
	for (unsigned long o = from; o < to; o += PG)
		memset(region + o, (int)(gen * 37 + o / PG) & 0xff, 64);
}

static int check_mem(int gen)
{
	/* gen 0 wrote all, gen 1 the second MiB, gen 2 the third; every task sees its own. */
	for (unsigned long o = 0; o < LEN; o += PG) {
		int by = 0;
		if (gen >= 1 && o >= (1UL << 20) && o < (2UL << 20))
			by = 1;
		if (gen >= 2 && o >= (2UL << 20) && o < (3UL << 20))
			by = 2;
		unsigned char want = (unsigned char)((by * 37 + o / PG) & 0xff);
		for (int i = 0; i < 64; i++)
			if (region[o + i] != want)
				return -1;
		for (unsigned long i = 64; i < PG; i += 512)
			if (region[o + i])
				return -1;
	}
	return 0;
}

/* The task of generation gen: its check after restore; exit status 0 if right. */
static int verdict(int gen, int want_thp_off)
{
	int ok = 1;
	int off = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	if (off != want_thp_off) {
		failf("gen %d: PR_GET_THP_DISABLE %d, want %d", gen, off, want_thp_off);
		ok = 0;
	}
	if (check_mem(gen)) {
		failf("gen %d: its memory changed", gen);
		ok = 0;
	}
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	int pfd[2], qfd[2], gfd[2];
	pid_t child;
	char c;

	prog_init();
	(void)prog_dir(argc, argv);
	/* 2 MiB aligned, as a huge page would be. */
	unsigned char *raw = mmap(NULL, LEN + (2UL << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	MUST(raw != MAP_FAILED);
	region = (unsigned char *)(((unsigned long)raw + (2UL << 20) - 1) & ~((2UL << 20) - 1));
	MUST(prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0) == 0);
	fill(0, 0, LEN);
	MUST(pipe(pfd) == 0 && pipe(qfd) == 0 && pipe(gfd) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		pid_t grand;
		MUST(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0);
		fill(1, 1UL << 20, 2UL << 20);
		grand = fork();
		MUST(grand >= 0);
		if (grand == 0) {
			MUST(prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0) == 0);
			fill(2, 2UL << 20, 3UL << 20);
			MUST(write(gfd[1], "g", 1) == 1);
			/* Woken by its parent after restore. */
			MUST(read(qfd[0], &c, 1) == 1);
			_exit(verdict(2, 0));
		}
		MUST(read(pfd[0], &c, 1) == 1);
		int st;
		int mine = verdict(1, 1);
		MUST(write(qfd[1], "x", 1) == 1);
		MUST(waitpid(grand, &st, 0) == grand);
		_exit(mine || !WIFEXITED(st) || WEXITSTATUS(st) ? 1 : 0);
	}
	MUST(read(gfd[0], &c, 1) == 1);
	prog_ready();

	if (wait_for_signal())
		prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	int st;
	verdict(0, 0);
	MUST(write(pfd[1], "x", 1) == 1);
	MUST(waitpid(child, &st, 0) == child);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		failf("a child's check failed (status 0x%x)", st);
	return prog_finish();
}
