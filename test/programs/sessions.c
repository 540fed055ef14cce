/* Sessions that only helpers can make again, in a pid namespace of its own
 * (run as its pid 1, under `unshare --fork --pid`):
 *   O  - in session L, a child of the root: its parent K (L's child) exited
 *        and O was reparented to pid 1;
 *   C  - in session L2 with its parent B in session B, whose parent A is in
 *        session A: B forked C, then called setsid(), and so did A after
 *        forking B (each was born in L2's session);
 *   O3 - in session L3, a child of the subreaper R: its parent K3 exited.
 * After restore the root checks every task's session and group (getsid,
 * getpgid) and each tracked task reports its parent.
 * SIGUSR2: O calls setsid() first (its session is then its own). */
#include "common.h"
#include <sys/prctl.h>
#include <sys/wait.h>

enum { L, O, L2, A, B, C, R, L3, O3, N };
static const char *name[N] = { "L", "O", "L2", "A", "B", "C", "R", "L3", "O3" };
static pid_t pid[N];
static int report[2], rpipe[2];

struct want { pid_t sid, pgid, ppid; };

/* A tracked task: it tells the root its pid, then waits for SIGUSR1 (check: report
 * getppid) or SIGUSR2 (O leaves its session first). */
static void tracked(int k)
{
	sigset_t m;
	pid_t me = getpid();

	int msg[2] = { k, me }; /* one write: the pipe keeps it whole among the others' */
	MUST(write(report[1], msg, sizeof(msg)) == sizeof(msg));
	wake_mask(&m);
	for (;;) {
		while (!got_usr1 && !got_usr2)
			sigsuspend(&m);
		if (got_usr2 && k == O)
			setsid();
		got_usr1 = got_usr2 = 0;
		int got[2] = { k, getppid() };
		MUST(write(rpipe[1], got, sizeof(got)) == sizeof(got));
	}
}

static pid_t fork_or_die(void)
{
	pid_t p = fork();
	MUST(p >= 0);
	return p;
}

/* A session leader whose child K forks `orphan` and exits. */
static void leader_with_orphan(int lk, int ok)
{
	MUST(setsid() == getpid());
	if (fork_or_die() == 0) {
		if (fork_or_die() == 0)
			tracked(ok);
		_exit(0); /* K: its child goes to the nearest reaper */
	}
	MUST(wait(NULL) > 0);
	tracked(lk);
}

int main(int argc, char **argv)
{
	struct want want[N];
	int seen = 0;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(getpid() == 1);
	MUST(pipe(report) == 0 && pipe(rpipe) == 0);
	if (fork_or_die() == 0)
		leader_with_orphan(L, O);
	if (fork_or_die() == 0) {
		MUST(setsid() == getpid());
		if (fork_or_die() == 0) { /* A */
			if (fork_or_die() == 0) { /* B */
				if (fork_or_die() == 0)
					tracked(C);
				usleep(100000);
				MUST(setsid() == getpid());
				tracked(B);
			}
			usleep(200000);
			MUST(setsid() == getpid());
			tracked(A);
		}
		tracked(L2);
	}
	if (fork_or_die() == 0) {
		MUST(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
		if (fork_or_die() == 0)
			leader_with_orphan(L3, O3);
		tracked(R);
	}
	while (seen < N) {
		int msg[2];
		MUST(read(report[0], msg, sizeof(msg)) == sizeof(msg));
		int k = msg[0];
		pid_t p = msg[1];
		MUST(k >= 0 && k < N);
		pid[k] = p;
		seen++;
	}
	usleep(300000); /* A and B have called setsid() */
	/* What each must have: sessions and groups as made, parents after the orphans' moves. */
	want[L] = (struct want){ pid[L], pid[L], 1 };
	want[O] = (struct want){ pid[L], pid[L], 1 };
	want[L2] = (struct want){ pid[L2], pid[L2], 1 };
	want[A] = (struct want){ pid[A], pid[A], pid[L2] };
	want[B] = (struct want){ pid[B], pid[B], pid[A] };
	want[C] = (struct want){ pid[L2], pid[L2], pid[B] };
	want[R] = (struct want){ getsid(0), getpgid(0), 1 };
	want[L3] = (struct want){ pid[L3], pid[L3], pid[R] };
	want[O3] = (struct want){ pid[L3], pid[L3], pid[R] };
	for (int k = 0; k < N; k++)
		MUST(getsid(pid[k]) == want[k].sid && getpgid(pid[k]) == want[k].pgid);
	prog_ready();

	int spoil = wait_for_signal();
	for (int k = 0; k < N; k++)
		MUST(kill(pid[k], spoil && k == O ? SIGUSR2 : SIGUSR1) == 0);
	for (int n = 0; n < N; n++) {
		int got[2];
		MUST(read(rpipe[0], got, sizeof(got)) == sizeof(got));
		int k = got[0];
		pid_t pp = got[1];
		MUST(k >= 0 && k < N);
		if (pp != want[k].ppid)
			failf("%s (pid %d): its parent is %d, not %d", name[k], pid[k], pp, want[k].ppid);
	}
	for (int k = 0; k < N; k++) {
		pid_t sid = getsid(pid[k]), pgid = getpgid(pid[k]);
		if (sid != want[k].sid || pgid != want[k].pgid)
			failf("%s (pid %d): in session %d and group %d, not %d and %d", name[k], pid[k], sid, pgid, want[k].sid, want[k].pgid);
	}
	for (int k = 0; k < N; k++)
		kill(pid[k], SIGKILL);
	return prog_finish();
}
