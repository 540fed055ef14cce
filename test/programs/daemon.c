/* daemon: the classic double fork. The root is a child subreaper; its child A
 * calls setsid() and forks B, then A exits and the root reaps it: B lives on,
 * reparented to the root, in session and process group A, whose leader is gone.
 * Restoring B needs a helper task with A's pid (as CRIU does). On SIGUSR1 the
 * root tells B to check its ids (pid, ppid, sid, pgid); B exits 0/1; the root
 * reaps it and prints PASS/FAIL. SIGUSR2: B checks against a wrong session. */
#include "common.h"
#include <sys/prctl.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	int p[2];
	pid_t a, b, root = getpid();
	int st, corrupt;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
	MUST(pipe(p) == 0);
	a = fork();
	MUST(a >= 0);
	if (a == 0) {
		MUST(setsid() == getpid());
		b = fork();
		MUST(b >= 0);
		if (b == 0) {
			pid_t sid = getsid(0), pgid = getpgrp();
			int bad;

			close(p[0]);
			MUST(write(p[1], &sid, sizeof(sid)) == sizeof(sid));
			close(p[1]);
			/* Wait for the root's word (after the restore). */
			bad = wait_for_signal();
			if (getppid() != root)
				failf("B: parent %d, want the root %d", (int)getppid(), (int)root);
			if (getsid(0) != sid + bad)
				failf("B: session %d, want %d", (int)getsid(0), (int)(sid + bad));
			if (getpgrp() != pgid)
				failf("B: process group %d, want %d", (int)getpgrp(), (int)pgid);
			return prog_finish();
		}
		_exit(0);
	}
	close(p[1]);
	MUST(waitpid(a, &st, 0) == a && WIFEXITED(st));
	pid_t sid;
	MUST(read(p[0], &sid, sizeof(sid)) == sizeof(sid));
	close(p[0]);
	MUST(sid == a);
	/* B is now our child (we are its subreaper), still running. */
	MUST(waitpid(-1, &st, WNOHANG) == 0);
	prog_ready();
	corrupt = wait_for_signal();
	/* Find B: our only child. */
	{
		char path[64], line[512];
		FILE *f;
		pid_t child = 0;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)root, (int)root);
		f = fopen(path, "r");
		if (f && fgets(line, sizeof(line), f))
			child = (pid_t)atoi(line);
		if (f)
			fclose(f);
		if (child <= 0) {
			failf("root: B is not our child");
			return prog_finish();
		}
		kill(child, corrupt ? SIGUSR2 : SIGUSR1);
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failf("root: B ended with status %#x", st);
	}
	return prog_finish();
}
