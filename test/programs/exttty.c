/*
 * exttty: a terminal from outside the tree (fd 3, the slave of a pty whose
 * master the test holds), dumped with --external tty[RDEV:DEV] and given back
 * on restore with --inherit-fd (a slave of another pty).
 *
 * Sets no echo and a 20x30 window on it, writes "before", READY. After
 * SIGUSR1: fd 3 must be a terminal with those settings (cryo puts the dumped
 * ones on the terminal it is given), then "after" goes into it.
 *
 * SIGUSR2 changes the window size first, so the check must FAIL.
 */
#include "common.h"

#include <sys/ioctl.h>
#include <termios.h>

int main(int argc, char **argv)
{
	struct termios t;
	struct winsize w = { .ws_row = 20, .ws_col = 30 };

	(void)argc;
	(void)argv;
	prog_init();
	MUST(isatty(3));
	MUST(tcgetattr(3, &t) == 0);
	t.c_lflag &= ~ECHO;
	MUST(tcsetattr(3, TCSANOW, &t) == 0);
	MUST(ioctl(3, TIOCSWINSZ, &w) == 0);
	MUST(write(3, "before\n", 7) == 7);
	prog_ready();

	if (wait_for_signal()) {
		struct winsize w1 = { .ws_row = 1, .ws_col = 1 };
		ioctl(3, TIOCSWINSZ, &w1);
	}
	if (!isatty(3))
		failf("fd 3 is no terminal");
	if (tcgetattr(3, &t) || (t.c_lflag & ECHO))
		failf("echo is on");
	if (ioctl(3, TIOCGWINSZ, &w) || w.ws_row != 20 || w.ws_col != 30)
		failf("window size %dx%d", w.ws_row, w.ws_col);
	if (write(3, "after\n", 6) != 6)
		failf("write to fd 3: %s", strerror(errno));
	return prog_finish();
}
