/* nsfiles: fds of the task's own namespaces (open /proc/self/ns/X for every
 * kind). With "foreign" as argv[2]: also an fd of a uts namespace no task is in
 * any more (a child made it with unshare, the task opened it, the child exited);
 * a dump must refuse that one.
 * Checks after restore: each fd is a file of the namespace the task is in now
 * (same inode as /proc/self/ns/X, same link text), with the flags it had.
 * SIGUSR2: the net fd is replaced by /dev/null first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *kinds[] = { "net", "uts", "ipc", "pid", "user", "mnt", "cgroup", "time" };
#define NKINDS (int)(sizeof(kinds) / sizeof(kinds[0]))

int main(int argc, char **argv)
{
	int fds[NKINDS], flags[NKINDS];
	char path[64], a[128], b[128];
	struct stat s1, s2;

	prog_init();
	for (int i = 0; i < NKINDS; i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
		MUST((fds[i] = open(path, i % 2 ? O_RDONLY | O_CLOEXEC : O_RDONLY)) >= 0);
		flags[i] = fcntl(fds[i], F_GETFD);
	}
	if (argc > 2 && !strcmp(argv[2], "foreign")) {
		int p[2], fd;
		pid_t c;
		char x;

		MUST(pipe(p) == 0);
		c = fork();
		MUST(c >= 0);
		if (c == 0) {
			if (unshare(CLONE_NEWUTS) || write(p[1], "u", 1) != 1)
				_exit(1);
			pause();
			_exit(0);
		}
		MUST(read(p[0], &x, 1) == 1);
		snprintf(path, sizeof(path), "/proc/%d/ns/uts", c);
		MUST((fd = open(path, O_RDONLY)) >= 0);
		MUST(kill(c, SIGKILL) == 0 && waitpid(c, NULL, 0) == c);
		(void)fd;
	}
	prog_ready();
	if (wait_for_signal()) {
		close(fds[0]);
		MUST(open("/dev/null", O_RDONLY) == fds[0]);
	}

	for (int i = 0; i < NKINDS; i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
		MUST(stat(path, &s1) == 0);
		if (fstat(fds[i], &s2) || s1.st_ino != s2.st_ino || s1.st_dev != s2.st_dev)
			failf("fd %d is not the task's %s namespace", fds[i], kinds[i]);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[i]);
		memset(a, 0, sizeof(a));
		memset(b, 0, sizeof(b));
		if (readlink(path, a, sizeof(a) - 1) < 0)
			failf("fd %d: readlink: %s", fds[i], strerror(errno));
		snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
		MUST(readlink(path, b, sizeof(b) - 1) > 0);
		if (strcmp(a, b))
			failf("fd %d reads %s, the namespace is %s", fds[i], a, b);
		if (fcntl(fds[i], F_GETFD) != flags[i])
			failf("fd %d: FD_CLOEXEC %d, want %d", fds[i], fcntl(fds[i], F_GETFD), flags[i]);
	}
	return prog_finish();
}
