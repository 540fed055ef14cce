/* pipeflags: ends of one pipe opened apart (through /proc/self/fd) are open file
 * descriptions of their own, each with its own O_NONBLOCK; and pipe sizes.
 *   - p: O_NONBLOCK on the write end w only (wdup, its dup, shares it), not on w2
 *     (w reopened) nor on r; r2 (r reopened) is O_NONBLOCK alone;
 *   - empty: an empty pipe grown to 1 MiB with F_SETPIPE_SZ;
 *   - full: a pipe of 256 KiB holding 200 KiB.
 * After restore every flag (F_GETFL whole: a reopened end has O_LARGEFILE, one
 * pipe() made has not), size and byte is as it was. SIGUSR2: clear w's O_NONBLOCK
 * (FAIL). */
#include "common.h"
#include <fcntl.h>

#define FULL (200 << 10)

static int reopen(int fd, int how)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return open(p, how);
}

static void want_nonblock(int fd, const char *what, int want)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !!(fl & O_NONBLOCK) != want)
		failf("%s: O_NONBLOCK %s, want %s", what, fl < 0 ? "?" : fl & O_NONBLOCK ? "set" : "clear", want ? "set" : "clear");
}

static void want_size(int fd, const char *what, int want)
{
	int sz = fcntl(fd, F_GETPIPE_SZ);

	if (sz != want)
		failf("%s: pipe size %d, want %d", what, sz, want);
}

int main(void)
{
	int p[2], empty[2], full[2], r2, w2, wdup, corrupt, fl[6];
	static char buf[FULL], got[FULL];

	prog_init();
	MUST(pipe(p) == 0);
	MUST((r2 = reopen(p[0], O_RDONLY)) >= 0);
	MUST((w2 = reopen(p[1], O_WRONLY)) >= 0);
	MUST((wdup = dup(p[1])) >= 0);
	MUST(fcntl(p[1], F_SETFL, O_NONBLOCK) == 0);
	MUST(fcntl(r2, F_SETFL, O_NONBLOCK) == 0);
	MUST(write(w2, "abc", 3) == 3);

	MUST(pipe(empty) == 0);
	MUST(fcntl(empty[1], F_SETPIPE_SZ, 1 << 20) == 1 << 20);
	MUST(pipe(full) == 0);
	MUST(fcntl(full[0], F_SETPIPE_SZ, 256 << 10) == 256 << 10);
	for (int i = 0; i < FULL; i++)
		buf[i] = (char)(pattern64(9, i) & 0xff);
	MUST(write(full[1], buf, FULL) == FULL);

	int *fds[6] = { &p[0], &p[1], &r2, &w2, &wdup, &full[0] };
	for (int i = 0; i < 6; i++)
		fl[i] = fcntl(*fds[i], F_GETFL);
	prog_ready();
	corrupt = wait_for_signal();
	for (int i = 0; i < 6; i++)
		if (fcntl(*fds[i], F_GETFL) != fl[i] && !(corrupt && i == 1))
			failf("fd %d: F_GETFL 0%o, was 0%o", *fds[i], fcntl(*fds[i], F_GETFL), fl[i]);
	if (corrupt)
		fcntl(p[1], F_SETFL, 0);

	want_nonblock(p[1], "w", 1);
	want_nonblock(wdup, "wdup", 1);
	want_nonblock(w2, "w2", 0);
	want_nonblock(p[0], "r", 0);
	want_nonblock(r2, "r2", 1);
	if (read(r2, got, 4) != 3 || memcmp(got, "abc", 3))
		failf("p: the queued bytes changed");
	if (read(r2, got, 1) != -1 || errno != EAGAIN)
		failf("r2: a read of the empty pipe did not fail with EAGAIN");

	want_size(empty[0], "empty", 1 << 20);
	want_size(full[1], "full", 256 << 10);
	ssize_t n = 0;
	for (ssize_t k; n < FULL && (k = read(full[0], got + n, FULL - n)) > 0;)
		n += k;
	if (n != FULL || memcmp(got, buf, FULL))
		failf("full: %zd bytes back of %d, or changed", n, FULL);
	return prog_finish();
}
