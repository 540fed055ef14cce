/*
 * bench tree target: a tree of 1 + K + K*G processes (default K=9 children,
 * G=10 grandchildren each: 100 processes). Every process dirties P bytes of
 * private anonymous memory (default 64 KiB) with a pattern of its own, then
 * waits in sigsuspend() for SIGUSR1.
 *
 * Every descendant reports to the root with a queued SIGRTMIN once it is set
 * up; the root prints "READY <n> processes" once all did.
 *
 * On SIGUSR1 the root signals its children, each child signals its own
 * children; every process checks its memory and its parent (getppid()),
 * reaps its children and exits 0 only if it and all its children were fine.
 * The root prints "OK ..." and exits 0, or "BAD ..." lines and exits 1.
 *
 * Usage: tree-target [K [G [BYTES]]]      (compiled by bench/bench.mjs)
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXKIDS 1024

static volatile sig_atomic_t got_usr1;
static pid_t kids[MAXKIDS];
static int nkids;
static uint64_t *mem;
static size_t nwords;
static uint64_t seed;
static pid_t parent_at_start;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

static inline uint64_t pattern(uint64_t s, uint64_t i)
{
	uint64_t z = (s << 32) + i + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31)) | 1;
}

static void dirty(size_t bytes, uint64_t s)
{
	seed = s;
	nwords = bytes / 8;
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		_exit(2);
	}
	for (size_t i = 0; i < nwords; i++)
		mem[i] = pattern(seed, i);
}

/* Waits for SIGUSR1 (blocked outside sigsuspend), then passes it on to the kids. */
static void wait_usr1(const sigset_t *waitmask)
{
	while (!got_usr1)
		sigsuspend(waitmask);
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGUSR1);
}

/* Checks own memory and parent; reaps the kids; returns 0 if all fine. */
static int check_and_reap(const char *who)
{
	int bad = 0;

	for (size_t i = 0; i < nwords; i++)
		if (mem[i] != pattern(seed, i)) {
			printf("BAD %s %d: word %zu is %#llx, want %#llx\n", who, getpid(), i,
			       (unsigned long long)mem[i], (unsigned long long)pattern(seed, i));
			bad = 1;
			break;
		}
	if (parent_at_start && getppid() != parent_at_start) {
		printf("BAD %s %d: parent %d, was %d\n", who, getpid(), getppid(), parent_at_start);
		bad = 1;
	}
	for (int i = 0; i < nkids; i++) {
		int st;
		pid_t r;

		while ((r = waitpid(kids[i], &st, 0)) < 0 && errno == EINTR)
			;
		if (r != kids[i]) {
			printf("BAD %s %d: waitpid(%d): %s\n", who, getpid(), kids[i], strerror(errno));
			bad = 1;
		} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("BAD %s %d: child %d ended with status %#x\n", who, getpid(), kids[i], st);
			bad = 1;
		}
	}
	fflush(stdout);
	return bad;
}

static pid_t spawn(void (*body)(int, int, size_t, pid_t, const sigset_t *), int a, int b, size_t bytes, pid_t root,
		   const sigset_t *waitmask)
{
	pid_t p = fork();

	if (p < 0) {
		perror("fork");
		return -1;
	}
	if (p == 0) {
		nkids = 0;
		body(a, b, bytes, root, waitmask);
		_exit(0);
	}
	return p;
}

static void grandchild(int k, int g, size_t bytes, pid_t root, const sigset_t *waitmask)
{
	parent_at_start = getppid();
	dirty(bytes, 1000 + (uint64_t)k * 100 + g);
	sigqueue(root, SIGRTMIN, (union sigval){ .sival_int = getpid() });
	wait_usr1(waitmask);
	_exit(check_and_reap("grandchild"));
}

static void child(int k, int ngrand, size_t bytes, pid_t root, const sigset_t *waitmask)
{
	parent_at_start = getppid();
	dirty(bytes, 1 + (uint64_t)k);
	for (int g = 0; g < ngrand; g++) {
		pid_t p = spawn(grandchild, k, g, bytes, root, waitmask);
		if (p < 0)
			_exit(2);
		kids[nkids++] = p;
	}
	sigqueue(root, SIGRTMIN, (union sigval){ .sival_int = getpid() });
	wait_usr1(waitmask);
	_exit(check_and_reap("child"));
}

int main(int argc, char **argv)
{
	int nchild = argc > 1 ? atoi(argv[1]) : 9;
	int ngrand = argc > 2 ? atoi(argv[2]) : 10;
	size_t bytes = (argc > 3 ? strtoull(argv[3], NULL, 0) : 65536) & ~4095ULL;

	if (nchild < 0 || ngrand < 0 || nchild > MAXKIDS || ngrand > MAXKIDS || bytes == 0) {
		fprintf(stderr, "usage: %s [K [G [BYTES]]]\n", argv[0]);
		return 2;
	}

	/* SIGUSR1 and SIGRTMIN blocked everywhere but in sigsuspend (SIGUSR1 only). */
	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGUSR1);
	sigaddset(&waitmask, SIGRTMIN);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);

	pid_t root = getpid();
	parent_at_start = 0; /* the root's parent changes: the bench, then cryo's restore */
	dirty(bytes, 0);
	for (int k = 0; k < nchild; k++) {
		pid_t p = spawn(child, k, ngrand, bytes, root, &waitmask);
		if (p < 0)
			return 2;
		kids[nkids++] = p;
	}

	int want = nchild + nchild * ngrand, got = 0;
	sigset_t rt;
	sigemptyset(&rt);
	sigaddset(&rt, SIGRTMIN);
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 60;
	while (got < want) {
		struct timespec now, left = { 1, 0 };
		siginfo_t si;

		if (sigtimedwait(&rt, &si, &left) == SIGRTMIN) {
			got++;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec) {
			printf("BAD only %d of %d descendants reported\n", got, want);
			fflush(stdout);
			return 2;
		}
	}
	printf("READY %d processes\n", 1 + want);
	fflush(stdout);

	wait_usr1(&waitmask);
	if (check_and_reap("root")) {
		printf("BAD tree\n");
		fflush(stdout);
		return 1;
	}
	printf("OK %d processes intact, all exited 0\n", 1 + want);
	fflush(stdout);
	return 0;
}
