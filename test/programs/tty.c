/*
 * tty: a shell job (--shell-job). Started from a shell that runs on a
 * pseudo-terminal (test/programs/ptyrun.py), so stdin, stdout and stderr are
 * one open file description of the terminal's slave /dev/pts/N.
 *
 * Records isatty(0/1/2), ttyname(1), that fds 0, 1 and 2 share one open file
 * description (kcmp), the fd status flags, the session, the process group, the
 * terminal's local modes and window size; prints READY (to the terminal); waits
 * for SIGUSR1. After a restore by `cryo restore -j` run inside the same
 * terminal session, everything must be the same: the restored job writes its
 * verdict, PASS or FAIL, to that terminal.
 *
 * argv[2] == "blockread": instead of waiting for a signal, blocks in read() on
 * the terminal right after READY (so a checkpoint catches it there) and checks
 * once "ping" arrives.
 * Optionally, argv[2] == "read": after the signal, reads one line from stdin
 * (the terminal) and checks that it is "ping" (the test types it on the
 * master side), so the restored job also reads from its terminal.
 *
 * An argument "devtty" (anywhere after the dir): also holds /dev/tty on fd 5
 * and checks after the restore that it is /dev/tty again, of the same session.
 *
 * SIGUSR2 puts /dev/null on fd 0 first, so the check must FAIL.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <termios.h>

#define KCMP_FILE 0
/* The kernel's O_LARGEFILE on x86_64 (glibc defines O_LARGEFILE as 0 there). */
#define KERNEL_O_LARGEFILE 0100000

struct state {
	int isatty[3];
	char name[256];
	int shared01, shared02;
	int flags;
	pid_t sid, pgrp;
	tcflag_t lflag;
	struct winsize ws;
	dev_t rdev;
};

static int same_description(int a, int b)
{
	pid_t me = getpid();

	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

static void snapshot(struct state *s)
{
	struct termios t;
	struct stat st;
	char *n;
	int i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < 3; i++)
		s->isatty[i] = isatty(i);
	n = ttyname(1);
	snprintf(s->name, sizeof(s->name), "%s", n ? n : "(none)");
	s->shared01 = same_description(0, 1);
	s->shared02 = same_description(0, 2);
	/* O_LARGEFILE aside: open() forces it on 64-bit, a slave opened by
	 * TIOCGPTPEER (glibc's openpty) lacks it, and F_SETFL cannot change it;
	 * CRIU's restore reopens the terminal just the same. */
	s->flags = fcntl(1, F_GETFL) & ~KERNEL_O_LARGEFILE;
	s->sid = getsid(0);
	s->pgrp = getpgrp();
	if (tcgetattr(1, &t) == 0)
		s->lflag = t.c_lflag;
	ioctl(1, TIOCGWINSZ, &s->ws);
	if (fstat(1, &st) == 0)
		s->rdev = st.st_rdev;
}

int main(int argc, char **argv)
{
	struct state before, after;
	int want_read = argc > 2 && strcmp(argv[2], "read") == 0;
	/* "blockread": sit blocked in read() on the terminal (the checkpoint comes
	 * then), and check once a line arrives instead of waiting for a signal. */
	int block_read = argc > 2 && strcmp(argv[2], "blockread") == 0;
	int dev_tty = 0, i;
	struct stat st;

	for (i = 2; i < argc; i++)
		if (strcmp(argv[i], "devtty") == 0)
			dev_tty = 1;
	prog_init();
	if (dev_tty) {
		int fd = open("/dev/tty", O_RDWR);

		MUST(fd >= 0 && dup2(fd, 5) == 5);
		if (fd != 5)
			close(fd);
	}
	snapshot(&before);
	MUST(before.isatty[0] && before.isatty[1] && before.isatty[2]);
	MUST(before.shared01 && before.shared02);
	printf("tty %s sid %d pgrp %d\n", before.name, (int)before.sid, (int)before.pgrp);
	prog_ready();

	if (block_read) {
		char line[64];

		printf("READING\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			failf("reading the terminal: %s", feof(stdin) ? "end of file" : strerror(errno));
		else if (strcmp(line, "ping\n"))
			failf("read \"%.40s\" from the terminal, want ping", line);
	} else if (wait_for_signal()) {
		int null = open("/dev/null", O_RDONLY);

		MUST(null >= 0);
		dup2(null, 0);
		close(null);
	}

	snapshot(&after);
	for (i = 0; i < 3; i++)
		if (!after.isatty[i])
			failf("fd %d is no terminal any more", i);
	if (strcmp(before.name, after.name))
		failf("ttyname(1) %s, was %s", after.name, before.name);
	if (after.rdev != before.rdev)
		failf("fd 1 is device %#lx, was %#lx", (unsigned long)after.rdev,
		      (unsigned long)before.rdev);
	if (!after.shared01 || !after.shared02)
		failf("fds 0, 1, 2 no longer share one open file description (0~1 %d, 0~2 %d)",
		      after.shared01, after.shared02);
	if (after.flags != before.flags)
		failf("fd 1 status flags %#x, were %#x", after.flags, before.flags);
	if (after.sid != before.sid)
		failf("session %d, was %d", (int)after.sid, (int)before.sid);
	if (after.pgrp != before.pgrp)
		failf("process group %d, was %d", (int)after.pgrp, (int)before.pgrp);
	if (after.lflag != before.lflag)
		failf("c_lflag %#x, was %#x", (unsigned)after.lflag, (unsigned)before.lflag);
	if (after.ws.ws_row != before.ws.ws_row || after.ws.ws_col != before.ws.ws_col)
		failf("window %dx%d, was %dx%d", after.ws.ws_col, after.ws.ws_row, before.ws.ws_col,
		      before.ws.ws_row);

	if (dev_tty) {
		if (fstat(5, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(5, 0))
			failf("fd 5 is not /dev/tty");
		else if (tcgetsid(5) != after.sid)
			failf("/dev/tty (fd 5) is the terminal of session %d, not %d", (int)tcgetsid(5), (int)after.sid);
	}
	if (want_read && !common_fail_count) {
		char line[64];

		printf("READING\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			failf("reading the terminal: %s", feof(stdin) ? "end of file" : strerror(errno));
		else if (strcmp(line, "ping\n"))
			failf("read \"%.40s\" from the terminal, want ping", line);
	}
	return prog_finish();
}
