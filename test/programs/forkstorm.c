/*
 * forkstorm: a tree that never holds still. The root forks short-lived
 * children without pause (at most MAX_KIDS alive at a time); child number i
 * forks a grandchild that exits with status grand_code(i), checks that it
 * got exactly that status, and exits with kid_code(i) (or 200 if the check
 * failed). So at any moment some children and grandchildren are being born,
 * some are running, some are exiting and some are zombies: a dump sees tasks
 * vanish between listing and seizing them.
 *
 * The root keeps a table of its live children by pid and checks the status of
 * every child it reaps (also of zombies a restore brought back). READY once
 * READY_AFTER children were reaped. On SIGUSR1 it stops forking, reaps the
 * rest, checks that forking still works, and prints PASS or FAIL. SIGUSR2:
 * the root first changes the expected status of one live child, so the
 * check must fail.
 */
#include "common.h"

#include <sys/wait.h>
#include <time.h>

#define MAX_KIDS 12
#define READY_AFTER 200

struct kid {
	pid_t pid;
	unsigned idx;
};

static struct kid kids[MAX_KIDS];
static unsigned nkids;
static unsigned long reaped;

static int grand_code(unsigned i)
{
	return (int)(i * 7 % 90) + 10;
}

static int kid_code(unsigned i)
{
	return (int)(i % 50) + 1;
}

/* Lifetimes of 0 to 4 ms, so that tasks end at every moment of a dump. */
static void spin(unsigned i)
{
	struct timespec ts = { 0, (long)(i * 37 % 9) * 500000 };

	nanosleep(&ts, NULL);
}

static void __attribute__((noreturn)) kid_main(unsigned i)
{
	int st;
	pid_t g, w;

	g = fork();
	if (g < 0)
		_exit(201);
	if (g == 0) {
		spin(i + 1);
		_exit(grand_code(i));
	}
	spin(i);
	do
		w = waitpid(g, &st, 0);
	while (w < 0 && errno == EINTR);
	if (w != g || !WIFEXITED(st) || WEXITSTATUS(st) != grand_code(i))
		_exit(200);
	_exit(kid_code(i));
}

/* Checks a reaped child against the table and drops it from there. */
static void account(pid_t pid, int st)
{
	unsigned k;

	for (k = 0; k < nkids && kids[k].pid != pid; k++)
		;
	if (k == nkids) {
		failf("reaped pid %d, which is not a child of ours", pid);
		return;
	}
	if (!WIFEXITED(st))
		failf("child %u (pid %d) ended with wait status 0x%x, not an exit", kids[k].idx, pid, st);
	else if (WEXITSTATUS(st) == 200)
		failf("child %u (pid %d): its grandchild did not exit with %d", kids[k].idx, pid,
		      grand_code(kids[k].idx));
	else if (WEXITSTATUS(st) != kid_code(kids[k].idx))
		failf("child %u (pid %d) exited with %d, want %d", kids[k].idx, pid, WEXITSTATUS(st),
		      kid_code(kids[k].idx));
	kids[k] = kids[--nkids];
	reaped++;
}

/* Reaps what has ended; blocks for one child when `block`. */
static void reap(int block)
{
	int st;
	pid_t p;

	for (;;) {
		p = waitpid(-1, &st, block ? 0 : WNOHANG);
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0)
			return;
		account(p, st);
		block = 0;
	}
}

int main(void)
{
	sigset_t wake;
	struct timespec zero = { 0, 0 };
	unsigned next = 0;
	int ready = 0, sig;

	prog_init();
	sigemptyset(&wake);
	sigaddset(&wake, SIGUSR1);
	sigaddset(&wake, SIGUSR2);
	for (;;) {
		sig = sigtimedwait(&wake, NULL, &zero);
		if (sig == SIGUSR1 || sig == SIGUSR2)
			break;
		if (nkids < MAX_KIDS) {
			pid_t p = fork();

			MUST(p >= 0);
			if (p == 0)
				kid_main(next);
			kids[nkids].pid = p;
			kids[nkids].idx = next++;
			nkids++;
		}
		reap(nkids == MAX_KIDS);
		if (!ready && reaped >= READY_AFTER) {
			prog_ready();
			ready = 1;
		}
	}
	if (sig == SIGUSR2 && nkids > 0)
		kids[0].idx++;
	while (nkids > 0) {
		unsigned before = nkids;

		reap(1);
		if (nkids == before) {
			failf("%u children in the table, but waitpid() finds none: %s", nkids, strerror(errno));
			break;
		}
	}
	/* A last round: fork and reap still work after the restore. */
	{
		pid_t p = fork();
		int st;

		MUST(p >= 0);
		if (p == 0)
			kid_main(next);
		kids[0].pid = p;
		kids[0].idx = next;
		nkids = 1;
		if (waitpid(p, &st, 0) != p)
			failf("waitpid(%d): %s", p, strerror(errno));
		else
			account(p, st);
	}
	if (reaped < READY_AFTER)
		failf("only %lu children reaped", reaped);
	return prog_finish();
}
