/*
 * chardev: the character devices that are safe to reopen by path, as CRIU
 * dumps them (regular-file entries): /dev/null O_RDWR, /dev/zero, /dev/full
 * O_WRONLY with FD_CLOEXEC, /dev/random O_NONBLOCK, /dev/urandom O_APPEND.
 * After the restore each fd must be its device again (major 1 and its minor)
 * with its flags, and behave as the device does: /dev/null swallows writes and
 * reads EOF, /dev/zero reads zeros, /dev/full refuses writes with ENOSPC, the
 * random devices read bytes.
 *
 * SIGUSR2 puts /dev/null on the /dev/zero fd first, so the check must FAIL.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

struct dev {
	const char *path;
	int flags;
	unsigned minor;
	int fd;
};

static struct dev devs[] = {
	{ "/dev/null", O_RDWR, 3, -1 },
	{ "/dev/zero", O_RDONLY, 5, -1 },
	{ "/dev/full", O_WRONLY | O_CLOEXEC, 7, -1 },
	{ "/dev/random", O_RDONLY | O_NONBLOCK, 8, -1 },
	{ "/dev/urandom", O_RDONLY | O_APPEND, 9, -1 },
};
#define NDEV (int)(sizeof(devs) / sizeof(devs[0]))

int main(int argc, char **argv)
{
	char buf[64];
	struct stat st;

	(void)argc;
	(void)argv;
	prog_init();
	for (int i = 0; i < NDEV; i++)
		MUST((devs[i].fd = open(devs[i].path, devs[i].flags)) >= 0);
	prog_ready();

	if (wait_for_signal()) {
		int n = open("/dev/null", O_RDONLY);
		MUST(n >= 0 && dup2(n, devs[1].fd) == devs[1].fd);
		close(n);
	}
	for (int i = 0; i < NDEV; i++) {
		struct dev *d = &devs[i];
		int fl = fcntl(d->fd, F_GETFL), fdfl = fcntl(d->fd, F_GETFD);

		if (fstat(d->fd, &st) || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != d->minor)
			failf("fd %d is not %s", d->fd, d->path);
		if (fl < 0 || (fl & O_ACCMODE) != (d->flags & O_ACCMODE) || (fl & (O_NONBLOCK | O_APPEND)) != (d->flags & (O_NONBLOCK | O_APPEND)))
			failf("%s: flags %#x", d->path, fl);
		if (!!(fdfl & FD_CLOEXEC) != !!(d->flags & O_CLOEXEC))
			failf("%s: FD_CLOEXEC %s", d->path, fdfl & FD_CLOEXEC ? "set" : "clear");
	}
	if (write(devs[0].fd, "x", 1) != 1 || read(devs[0].fd, buf, 1) != 0)
		failf("/dev/null does not behave as /dev/null");
	memset(buf, 0x55, sizeof(buf));
	if (read(devs[1].fd, buf, sizeof(buf)) != sizeof(buf) || buf[0] || buf[sizeof(buf) - 1])
		failf("/dev/zero does not read zeros");
	if (write(devs[2].fd, "x", 1) != -1 || errno != ENOSPC)
		failf("/dev/full does not refuse writes with ENOSPC");
	if (read(devs[3].fd, buf, 16) != 16)
		failf("/dev/random: %s", strerror(errno));
	if (read(devs[4].fd, buf, 16) != 16)
		failf("/dev/urandom: %s", strerror(errno));
	return prog_finish();
}
