/*
 * ttydev: terminals that are devices of the system, not ptys of the tree:
 * the console (5:1) and a virtual terminal (4:5), through device nodes the
 * program makes in its directory.
 *
 * The root (a session leader without a terminal) opens the console
 * read-only (the console never becomes a controlling terminal) and the
 * virtual terminal read-write, which makes it the session's controlling
 * terminal. On SIGUSR1 it checks that both fds are the same devices with the
 * same flags and termios, that the virtual terminal is still its
 * controlling terminal (/dev/tty, TIOCGSID) with its group in the foreground.
 * SIGUSR2: /dev/null is put over the console's fd first.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>

struct side {
	const char *name;
	int fd, flags;
	dev_t rdev;
	struct termios t;
};

static void record(struct side *s)
{
	struct stat st;

	MUST(fstat(s->fd, &st) == 0);
	s->rdev = st.st_rdev;
	s->flags = fcntl(s->fd, F_GETFL);
	memset(&s->t, 0, sizeof(s->t));
	tcgetattr(s->fd, &s->t);
}

static void compare(const struct side *b)
{
	struct side a = *b;

	record(&a);
	if (a.rdev != b->rdev)
		failf("%s: device %u:%u, was %u:%u", b->name, major(a.rdev), minor(a.rdev), major(b->rdev), minor(b->rdev));
	if (a.flags != b->flags)
		failf("%s: flags 0%o, were 0%o", b->name, a.flags, b->flags);
	if (memcmp(&a.t, &b->t, sizeof(a.t)))
		failf("%s: termios differ", b->name);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char path[2][1024];
	struct side s[2] = { { .name = "console" }, { .name = "virtual terminal" } };
	dev_t dev[2] = { makedev(5, 1), makedev(4, 5) };
	int sid;

	prog_init();
	for (int i = 0; i < 2; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/ttydev-%d", dir, i);
		unlink(path[i]);
		MUST(mknod(path[i], S_IFCHR | 0600, dev[i]) == 0);
	}
	s[0].fd = open(path[0], O_RDONLY);
	MUST(s[0].fd >= 0);
	s[1].fd = open(path[1], O_RDWR);
	MUST(s[1].fd >= 0);
	MUST(ioctl(s[1].fd, TIOCGSID, &sid) == 0 && sid == getpid());
	for (int i = 0; i < 2; i++)
		record(&s[i]);
	prog_ready();
	if (wait_for_signal()) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, s[0].fd);
	}
	for (int i = 0; i < 2; i++)
		compare(&s[i]);
	if (ioctl(s[1].fd, TIOCGSID, &sid) != 0 || sid != getpid())
		failf("the virtual terminal is not the controlling terminal of my session (TIOCGSID: %s)", strerror(errno));
	else if (tcgetpgrp(s[1].fd) != getpgrp())
		failf("foreground group of the virtual terminal %d, want mine %d", tcgetpgrp(s[1].fd), getpgrp());
	{
		/* /dev/tty opens only with a controlling terminal; stat's tty_nr names it. */
		int tty = open("/dev/tty", O_RDONLY | O_NOCTTY);
		char buf[1024], *p;
		int fd = open("/proc/self/stat", O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		unsigned long tty_nr = 0;

		if (tty < 0)
			failf("/dev/tty: %s", strerror(errno));
		else
			close(tty);
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = 0;
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 2, "%*c %*d %*d %*d %lu", &tty_nr) != 1 || tty_nr != (unsigned long)s[1].rdev)
			failf("stat tty_nr 0x%lx, want the virtual terminal 0x%lx", tty_nr, (unsigned long)s[1].rdev);
	}
	return prog_finish();
}
