/*
 * devnode: a device node of the test's own, DIR/dev/null (made by the test:
 * character device 1:3), open O_RDWR. The test then puts another file system
 * over DIR/dev, with a new node at the same path, so that the path names
 * another inode: cryo must refuse it, or take it with --evasive-devices when
 * it is a node of the same device. After the restore the fd must be /dev/null's
 * device again (1:3) and behave as it: it swallows writes and reads EOF.
 *
 * SIGUSR2 puts /dev/zero (1:5) on the fd first, so the check must FAIL.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

int main(int argc, char **argv)
{
	char path[4096], buf[8];
	struct stat st;
	int fd;

	prog_init();
	snprintf(path, sizeof(path), "%s/dev/null", argc > 1 ? argv[1] : ".");
	MUST((fd = open(path, O_RDWR)) >= 0);
	prog_ready();

	if (wait_for_signal()) {
		int z = open("/dev/zero", O_RDONLY);
		MUST(z >= 0 && dup2(z, fd) == fd);
		close(z);
	}
	if (fstat(fd, &st) || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
		failf("fd %d is not the device 1:3 (%u:%u)", fd, major(st.st_rdev), minor(st.st_rdev));
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR)
		failf("fd %d is not open O_RDWR", fd);
	if (write(fd, "x", 1) != 1 || read(fd, buf, 1) != 0)
		failf("fd %d does not behave as /dev/null", fd);
	return prog_finish();
}
