/*
 * ptyhung: pty slaves whose master was closed: hung up, as pty04 of zdtm.
 *
 * The root opens a pair, opens its slave twice (two open file descriptions,
 * one of them O_NONBLOCK) and dups one, makes it its controlling terminal,
 * then closes the master: every slave fd is hung up and the session has no
 * controlling terminal any more. A second pair stays open beside it.
 * On SIGUSR1 it checks each hung fd: still the slave device it was, with
 * its flags and its /proc fd link, read() gives 0, write() and TCGETS fail
 * with EIO; the dup still shares its open file description; the session still
 * has no controlling terminal; the second pair still works.
 * SIGUSR2: /dev/null is put over the first slave fd first.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

#define NS 3

struct fdstate {
	int fd, flags;
	dev_t rdev;
	char link[256];
};

static void record(struct fdstate *s)
{
	char path[64];
	struct stat st;
	ssize_t n;

	MUST(fstat(s->fd, &st) == 0);
	s->rdev = st.st_rdev;
	s->flags = fcntl(s->fd, F_GETFL);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
	n = readlink(path, s->link, sizeof(s->link) - 1);
	s->link[n < 0 ? 0 : n] = 0;
}

int main(int argc, char **argv)
{
	struct fdstate s[NS], now;
	int m, m2, s2, pgrp;
	struct termios t;
	char buf[16];

	(void)argc;
	(void)argv;
	prog_init();
	m = posix_openpt(O_RDWR | O_NOCTTY);
	MUST(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
	s[0].fd = open(ptsname(m), O_RDWR);
	MUST(s[0].fd >= 0);
	s[1].fd = open(ptsname(m), O_RDWR | O_NONBLOCK | O_NOCTTY);
	MUST(s[1].fd >= 0);
	s[2].fd = dup(s[0].fd);
	MUST(ioctl(s[0].fd, TIOCSCTTY, 0) == 0);
	signal(SIGHUP, SIG_IGN);
	close(m);
	MUST(ioctl(s[0].fd, TCGETS, &t) == -1 && errno == EIO);
	for (int i = 0; i < NS; i++)
		record(&s[i]);
	MUST(strstr(s[0].link, "(deleted)"));
	/* A live pair beside the dead one. */
	m2 = posix_openpt(O_RDWR | O_NOCTTY);
	MUST(m2 >= 0 && grantpt(m2) == 0 && unlockpt(m2) == 0);
	s2 = open(ptsname(m2), O_RDWR | O_NOCTTY);
	MUST(s2 >= 0);

	prog_ready();
	if (wait_for_signal()) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, s[0].fd);
	}
	for (int i = 0; i < NS; i++) {
		now = s[i];
		record(&now);
		if (now.rdev != s[i].rdev || now.flags != s[i].flags || strcmp(now.link, s[i].link))
			failf("slave fd %d: rdev 0x%lx flags 0%o link %s, were 0x%lx 0%o %s", s[i].fd, (long)now.rdev,
			      now.flags, now.link, (long)s[i].rdev, s[i].flags, s[i].link);
		if (read(s[i].fd, buf, sizeof(buf)) != 0)
			failf("slave fd %d: read does not give EOF (%s)", s[i].fd, strerror(errno));
		errno = 0;
		if (write(s[i].fd, "x", 1) != -1 || errno != EIO)
			failf("slave fd %d: write does not fail with EIO (%s)", s[i].fd, strerror(errno));
		errno = 0;
		if (ioctl(s[i].fd, TCGETS, &t) != -1 || errno != EIO)
			failf("slave fd %d: TCGETS does not fail with EIO (%s)", s[i].fd, strerror(errno));
	}
	/* The dup shares the first one's open file description, the second has its own. */
	fcntl(s[0].fd, F_SETFL, s[0].flags | O_APPEND);
	if (!(fcntl(s[2].fd, F_GETFL) & O_APPEND))
		failf("the dup of slave fd %d does not share its open file description", s[0].fd);
	if (fcntl(s[1].fd, F_GETFL) & O_APPEND)
		failf("slave fd %d shares the open file description of fd %d", s[1].fd, s[0].fd);
	if (open("/dev/tty", O_RDONLY) >= 0 || errno != ENXIO)
		failf("the session has a controlling terminal again (/dev/tty: %s)", strerror(errno));
	pgrp = 0;
	if (write(m2, "ok\n", 3) != 3 || read(s2, buf, sizeof(buf)) != 3 || memcmp(buf, "ok\n", 3))
		failf("the second pair does not carry data (pgrp %d)", pgrp);
	return prog_finish();
}
