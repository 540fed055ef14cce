/* locks: flock(LOCK_EX) on one file, a POSIX write lock on bytes 10..29 of a
 * second, an OFD read lock on all of a third. After restore a child process
 * must find each of them held (its conflicting attempts fail). SIGUSR2: drop
 * the flock first (FAIL). */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>

static int open_in(const char *dir, const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return open(p, O_RDWR | O_CREAT, 0600);
}

int main(int argc, char **argv)
{
	int a, b, c, corrupt, st;
	pid_t child;

	prog_init();
	MUST((a = open_in(prog_dir(argc, argv), "lock-flock")) >= 0);
	MUST((b = open_in(prog_dir(argc, argv), "lock-posix")) >= 0);
	MUST((c = open_in(prog_dir(argc, argv), "lock-ofd")) >= 0);
	MUST(flock(a, LOCK_EX) == 0);
	struct flock pw = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 20 };
	MUST(fcntl(b, F_SETLK, &pw) == 0);
	struct flock ofd = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	MUST(fcntl(c, F_OFD_SETLK, &ofd) == 0);
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		flock(a, LOCK_UN);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		int bad = 0;
		int a2 = open_in(prog_dir(argc, argv), "lock-flock");
		int b2 = open_in(prog_dir(argc, argv), "lock-posix");
		int c2 = open_in(prog_dir(argc, argv), "lock-ofd");
		if (flock(a2, LOCK_EX | LOCK_NB) == 0)
			bad |= 1;
		struct flock t = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 15, .l_len = 1 };
		if (fcntl(b2, F_SETLK, &t) == 0)
			bad |= 2;
		struct flock u = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
		if (fcntl(c2, F_OFD_SETLK, &u) == 0)
			bad |= 4;
		_exit(bad);
	}
	MUST(waitpid(child, &st, 0) == child && WIFEXITED(st));
	if (WEXITSTATUS(st) & 1)
		failf("the flock is not held");
	if (WEXITSTATUS(st) & 2)
		failf("the POSIX lock is not held");
	if (WEXITSTATUS(st) & 4)
		failf("the OFD lock is not held");
	return prog_finish();
}
