/* sigchld: SIGCHLD blocked, a child that exited (a zombie, not reaped) and no
 * signal pending at the checkpoint. Rebuilding the zombie makes a task exit during
 * restore: that must not leave a SIGCHLD pending that the dumped process never had.
 * After restore: nothing pending, the zombie still there with exit status 3, and a
 * second zombie, killed by SIGTERM, still there with that signal as its status.
 * SIGUSR2: queue a SIGCHLD first (FAIL). */
#include "common.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	sigset_t chld, pend;
	pid_t child, killed;
	int st, corrupt;
	struct timespec zero = { 0, 0 };

	(void)argc;
	(void)argv;
	prog_init();
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	MUST(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0)
		_exit(3);
	MUST(sigwaitinfo(&chld, NULL) == SIGCHLD); /* it exited: take its SIGCHLD */
	MUST(sigtimedwait(&chld, NULL, &zero) < 0);
	killed = fork();
	MUST(killed >= 0);
	if (killed == 0)
		for (;;)
			pause();
	MUST(kill(killed, SIGTERM) == 0);
	MUST(sigwaitinfo(&chld, NULL) == SIGCHLD);
	MUST(sigtimedwait(&chld, NULL, &zero) < 0);
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		kill(getpid(), SIGCHLD);
	MUST(sigpending(&pend) == 0);
	if (sigismember(&pend, SIGCHLD))
		failf("a SIGCHLD is pending that was not there at the checkpoint");
	if (waitpid(child, &st, WNOHANG) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 3)
		failf("the zombie child is not there with exit status 3 (status %#x)", st);
	if (waitpid(killed, &st, WNOHANG) != killed || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
		failf("the zombie killed by SIGTERM is not there with that signal (status %#x)", st);
	return prog_finish();
}
