/* A session leader whose controlling terminal is a pseudo-terminal opened outside
 * the tree (its stdin, stdout and stderr), as a container's init on its console.
 * Restored with --shell-job and orphan_pts_master over RPC, it must get a new
 * pty of the same number as its controlling terminal, whose master the RPC
 * client holds: after SIGUSR1 it checks the name, the session and the foreground
 * group, reads "ping" from the terminal and prints PASS there.
 * SIGUSR2: give up the controlling terminal first (FAIL). */
#include "common.h"
#include <sys/ioctl.h>

int main(void)
{
	char name[64], buf[16];
	int corrupt;

	prog_init();
	MUST(isatty(0) && ttyname_r(0, name, sizeof(name)) == 0);
	MUST(getsid(0) == getpid() && tcgetpgrp(0) == getpgrp());
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		ioctl(0, TIOCNOTTY);
	char now[64] = "";
	if (!isatty(0) || ttyname_r(0, now, sizeof(now)) || strcmp(now, name))
		failf("the terminal is %s, was %s", now, name);
	if (getsid(0) != getpid())
		failf("no longer a session leader");
	if (tcgetpgrp(0) != getpgrp())
		failf("the terminal is not the controlling terminal of the session (foreground group %d)", (int)tcgetpgrp(0));
	ssize_t n = read(0, buf, sizeof(buf) - 1);
	if (n < 5 || memcmp(buf, "ping\n", 5))
		failf("read %zd bytes from the terminal, want ping", n);
	return prog_finish();
}
