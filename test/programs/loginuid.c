/*
 * loginuid: the audit login uid (/proc/self/loginuid), which only a task
 * itself can set.
 *
 * The root sets its loginuid to 4242 and forks C1 (which inherits it) and C2
 * (which changes its own to 4343: that needs CAP_AUDIT_CONTROL, so the test
 * runs as root). On SIGUSR1 each checks its own loginuid.
 * SIGUSR2: the root changes its own to 4141 first.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/wait.h>

static unsigned read_loginuid(void)
{
	char buf[32];
	int fd = open("/proc/self/loginuid", O_RDONLY);
	ssize_t n;

	MUST(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	MUST(n > 0);
	buf[n] = 0;
	return (unsigned)strtoul(buf, NULL, 10);
}

static void set_loginuid(unsigned v)
{
	char buf[32];
	int fd = open("/proc/self/loginuid", O_WRONLY);
	int n = snprintf(buf, sizeof(buf), "%u", v);

	MUST(fd >= 0);
	MUST(write(fd, buf, n) == n);
	close(fd);
}

static void check(const char *who, unsigned want)
{
	unsigned have = read_loginuid();

	if (have != want)
		failf("%s: loginuid %u, want %u", who, have, want);
}

static pid_t child(const char *who, unsigned set)
{
	pid_t pid = fork();

	MUST(pid >= 0);
	if (pid)
		return pid;
	if (set)
		set_loginuid(set);
	wait_for_signal();
	check(who, set ? set : 4242);
	_exit(common_fail_count ? 1 : 0);
}

int main(int argc, char **argv)
{
	pid_t c1, c2;
	int status;

	(void)argc;
	(void)argv;
	prog_init();
	set_loginuid(4242);
	MUST(read_loginuid() == 4242);
	c1 = child("C1", 0);
	c2 = child("C2", 4343);
	prog_ready();
	if (wait_for_signal())
		set_loginuid(4141);
	check("root", 4242);
	kill(c1, SIGUSR1);
	kill(c2, SIGUSR1);
	if (waitpid(c1, &status, 0) != c1 || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("C1 (%d): status 0x%x, want exit 0", c1, status);
	if (waitpid(c2, &status, 0) != c2 || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("C2 (%d): status 0x%x, want exit 0", c2, status);
	return prog_finish();
}
