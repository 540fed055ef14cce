/*
 * cgroups: a process with a child and a second thread, which the test puts in
 * cgroups of its own (the child in nested groups, the thread in a group of its
 * own in the cpu hierarchy). Prints "child PID" and "thread TID" before READY.
 *
 * On SIGUSR1 it compares its own /proc/self/cgroup, its thread's and its
 * child's with what the test wrote into DIR/expect-self, DIR/expect-thread and
 * DIR/expect-child (the groups it must be in after restore). On SIGUSR2 it
 * first writes its pid into the cgroup.procs file named in DIR/corrupt (another
 * group), so the comparison must fail.
 */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static volatile pid_t thread_tid;

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

/* Reads a whole (small) file into buf; returns its length or -1. */
static int slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n, total = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + total, size - 1 - total)) > 0)
		total += n;
	close(fd);
	buf[total] = 0;
	return n < 0 ? -1 : (int)total;
}

static void compare(const char *what, const char *actual_path, const char *dir, const char *expect_name)
{
	char path[512], actual[4096], expect[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, expect_name);
	if (slurp(path, expect, sizeof(expect)) < 0) {
		failf("%s: cannot read %s: %s", what, path, strerror(errno));
		return;
	}
	if (slurp(actual_path, actual, sizeof(actual)) < 0) {
		failf("%s: cannot read %s: %s", what, actual_path, strerror(errno));
		return;
	}
	if (strcmp(actual, expect)) {
		char *nl;

		/* One line is enough to say where it differs. */
		for (nl = actual; *nl; nl++)
			if (*nl == '\n')
				*nl = ' ';
		failf("%s is in other cgroups: %s", what, actual);
	}
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char path[512], target[512];
	pthread_t th;
	pid_t child;
	int corrupt;

	prog_init();
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	MUST(pthread_create(&th, NULL, thread_main, NULL) == 0);
	while (!thread_tid)
		usleep(1000);
	printf("child %d\nthread %d\n", child, thread_tid);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt) {
		int fd;

		snprintf(path, sizeof(path), "%s/corrupt", dir);
		MUST(slurp(path, target, sizeof(target)) > 0);
		target[strcspn(target, "\n")] = 0;
		fd = open(target, O_WRONLY);
		MUST(fd >= 0);
		MUST(dprintf(fd, "%d", getpid()) > 0);
		close(fd);
	}
	compare("the process", "/proc/self/cgroup", dir, "expect-self");
	snprintf(path, sizeof(path), "/proc/self/task/%d/cgroup", thread_tid);
	compare("the thread", path, dir, "expect-thread");
	snprintf(path, sizeof(path), "/proc/%d/cgroup", child);
	compare("the child", path, dir, "expect-child");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return prog_finish();
}
