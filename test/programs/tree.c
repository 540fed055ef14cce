/*
 * tree: a process tree with sessions, process groups and a zombie.
 *
 * The root (a session leader: the harness starts it with setsid) forks
 *   A  - calls setsid() (a session of its own), then forks
 *   AG - A's child, in A's session and group;
 *   B  - setpgid(0, 0): a group of its own in the root's session;
 *   C  - stays in the root's group;
 *   D  - exits with status 7 at once and is not reaped: a zombie;
 *   E  - setpgid(0, B): joins the group whose leader is B, another task.
 * Every live task records its pid, ppid, sid and pgid and reports to the
 * root with a queued SIGRTMIN; the root prints READY once all five did and
 * D is a zombie. On SIGUSR1 the root re-checks its own ids and those of the
 * children as seen from outside (getsid/getpgid), reaps the zombie FIRST
 * (it must still be there, with exit status 7), then sends SIGUSR1 to every
 * descendant: each re-checks its own ids and exits 0 or 1 (A reaps AG and
 * passes its verdict on). The root reaps them all and checks the codes.
 * SIGUSR2: the root first moves C into a group of its own, so C's check
 * (and the root's outside view) must fail.
 *
 * Children print nothing but "check failed: ..." lines on stderr; only the
 * root prints READY and PASS/FAIL.
 */
#include "common.h"

#include <sys/wait.h>
#include <time.h>

enum { KA, KAG, KB, KC, KE, NKIDS };
static const char *kid_name[NKIDS] = { "A (setsid)", "AG (A's child)", "B (own group)", "C (root's group)",
				       "E (in B's group)" };

struct ids {
	pid_t pid, ppid, sid, pgid;
};

static pid_t root_pid;

static void record(struct ids *s)
{
	s->pid = getpid();
	s->ppid = getppid();
	s->sid = getsid(0);
	s->pgid = getpgrp();
}

/* Compares the task's ids now with those recorded before; returns 1 if equal. */
static int check_ids(const char *who, const struct ids *b)
{
	struct ids a;
	int ok = 1;

	record(&a);
	if (a.pid != b->pid) {
		failf("%s: getpid() %d, was %d", who, a.pid, b->pid);
		ok = 0;
	}
	if (a.ppid != b->ppid) {
		failf("%s (pid %d): ppid %d, was %d", who, b->pid, a.ppid, b->ppid);
		ok = 0;
	}
	if (a.sid != b->sid) {
		failf("%s (pid %d): sid %d, was %d", who, b->pid, a.sid, b->sid);
		ok = 0;
	}
	if (a.pgid != b->pgid) {
		failf("%s (pid %d): pgid %d, was %d", who, b->pid, a.pgid, b->pgid);
		ok = 0;
	}
	return ok;
}

/* Tells the root that descendant idx is set up. */
static void notify_root(int idx)
{
	union sigval v = { .sival_int = idx };

	MUST(sigqueue(root_pid, SIGRTMIN, v) == 0);
}

/* The life of a descendant once set up: report, wait, re-check, exit.
 * reap, when > 0, is a child of ours that must exit 0 first. */
static __attribute__((noreturn)) void descendant(int idx, pid_t reap)
{
	struct ids before;
	int ok, st;

	record(&before);
	notify_root(idx);
	wait_for_signal();
	ok = check_ids(kid_name[idx], &before);
	if (reap > 0) {
		pid_t r = waitpid(reap, &st, 0);

		if (r != reap) {
			failf("%s: waitpid(%d): %s", kid_name[idx], reap, strerror(errno));
			ok = 0;
		} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			failf("%s: its child %d ended with status 0x%x", kid_name[idx], reap, st);
			ok = 0;
		}
	}
	_exit(ok ? 0 : 1);
}

static pid_t fork_or_die(void)
{
	pid_t p = fork();

	MUST(p >= 0);
	return p;
}

static void child_a(void)
{
	pid_t g;

	MUST(setsid() == getpid());
	g = fork_or_die();
	if (g == 0)
		descendant(KAG, 0);
	descendant(KA, g);
}

int main(int argc, char **argv)
{
	pid_t kid[NKIDS] = { 0 }, zombie;
	struct ids root_before;
	sigset_t rt;
	siginfo_t si;
	struct timespec limit = { 5, 0 };
	int corrupt, st, got = 0;
	pid_t want_sid[NKIDS], want_pgid[NKIDS];

	(void)argc;
	(void)argv;
	prog_init();
	root_pid = getpid();
	sigemptyset(&rt);
	sigaddset(&rt, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &rt, NULL);
	record(&root_before);
	fflush(stdout);

	kid[KA] = fork_or_die();
	if (kid[KA] == 0)
		child_a();

	kid[KB] = fork_or_die();
	if (kid[KB] == 0) {
		MUST(setpgid(0, 0) == 0);
		descendant(KB, 0);
	}
	/* The classic race-free idiom: the parent sets the group too. */
	if (setpgid(kid[KB], kid[KB]) != 0 && errno != EACCES)
		MUST(0);

	kid[KC] = fork_or_die();
	if (kid[KC] == 0)
		descendant(KC, 0);

	kid[KE] = fork_or_die();
	if (kid[KE] == 0) {
		MUST(setpgid(0, kid[KB]) == 0);
		descendant(KE, 0);
	}
	if (setpgid(kid[KE], kid[KB]) != 0 && errno != EACCES)
		MUST(0);

	zombie = fork_or_die();
	if (zombie == 0)
		_exit(7);

	/* Every live descendant reports once. */
	while (got != (1 << NKIDS) - 1) {
		int idx;

		MUST(sigtimedwait(&rt, &si, &limit) == SIGRTMIN);
		idx = si.si_value.sival_int;
		MUST(idx >= 0 && idx < NKIDS);
		if (idx == KAG)
			kid[KAG] = si.si_pid;
		MUST(si.si_pid == kid[idx]);
		got |= 1 << idx;
	}
	/* Wait until D is a zombie, without reaping it. */
	memset(&si, 0, sizeof(si));
	MUST(waitid(P_PID, zombie, &si, WEXITED | WNOWAIT) == 0);
	MUST(si.si_pid == zombie && si.si_code == CLD_EXITED && si.si_status == 7);

	/* The layout as planned, seen from the root. */
	want_sid[KA] = want_pgid[KA] = kid[KA];
	want_sid[KAG] = want_pgid[KAG] = kid[KA];
	want_sid[KB] = root_pid, want_pgid[KB] = kid[KB];
	want_sid[KC] = root_pid, want_pgid[KC] = root_before.pgid;
	want_sid[KE] = root_pid, want_pgid[KE] = kid[KB];
	MUST(root_before.sid == root_pid);
	for (int i = 0; i < NKIDS; i++)
		MUST(getsid(kid[i]) == want_sid[i] && getpgid(kid[i]) == want_pgid[i]);

	printf("tree: root %d, A %d, AG %d, B %d, C %d, E %d, zombie %d\n", root_pid, kid[KA], kid[KAG],
	       kid[KB], kid[KC], kid[KE], zombie);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt)
		setpgid(kid[KC], kid[KC]);

	check_ids("root", &root_before);
	for (int i = 0; i < NKIDS; i++) {
		pid_t s = getsid(kid[i]), g = getpgid(kid[i]);

		if (s != want_sid[i] || g != want_pgid[i])
			failf("%s (pid %d) seen from the root: sid %d pgid %d, want %d %d", kid_name[i], kid[i], s, g,
			      want_sid[i], want_pgid[i]);
	}

	/* The zombie first: still there, unreaped, with its exit status. */
	{
		pid_t r = waitpid(zombie, &st, WNOHANG);

		if (r == 0)
			failf("zombie %d: alive again (waitpid WNOHANG gives 0)", zombie);
		else if (r < 0)
			failf("zombie %d: waitpid: %s", zombie, strerror(errno));
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
			failf("zombie %d: status 0x%x, want exit 7", zombie, st);
	}

	for (int i = 0; i < NKIDS; i++)
		if (kill(kid[i], SIGUSR1) != 0)
			failf("kill(%s %d, SIGUSR1): %s", kid_name[i], kid[i], strerror(errno));
	for (int i = 0; i < NKIDS; i++) {
		pid_t r;

		if (i == KAG)
			continue; /* A's child: A reaps it */
		r = waitpid(kid[i], &st, 0);
		if (r != kid[i])
			failf("waitpid(%s %d): %s", kid_name[i], kid[i], strerror(errno));
		else if (WIFSIGNALED(st))
			failf("%s (pid %d) killed by signal %d", kid_name[i], kid[i], WTERMSIG(st));
		else if (WEXITSTATUS(st) != 0)
			failf("%s (pid %d) exited %d", kid_name[i], kid[i], WEXITSTATUS(st));
	}
	/* No other children appeared (or stayed). */
	{
		pid_t r = waitpid(-1, &st, WNOHANG);

		if (r > 0)
			failf("an unexpected child %d (status 0x%x)", r, st);
		else if (r == 0)
			failf("unexpected children still running");
		else if (errno != ECHILD)
			failf("waitpid(-1): %s", strerror(errno));
	}
	return prog_finish();
}
