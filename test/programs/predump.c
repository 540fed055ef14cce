/*
 * predump: memory that changes between pre-dumps and the dump must come back as
 * it was last, never as a parent image saw it.
 *
 * Region A (256 pages) holds a pattern; each SIGWINCH is one step k (1, 2, 3)
 * that rewrites the pages i % 4 == k % 4 of A and does one more thing:
 *   1: region B is unmapped and a new mapping with other contents put at its
 *      address.
 *   2: region C is moved by mremap onto region D (whose old contents a parent
 *      image holds), a fresh mapping put at C; pages 200-209 of A are dropped
 *      (MADV_DONTNEED: zeroes, until step 3 rewrites some).
 *   3: a child is forked and writes pages i % 4 == 3 of its copy of A with its
 *      own pattern (the parent writes them with step 3's); page 50 of A is
 *      written by the kernel (read() from a pipe); pages 100-109 of A become
 *      read-only (a VMA split).
 * The step count is kept in a file of the scratch dir too, not only in memory
 * (which a bad restore would turn back with the pages). SIGUSR1 checks every
 * page (the child checks its own, the parent waits for its verdict).
 * Prints "STEP k" after each step.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL
#define NA 256
#define NB 32
#define NC 32
#define WORDS (PG / 8)

static char *A, *B, *C, *D;
static int steps;
static pid_t child;
static char stepfile[4096];
static volatile sig_atomic_t got_step;

static void on_step(int sig)
{
	(void)sig;
	got_step = 1;
}

static void fill(char *p, size_t pages, uint64_t seed)
{
	for (size_t i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)(p + i * PG);
		for (size_t j = 0; j < WORDS; j++)
			w[j] = pattern64(seed + i, j);
	}
}

static void check(const char *what, const char *p, size_t pages, uint64_t seed)
{
	for (size_t i = 0; i < pages; i++) {
		const uint64_t *w = (const uint64_t *)(p + i * PG);
		for (size_t j = 0; j < WORDS; j++)
			if (w[j] != pattern64(seed + i, j)) {
				failf("%s page %zu word %zu is %#llx, want %#llx", what, i, j,
				      (unsigned long long)w[j], (unsigned long long)pattern64(seed + i, j));
				return;
			}
	}
}

static void check_zero(const char *what, const char *p, size_t pages)
{
	for (size_t i = 0; i < pages * PG; i++)
		if (p[i]) {
			failf("%s byte %zu is %#x, want 0", what, i, p[i]);
			return;
		}
}

/* The last of steps 1..k that rewrote page i of A, or 0. */
static int last_step(size_t i, int k)
{
	int last = 0;

	for (int s = 1; s <= k; s++)
		if ((int)(i % 4) == s % 4)
			last = s;
	return last;
}

/* The seed of page i of A after `k` steps; `is_child`: the child wrote the i%4==3 pages at step 3. */
static uint64_t a_seed(size_t i, int k, int is_child)
{
	int last = last_step(i, k);

	if (is_child && last == 3)
		return 9000 * 1000;
	return (uint64_t)last * 1000 * 1000 + 7;
}

static void write_a_step(int k, int is_child)
{
	for (size_t i = 0; i < NA; i++) {
		if ((int)(i % 4) != k % 4)
			continue;
		uint64_t *w = (uint64_t *)(A + i * PG);
		for (size_t j = 0; j < WORDS; j++)
			w[j] = pattern64(a_seed(i, k, is_child) + i, j);
	}
}

static void check_a(int k, int is_child)
{
	for (size_t i = 0; i < NA; i++) {
		if (i >= 200 && i < 210 && k >= 2 && last_step(i, k) <= 2) {
			check_zero("A (dropped)", A + i * PG, 1);
			continue;
		}
		if (i == 50 && k >= 3 && !is_child) {
			check("A page 50 (kernel-written)", A + i * PG, 1, 7777);
			continue;
		}
		char what[64];
		snprintf(what, sizeof(what), "A[%zu]%s", i, is_child ? " (child)" : "");
		check(what, A + i * PG, 1, a_seed(i, k, is_child) + i);
	}
}

static int read_stepfile(void)
{
	FILE *f = fopen(stepfile, "r");
	int k = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &k) != 1)
		k = -1;
	fclose(f);
	return k;
}

static void do_step(void)
{
	int k = ++steps;

	if (k > 3) {
		printf("STEP %d (none)\n", k);
		fflush(stdout);
		return;
	}
	if (k == 3) {
		child = fork();
		MUST(child >= 0);
		if (child == 0) {
			sigset_t m;
			write_a_step(3, 1);
			wake_mask(&m);
			while (!got_usr1 && !got_usr2)
				sigsuspend(&m);
			check_a(3, 1);
			_exit(common_fail_count ? 1 : 0);
		}
	}
	write_a_step(k, 0);
	if (k == 1) {
		MUST(mmap(B, NB * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == B);
		fill(B, NB, 2000);
	} else if (k == 2) {
		MUST(mremap(C, NC * PG, NC * PG, MREMAP_MAYMOVE | MREMAP_FIXED, D) == D);
		MUST(mmap(C, NC * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == C);
		fill(C, NC, 3000);
		MUST(madvise(A + 200 * PG, 10 * PG, MADV_DONTNEED) == 0);
	} else {
		int p[2];
		static uint64_t buf[WORDS];
		for (size_t j = 0; j < WORDS; j++)
			buf[j] = pattern64(7777, j);
		MUST(pipe(p) == 0);
		MUST(write(p[1], buf, PG) == (ssize_t)PG);
		MUST(read(p[0], A + 50 * PG, PG) == (ssize_t)PG);
		close(p[0]);
		close(p[1]);
		MUST(mprotect(A + 100 * PG, 10 * PG, PROT_READ) == 0);
	}
	FILE *f = fopen(stepfile, "w");
	MUST(f != NULL);
	fprintf(f, "%d\n", k);
	fclose(f);
	printf("STEP %d\n", k);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t m;

	prog_init();
	snprintf(stepfile, sizeof(stepfile), "%s/predump-steps", prog_dir(argc, argv));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_step;
	MUST(sigaction(SIGWINCH, &sa, NULL) == 0);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGWINCH);
	sigprocmask(SIG_BLOCK, &block, NULL);

	/* Apart from each other (guard gaps), so that no two regions merge. */
	char *base = mmap(NULL, 1024 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	MUST(base != MAP_FAILED);
	A = base + 16 * PG;
	B = A + (NA + 16) * PG;
	C = B + (NB + 16) * PG;
	D = C + (NC + 16) * PG;
	for (char *r = A; r <= D; r = r == A ? B : r == B ? C : D) {
		size_t n = r == A ? NA : r == B ? NB : NC;
		MUST(mmap(r, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == r);
		if (r == D)
			break;
	}
	for (size_t i = 0; i < NA; i++) {
		uint64_t *w = (uint64_t *)(A + i * PG);
		for (size_t j = 0; j < WORDS; j++)
			w[j] = pattern64(a_seed(i, 0, 0) + i, j);
	}
	fill(B, NB, 1000);
	fill(C, NC, 1500);
	fill(D, NC, 4000);
	unlink(stepfile);
	prog_ready();

	wake_mask(&m);
	sigdelset(&m, SIGWINCH);
	for (;;) {
		while (!got_usr1 && !got_usr2 && !got_step)
			sigsuspend(&m);
		if (got_step) {
			got_step = 0;
			do_step();
			continue;
		}
		break;
	}
	int corrupt = got_usr2 != 0;
	int k = read_stepfile();
	if (k < 0)
		k = 0;
	if (k != steps)
		failf("%d steps in memory, %d in %s", steps, k, stepfile);
	if (corrupt)
		A[3 * PG + 8] ^= 1;
	check_a(k, 0);
	check("B", B, NB, k >= 1 ? 2000 : 1000);
	check("C", C, NC, k >= 2 ? 3000 : 1500);
	check("D", D, NC, k >= 2 ? 1500 : 4000);
	if (child > 0) {
		int st;
		kill(child, SIGUSR1);
		if (waitpid(child, &st, 0) != child)
			failf("waitpid(child): %s", strerror(errno));
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failf("the child forked at step 3 found its memory wrong (status %#x)", st);
	}
	return prog_finish();
}
