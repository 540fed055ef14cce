/*
 * ptydata: data queued in pseudo-terminals, in both directions.
 *
 * Pairs A and B get the same treatment, in canonical mode with echo (the
 * defaults): the master writes "line one\nline two\neof^Dpart" (two lines, a
 * line ended by end-of-file, a line still being typed), the slave writes
 * "out1\n" (which output processing turns into "out1\r\n", after the echoes).
 * B is then read out at once, which tells what A holds: A is checkpointed
 * with everything still queued.
 * Pair C is raw (cfmakeraw on the slave): 256 bytes of every value each way.
 * On SIGUSR1: A's slave gives the same reads as B's did (one line each, the
 * end-of-file line without its ^D), its master the same bytes; after one
 * more "\n" from the master, A's slave (and B's) gives "part\n"; C gives its
 * bytes back exactly on both sides, and nothing more is queued anywhere.
 * SIGUSR2: one byte is taken from A's slave first.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>

struct pair {
	int m, s;
};

static struct pair open_pair(void)
{
	struct pair p;

	p.m = posix_openpt(O_RDWR | O_NOCTTY);
	MUST(p.m >= 0 && grantpt(p.m) == 0 && unlockpt(p.m) == 0);
	p.s = open(ptsname(p.m), O_RDWR | O_NOCTTY);
	MUST(p.s >= 0);
	return p;
}

static int queued(int fd)
{
	int n = -1;

	ioctl(fd, FIONREAD, &n);
	return n;
}

/* Waits until the line discipline has taken everything in (counts stop moving). */
static void settle(int fd)
{
	struct timespec ts = { 0, 20000000 };
	int last = -1, same = 0;

	for (int i = 0; i < 200 && same < 5; i++) {
		int n = queued(fd);

		same = n == last ? same + 1 : 0;
		last = n;
		nanosleep(&ts, NULL);
	}
}

static const char input[] = "line one\nline two\neof\004part";

static void feed(struct pair *p)
{
	MUST(write(p->m, input, sizeof(input) - 1) == (ssize_t)sizeof(input) - 1);
	settle(p->s);
	settle(p->m);
	MUST(write(p->s, "out1\n", 5) == 5);
	settle(p->m);
}

/* The reads a canonical slave gives now: up to 8 lines, each NUL-terminated. */
static int slave_reads(int fd, char lines[8][64])
{
	int n = 0;

	while (n < 8 && queued(fd) > 0) {
		ssize_t r = read(fd, lines[n], 63);

		if (r < 0)
			break;
		lines[n++][r] = 0;
	}
	return n;
}

static int master_bytes(int fd, char *buf, int max)
{
	int n = queued(fd), r;

	if (n <= 0)
		return 0;
	r = (int)read(fd, buf, n < max ? n : max);
	return r < 0 ? 0 : r;
}

int main(int argc, char **argv)
{
	struct pair a, b, c;
	char blines[8][64], alines[8][64], bm[256], am[256], raw[256], got[256], buf[64];
	int nb, na, nbm, nam;
	struct termios t;

	(void)argc;
	(void)argv;
	prog_init();
	a = open_pair();
	b = open_pair();
	c = open_pair();
	feed(&a);
	feed(&b);
	nb = slave_reads(b.s, blines);
	nbm = master_bytes(b.m, bm, sizeof(bm));
	MUST(nb == 3 && !strcmp(blines[2], "eof") && nbm > 5);

	MUST(tcgetattr(c.s, &t) == 0);
	cfmakeraw(&t);
	MUST(tcsetattr(c.s, TCSANOW, &t) == 0);
	for (int i = 0; i < 256; i++)
		raw[i] = (char)i;
	MUST(write(c.m, raw, 256) == 256);
	MUST(write(c.s, raw, 256) == 256);
	settle(c.s);
	settle(c.m);

	prog_ready();
	if (wait_for_signal())
		MUST(read(a.s, buf, 1) == 1);

	na = slave_reads(a.s, alines);
	if (na != nb)
		failf("A's slave gives %d reads, B's gave %d", na, nb);
	for (int i = 0; i < na && i < nb; i++)
		if (strcmp(alines[i], blines[i]))
			failf("A's slave read %d is \"%s\", want \"%s\"", i, alines[i], blines[i]);
	nam = master_bytes(a.m, am, sizeof(am));
	if (nam != nbm || memcmp(am, bm, nam))
		failf("A's master gives %d bytes, want B's %d (%s)", nam, nbm, nam == nbm ? "they differ" : "lengths differ");
	for (int i = 0; i < 2; i++) {
		struct pair *p = i ? &b : &a;
		ssize_t r;

		MUST(write(p->m, "\n", 1) == 1);
		settle(p->s);
		r = queued(p->s) > 0 ? read(p->s, buf, sizeof(buf) - 1) : 0;
		buf[r < 0 ? 0 : r] = 0;
		if (strcmp(buf, "part\n"))
			failf("%c's slave gives \"%s\" once the line ends, want \"part\\n\"", i ? 'B' : 'A', buf);
	}
	for (int side = 0; side < 2; side++) {
		int fd = side ? c.m : c.s, n = 0;

		while (n < 256 && queued(fd) > 0) {
			ssize_t r = read(fd, got + n, 256 - n);

			if (r <= 0)
				break;
			n += (int)r;
		}
		if (n != 256 || memcmp(got, raw, 256))
			failf("C's %s gives %d bytes, want the 256 written (%s)", side ? "master" : "slave", n,
			      n == 256 ? "they differ" : "count differs");
		if (queued(fd) != 0)
			failf("C's %s has %d more bytes", side ? "master" : "slave", queued(fd));
	}
	return prog_finish();
}
