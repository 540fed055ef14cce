/*
 * ptypair: pseudo-terminals the tree opened itself.
 *
 * The parent P holds the master of pty A (packet mode on, locked again after
 * the slaves were opened), a second slave fd of A (O_NONBLOCK, exclusive set
 * through it) and the master of pty B (locked, its slave never opened). A
 * child C is a session leader whose controlling terminal is A's slave; it
 * holds the slave and forks G, which makes its own process group and becomes
 * the terminal's foreground group; G holds /dev/tty as well. A's termios
 * (no echo, no output processing, VINTR ^G), locked termios (ECHO) and window
 * size (33x77, 500x600 pixels) are set.
 *
 * Prints "pids C G" and "ptys NAME_A NAME_B", then READY. At dump time G blocks
 * in read() on the slave, C in waitpid() for G.
 *
 * After SIGUSR1 P checks what it can see (names, packet mode, locks, exclusive,
 * termios, locked termios, window size, O_NONBLOCK, the session and foreground
 * group the master reports; B still locked, then usable), then writes "check"
 * to A's master. G reads it on the slave, checks its session, group and
 * controlling terminal, and answers on /dev/tty; C then checks its own and
 * answers on the slave. P reads both answers on the master (packet mode: one
 * status byte first) and fails if one is missing or not "ok". Last, P checks
 * that the slave cannot be opened (A is locked).
 *
 * SIGUSR2 changes the window size first, so the check must FAIL.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

static int tty_nr_of_self(void)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY), n, nr = -1;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	/* ") S ppid pgrp session tty_nr" */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %d", &nr) != 1)
		return -1;
	return nr;
}

/* The answer of one process on the terminal: "NAME ok" or "NAME bad: what". */
static void answer(int fd, const char *who, const char *bad)
{
	char line[600];
	int n = snprintf(line, sizeof(line), "%s %s%s\n", who, bad[0] ? "bad: " : "ok", bad);

	if (write(fd, line, n) != n)
		exit(3);
}

static void addbad(char *bad, size_t sz, const char *what)
{
	size_t used = strlen(bad);

	snprintf(bad + used, sz - used, "%s%s", used ? ", " : "", what);
}

/* G: the foreground group of the terminal. */
static int run_g(int s, int t, pid_t c)
{
	char buf[64], bad[512] = "";
	struct stat st, tt;
	int n;

	n = read(s, buf, sizeof(buf) - 1);
	if (n <= 0 || strncmp(buf, "check\n", 6))
		addbad(bad, sizeof(bad), "did not read \"check\" on the slave");
	if (getsid(0) != c)
		addbad(bad, sizeof(bad), "session");
	if (tcgetpgrp(s) != getpid() || getpgrp() != getpid())
		addbad(bad, sizeof(bad), "not the foreground group");
	if (tcgetsid(s) != c)
		addbad(bad, sizeof(bad), "tcgetsid");
	if (fstat(s, &st) || tty_nr_of_self() != (int)st.st_rdev)
		addbad(bad, sizeof(bad), "controlling terminal (stat tty_nr)");
	if (fstat(t, &tt) || !S_ISCHR(tt.st_mode) || major(tt.st_rdev) != 5 || minor(tt.st_rdev) != 0)
		addbad(bad, sizeof(bad), "the /dev/tty fd is not /dev/tty");
	answer(t, "G", bad);
	return 0;
}

/* C: session leader, its controlling terminal is the slave. */
static int run_c(int s, int ready_w)
{
	int t;
	pid_t g;
	char bad[512] = "";
	struct stat st;

	MUST(setsid() == getpid());
	close(s);
	MUST((s = open(ptsname(3), O_RDWR)) >= 0); /* no O_NOCTTY: becomes the controlling terminal */
	MUST((t = open("/dev/tty", O_RDWR)) >= 0);
	g = fork();
	MUST(g >= 0);
	if (g == 0) {
		setpgid(0, 0);
		close(ready_w);
		exit(run_g(s, t, getppid()));
	}
	setpgid(g, g);
	MUST(tcsetpgrp(s, g) == 0);
	MUST(write(ready_w, &g, sizeof(g)) == sizeof(g));
	close(ready_w);

	int status;
	if (waitpid(g, &status, 0) != g || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		addbad(bad, sizeof(bad), "G did not exit 0");
	if (getsid(0) != getpid() || tcgetsid(s) != getpid())
		addbad(bad, sizeof(bad), "session");
	if (fstat(s, &st) || tty_nr_of_self() != (int)st.st_rdev)
		addbad(bad, sizeof(bad), "controlling terminal (stat tty_nr)");
	answer(s, "C", bad);
	return 0;
}

/* A whole line starting with `who` is in `text`. */
static int has_line(const char *text, const char *who)
{
	const char *p = strstr(text, who);

	return p && strchr(p, '\n') != NULL;
}

/* Reads from the master (packet mode) until both answers are there or 5 s passed. */
static void read_answers(int m, char *out, size_t sz)
{
	size_t used = 0;
	struct pollfd pfd = { .fd = m, .events = POLLIN };

	out[0] = 0;
	while (!has_line(out, "G ") || !has_line(out, "C ")) {
		char buf[512];
		int n;

		if (poll(&pfd, 1, 5000) <= 0)
			return;
		n = read(m, buf, sizeof(buf));
		if (n <= 0)
			return;
		if (buf[0] != 0) /* TIOCPKT_DATA is 0; anything else is a status byte alone */
			continue;
		if (used + n > sz - 1)
			return;
		memcpy(out + used, buf + 1, n - 1);
		used += n - 1;
		out[used] = 0;
	}
}

int main(int argc, char **argv)
{
	int m, s2, mb, one = 1, v, sync_pipe[2];
	char name_a[64], name_b[64];
	struct termios tio, lk;
	struct winsize ws = { .ws_row = 33, .ws_col = 77, .ws_xpixel = 500, .ws_ypixel = 600 };
	pid_t c, g;

	(void)argc;
	(void)argv;
	prog_init();
	/* fd 3: A's master (C finds the slave's name through it). */
	MUST((m = posix_openpt(O_RDWR | O_NOCTTY)) >= 0);
	if (m != 3) {
		MUST(dup2(m, 3) == 3);
		close(m);
		m = 3;
	}
	MUST(grantpt(m) == 0 && unlockpt(m) == 0);
	snprintf(name_a, sizeof(name_a), "%s", ptsname(m));
	MUST(ioctl(m, TIOCPKT, &one) == 0);
	MUST((s2 = open(name_a, O_RDWR | O_NOCTTY | O_NONBLOCK)) >= 0);
	MUST(tcgetattr(s2, &tio) == 0);
	tio.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);
	tio.c_oflag &= ~OPOST;
	tio.c_cc[VINTR] = 0x07;
	MUST(tcsetattr(s2, TCSANOW, &tio) == 0);
	memset(&lk, 0, sizeof(lk));
	lk.c_lflag = ECHO;
	MUST(ioctl(s2, TIOCSLCKTRMIOS, &lk) == 0);
	MUST(ioctl(m, TIOCSWINSZ, &ws) == 0);

	MUST(pipe(sync_pipe) == 0);
	c = fork();
	MUST(c >= 0);
	if (c == 0) {
		close(sync_pipe[0]);
		close(s2);
		exit(run_c(-1, sync_pipe[1]));
	}
	close(sync_pipe[1]);
	MUST(read(sync_pipe[0], &g, sizeof(g)) == sizeof(g));
	close(sync_pipe[0]);
	/* Every slave is open: now exclusive, and the master locked again. */
	MUST(ioctl(s2, TIOCEXCL) == 0);
	v = 1;
	MUST(ioctl(m, TIOCSPTLCK, &v) == 0);
	MUST((mb = posix_openpt(O_RDWR | O_NOCTTY)) >= 0);
	MUST(grantpt(mb) == 0);
	snprintf(name_b, sizeof(name_b), "%s", ptsname(mb));
	printf("pids %d %d\nptys %s %s\n", (int)c, (int)g, name_a, name_b);
	prog_ready();

	int corrupt = wait_for_signal();
	if (corrupt) {
		struct winsize w1 = { .ws_row = 1, .ws_col = 1 };
		ioctl(m, TIOCSWINSZ, &w1);
	}

	struct winsize w;
	if (strcmp(ptsname(m) ?: "", name_a))
		failf("master A is %s now, was %s", ptsname(m) ?: "?", name_a);
	if (strcmp(ptsname(mb) ?: "", name_b))
		failf("master B is %s now, was %s", ptsname(mb) ?: "?", name_b);
	if (ioctl(m, TIOCGPKT, &v) || v != 1)
		failf("packet mode is off");
	if (ioctl(m, TIOCGPTLCK, &v) || v != 1)
		failf("master A is not locked");
	if (ioctl(mb, TIOCGPTLCK, &v) || v != 1)
		failf("master B is not locked");
	if (ioctl(s2, TIOCGEXCL, &v) || v != 1)
		failf("slave A is not exclusive");
	if (tcgetattr(s2, &tio) || (tio.c_lflag & ECHO) || (tio.c_oflag & OPOST) || tio.c_cc[VINTR] != 0x07 || !(tio.c_lflag & ICANON))
		failf("termios: lflag %#x oflag %#x VINTR %#x", tio.c_lflag, tio.c_oflag, tio.c_cc[VINTR]);
	memset(&lk, 0xff, sizeof(lk));
	if (ioctl(s2, TIOCGLCKTRMIOS, &lk) || lk.c_lflag != ECHO || lk.c_iflag || lk.c_cflag)
		failf("locked termios: lflag %#x iflag %#x cflag %#x", lk.c_lflag, lk.c_iflag, lk.c_cflag);
	if (ioctl(s2, TIOCGWINSZ, &w) || w.ws_row != 33 || w.ws_col != 77 || w.ws_xpixel != 500 || w.ws_ypixel != 600)
		failf("window size %dx%d (%dx%d pixels)", w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel);
	if (!(fcntl(s2, F_GETFL) & O_NONBLOCK) || (fcntl(s2, F_GETFL) & O_ACCMODE) != O_RDWR)
		failf("slave fd flags %#x", fcntl(s2, F_GETFL));
	if (ioctl(m, TIOCGSID, &v) || v != c)
		failf("the terminal's session is %d, want %d", v, (int)c);
	if (ioctl(m, TIOCGPGRP, &v) || v != g)
		failf("the terminal's foreground group is %d, want %d", v, (int)g);
	/* B: unlock, open its slave, one line each way. */
	int sb = -1;
	char buf[256];
	if (unlockpt(mb) || (sb = open(name_b, O_RDWR | O_NOCTTY)) < 0) {
		failf("pty B: cannot open %s: %s", name_b, strerror(errno));
	} else {
		struct termios raw;
		tcgetattr(sb, &raw);
		cfmakeraw(&raw);
		tcsetattr(sb, TCSANOW, &raw);
		if (write(mb, "b", 1) != 1 || read(sb, buf, 1) != 1 || buf[0] != 'b' || write(sb, "B", 1) != 1 ||
		    read(mb, buf, 1) != 1 || buf[0] != 'B')
			failf("pty B does not carry data");
	}

	/* A: ask G and C through the terminal, read their answers. */
	char answers[2048];
	if (write(m, "check\n", 6) != 6)
		failf("write to master A: %s", strerror(errno));
	read_answers(m, answers, sizeof(answers));
	if (!strstr(answers, "G ok\n"))
		failf("G answered: \"%s\"", answers);
	if (!strstr(answers, "C ok\n"))
		failf("C answered: \"%s\"", answers);
	int status;
	if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("C did not exit 0");
	/* Last: a refused open of a slave sets TTY_IO_ERROR on it (pty_open). */
	int again = open(name_a, O_RDWR | O_NOCTTY);
	if (again >= 0 || errno != EIO) {
		failf("opening %s again: %s (want EIO: locked)", name_a, again >= 0 ? "worked" : strerror(errno));
		if (again >= 0)
			close(again);
	}
	return prog_finish();
}
