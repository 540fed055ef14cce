/* deadproc: the cwd and an fd in the /proc directory of a process that died.
 * Forks a child, makes /proc/CHILD its cwd and opens it again as a
 * directory fd, then kills and reaps the child: both are unhashed ("/proc/N
 * (deleted)"), getcwd fails with ENOENT.
 * Checks after restore: the same, with the same link texts, and the pid is
 * free again (no process of the restore's left in it).
 * SIGUSR2: chdir("/") first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/wait.h>

static void links(int fd, char *cwd, char *dir, size_t size)
{
	char p[64];
	ssize_t n;

	memset(cwd, 0, size);
	memset(dir, 0, size);
	n = readlink("/proc/self/cwd", cwd, size - 1);
	if (n < 0)
		snprintf(cwd, size, "(%s)", strerror(errno));
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	n = readlink(p, dir, size - 1);
	if (n < 0)
		snprintf(dir, size, "(%s)", strerror(errno));
}

int main(int argc, char **argv)
{
	char path[64], cwd0[256], dir0[256], cwd[256], dir[256], buf[256];
	pid_t child;
	int fd;

	prog_init();
	(void)argc;
	(void)argv;
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	snprintf(path, sizeof(path), "/proc/%d", child);
	MUST(chdir(path) == 0);
	MUST((fd = open(".", O_RDONLY | O_DIRECTORY)) >= 0);
	MUST(kill(child, SIGKILL) == 0 && waitpid(child, NULL, 0) == child);
	MUST(getcwd(buf, sizeof(buf)) == NULL && errno == ENOENT);
	links(fd, cwd0, dir0, sizeof(cwd0));
	MUST(strstr(cwd0, "(deleted)") != NULL);
	prog_ready();
	if (wait_for_signal())
		MUST(chdir("/") == 0);

	if (getcwd(buf, sizeof(buf)) != NULL)
		failf("getcwd works (%s): the cwd is not the dead process's directory", buf);
	else if (errno != ENOENT)
		failf("getcwd: %s, want ENOENT", strerror(errno));
	links(fd, cwd, dir, sizeof(cwd));
	if (strcmp(cwd, cwd0))
		failf("cwd reads %s, was %s", cwd, cwd0);
	if (strcmp(dir, dir0))
		failf("fd %d reads %s, was %s", fd, dir, dir0);
	if (kill(child, 0) == 0 || errno != ESRCH)
		failf("pid %d is taken", child);
	return prog_finish();
}
