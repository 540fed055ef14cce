/*
 * zombies: zombies that died in different ways, and a process group whose
 * leader is gone.
 *
 * The root (a session leader) forks
 *   Z1 - _exit(3);
 *   Z2 - killed by SIGKILL (it sends it to itself);
 *   Z3 - killed by SIGSEGV (a NULL write, default action, no core file:
 *        RLIMIT_CORE 0);
 *   L  - setpgid(0, 0), then clones with CLONE_PARENT
 *          M  - a live child of the root in L's group, and
 *          MZ - likewise, exits 5 at once: a zombie in L's group,
 *        then L exits and the root reaps it: the group lives on without its
 *        leader.
 * None of the zombies is reaped before the checkpoint (waitid WNOWAIT).
 * On SIGUSR1 the root checks, before reaping anything, that M and MZ are
 * still in group L (getpgid), then reaps each zombie and checks how it
 * ended, then tells M to check its own group and exit.
 * SIGUSR2: M is first moved into a group of its own, so the checks fail.
 */
#include "common.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static pid_t clone_parent(void)
{
	return (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
}

/* Waits (without reaping) until pid is a zombie. */
static void await_zombie(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	MUST(waitid(P_PID, pid, &si, WEXITED | WNOWAIT) == 0);
}

int main(int argc, char **argv)
{
	struct rlimit nocore = { 0, 0 };
	pid_t z1, z2, z3, l, m = -1, mz = -1;
	int p[2], status;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(setrlimit(RLIMIT_CORE, &nocore) == 0);

	z1 = fork();
	MUST(z1 >= 0);
	if (z1 == 0)
		_exit(3);
	z2 = fork();
	MUST(z2 >= 0);
	if (z2 == 0) {
		kill(getpid(), SIGKILL);
		_exit(13);
	}
	z3 = fork();
	MUST(z3 >= 0);
	if (z3 == 0) {
		*(volatile int *)0 = 0;
		_exit(13);
	}

	/* L reports M's and MZ's pids through a pipe. */
	MUST(pipe(p) == 0);
	l = fork();
	MUST(l >= 0);
	if (l == 0) {
		pid_t kids[2];

		close(p[0]);
		if (setpgid(0, 0))
			_exit(2);
		kids[0] = clone_parent();
		if (kids[0] == 0) {
			/* M: waits for SIGUSR1, checks its group. */
			pid_t leader = getpgrp();

			wait_for_signal();
			if (getpgrp() != leader)
				failf("M: in group %d, was %d", getpgrp(), leader);
			_exit(common_fail_count ? 1 : 0);
		}
		kids[1] = clone_parent();
		if (kids[1] == 0)
			_exit(5);
		if (write(p[1], kids, sizeof(kids)) != sizeof(kids))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	{
		pid_t kids[2];

		MUST(read(p[0], kids, sizeof(kids)) == sizeof(kids));
		m = kids[0];
		mz = kids[1];
	}
	close(p[0]);
	MUST(waitpid(l, &status, 0) == l && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	await_zombie(z1);
	await_zombie(z2);
	await_zombie(z3);
	await_zombie(mz);
	MUST(getpgid(m) == l && getpgid(mz) == l);

	prog_ready();
	if (wait_for_signal())
		setpgid(m, m);

	if (getpgid(m) != l)
		failf("M (%d): in group %d, want %d (its leader is gone)", m, getpgid(m), l);
	if (getpgid(mz) != l)
		failf("zombie MZ (%d): in group %d, want %d", mz, getpgid(mz), l);

	if (waitpid(z1, &status, 0) != z1 || !WIFEXITED(status) || WEXITSTATUS(status) != 3)
		failf("Z1 (%d): status 0x%x, want exit 3", z1, status);
	if (waitpid(z2, &status, 0) != z2 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		failf("Z2 (%d): status 0x%x, want killed by SIGKILL", z2, status);
	if (waitpid(z3, &status, 0) != z3 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
		failf("Z3 (%d): status 0x%x, want killed by SIGSEGV", z3, status);
	if (waitpid(mz, &status, 0) != mz || !WIFEXITED(status) || WEXITSTATUS(status) != 5)
		failf("MZ (%d): status 0x%x, want exit 5", mz, status);
	kill(m, SIGUSR1);
	if (waitpid(m, &status, 0) != m || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("M (%d): status 0x%x, want exit 0", m, status);
	return prog_finish();
}
