/*
 * inheritfd: fds whose objects the restore replaces with --inherit-fd.
 *
 * fd 3 is the write end of a pipe the test made (its reader is outside the
 * tree); fd 4 is ARGV[1]/old.log, opened here O_WRONLY|O_APPEND. Both get
 * "before\n", then READY. After SIGUSR1: "after\n" into both, and fd 3 must
 * still be a write-only pipe that took the line, fd 4 a regular file in append
 * mode. The test restores with --inherit-fd giving a new pipe for the old one
 * and new.log for old.log, and looks for "after" in the new ones.
 *
 * SIGUSR2 puts /dev/null on fd 3 first, so the check must FAIL.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>

static void put(int fd, const char *text)
{
	size_t n = strlen(text);

	if (write(fd, text, n) != (ssize_t)n)
		failf("write to fd %d: %s", fd, strerror(errno));
}

int main(int argc, char **argv)
{
	char path[4096];
	struct stat st;
	int fd;

	prog_init();
	MUST(fstat(3, &st) == 0 && S_ISFIFO(st.st_mode));
	snprintf(path, sizeof(path), "%s/old.log", prog_dir(argc, argv));
	MUST((fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644)) >= 0);
	if (fd != 4) {
		MUST(dup2(fd, 4) == 4);
		close(fd);
	}
	put(3, "before\n");
	put(4, "before\n");
	prog_ready();

	if (wait_for_signal()) {
		MUST((fd = open("/dev/null", O_WRONLY)) >= 0);
		MUST(dup2(fd, 3) == 3);
		close(fd);
	}
	if (fstat(3, &st) || !S_ISFIFO(st.st_mode))
		failf("fd 3 is not a pipe");
	if ((fcntl(3, F_GETFL) & O_ACCMODE) != O_WRONLY)
		failf("fd 3 is not write-only");
	if (fstat(4, &st) || !S_ISREG(st.st_mode) || !(fcntl(4, F_GETFL) & O_APPEND))
		failf("fd 4 is not a regular file in append mode");
	put(3, "after\n");
	put(4, "after\n");
	return prog_finish();
}
