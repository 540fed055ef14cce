/*
 * vforkwait: a parent held in vfork() (as zdtm's vfork00): its child neither
 * execs nor exits until SIGUSR1, so the parent waits uninterruptibly and no
 * ptrace stop reaches it. The dump must give up at --timeout, in one line, and
 * leave both running. Prints "child PID" and READY from the child; on SIGUSR1
 * to the child it exits, the parent runs on and prints PASS.
 */
#include "common.h"

#include <sys/wait.h>

int main(void)
{
	pid_t child;
	int status;

	prog_init();
	child = vfork();
	MUST(child >= 0);
	if (child == 0) {
		char line[64];
		int n = snprintf(line, sizeof(line), "child %d\nREADY\n", (int)getpid());

		MUST(write(1, line, (size_t)n) == n);
		wait_for_signal();
		_exit(0);
	}
	MUST(waitpid(child, &status, 0) == child);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("child: status 0x%x", status);
	return prog_finish();
}
