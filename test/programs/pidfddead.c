/* pidfddead: pidfds of processes that have exited and been reaped.
 *   - px1, px2: two pidfds opened on child X; py: one on child Y;
 *   - child C opened its own pidfd of X, and stays alive;
 *   - then X and Y are killed and reaped.
 * After restore px1, px2 and C's pidfd are pidfds of one dead process (one inode),
 * py of another; signalling any of them fails with ESRCH. The parent sends px1's
 * inode to C through a pipe; C compares. SIGUSR2: px2 is replaced by a pidfd of
 * C, a live process (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static ino_t ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_ino;
}

static int dead(int fd)
{
	return syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == -1 && errno == ESRCH;
}

static void sleeper(void)
{
	for (;;)
		pause();
}

int main(void)
{
	int px1, px2, py, toc[2], ready[2], corrupt, status;
	pid_t x, y, c;
	char b;

	prog_init();
	MUST((x = fork()) >= 0);
	if (x == 0)
		sleeper();
	MUST((y = fork()) >= 0);
	if (y == 0)
		sleeper();
	MUST((px1 = pidfd_open(x)) >= 0 && (px2 = pidfd_open(x)) >= 0 && (py = pidfd_open(y)) >= 0);
	MUST(pipe(toc) == 0 && pipe(ready) == 0);
	MUST((c = fork()) >= 0);
	if (c == 0) {
		int mine = pidfd_open(x);
		ino_t want;

		close(px1);
		close(px2);
		close(py);
		close(toc[1]);
		MUST(mine >= 0 && write(ready[1], "r", 1) == 1);
		if (read(toc[0], &want, sizeof(want)) != sizeof(want))
			_exit(3);
		_exit(ino_of(mine) == want && dead(mine) ? 0 : 1);
	}
	close(toc[0]);
	MUST(read(ready[0], &b, 1) == 1);
	MUST(kill(x, SIGKILL) == 0 && kill(y, SIGKILL) == 0);
	MUST(waitpid(x, &status, 0) == x && waitpid(y, &status, 0) == y);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt) {
		close(px2);
		px2 = pidfd_open(c);
	}
	if (ino_of(px1) != ino_of(px2))
		failf("px1 and px2 are not pidfds of one process any more");
	if (ino_of(px1) == ino_of(py))
		failf("px1 and py are pidfds of one process now");
	if (!dead(px1) || !dead(px2) || !dead(py))
		failf("a pidfd of a dead process names a live one");
	ino_t ino = ino_of(px1);
	if (write(toc[1], &ino, sizeof(ino)) != sizeof(ino))
		failf("cannot write to the child");
	if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("the child's pidfd of X is not px1's process (status 0x%x)", status);
	return prog_finish();
}
