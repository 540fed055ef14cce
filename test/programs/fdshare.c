/* fdshare: tasks sharing one fd table (CLONE_FILES), and a high fd number.
 *   - the parent P; A: cloned with CLONE_FILES (shares P's table); A2: cloned by A
 *     with CLONE_FILES (the same table again); B: forked (a copy of its own);
 *   - fd HIGH (15000, far above the others) is a file holding "high".
 * After restore P opens a new file; its fd number goes to A, A2 and B through
 * pipes: A and A2 must have that fd (one table), B must not; all see fd HIGH.
 * SIGUSR2: P unshares its table before it opens the file (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define HIGH 15000

static int tellA[2], tellA2[2], tellB[2];

/* fork-like (no CLONE_VM: the child runs on a copy of the stack) with CLONE_FILES. */
static pid_t clone_files(void)
{
	return (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
}

static int has_fd(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static int high_ok(void)
{
	char b[8] = "";

	return pread(HIGH, b, 4, 0) == 4 && !memcmp(b, "high", 4);
}

/* Waits for P's new fd number; exits 0 when it is there (or not) as `want` says. */
static int member(int *tell, int want, pid_t child)
{
	int fd, status = 0;

	if (read(tell[0], &fd, sizeof(fd)) != sizeof(fd))
		_exit(3);
	int ok = has_fd(fd) == want && high_ok();
	if (child > 0) {
		waitpid(child, &status, 0);
		ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	_exit(ok ? 0 : 1);
}

int main(int argc, char **argv)
{
	char path[4096];
	int f, corrupt, status, fd;
	pid_t a, b;

	prog_init();
	snprintf(path, sizeof(path), "%s/high.dat", prog_dir(argc, argv));
	MUST((f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	MUST(write(f, "high", 4) == 4);
	MUST(dup2(f, HIGH) == HIGH);
	close(f);
	MUST(pipe(tellA) == 0 && pipe(tellA2) == 0 && pipe(tellB) == 0);
	MUST((b = fork()) >= 0);
	if (b == 0)
		member(tellB, 0, 0);
	MUST((a = clone_files()) >= 0);
	if (a == 0) {
		pid_t a2 = clone_files();

		if (a2 == 0)
			member(tellA2, 1, 0);
		member(tellA, 1, a2);
	}

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		unshare(CLONE_FILES);
	MUST((fd = open(path, O_RDONLY)) >= 0);
	for (int *t = tellA; t; t = t == tellA ? tellA2 : t == tellA2 ? tellB : NULL)
		if (write(t[1], &fd, sizeof(fd)) != sizeof(fd))
			failf("cannot write to a child");
	if (waitpid(a, &status, 0) != a || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("A or A2 do not share P's fd table (status 0x%x)", status);
	if (waitpid(b, &status, 0) != b || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("B shares P's fd table, or lost fd %d (status 0x%x)", HIGH, status);
	if (!high_ok())
		failf("fd %d is not the file any more", HIGH);
	return prog_finish();
}
