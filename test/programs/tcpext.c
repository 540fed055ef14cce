/* TCP connections whose peer lives outside the dumped tree: the program forks
 * a peer and lets it go (its parent exits, so it is no task of the tree), which
 * connects to three listeners of the program: IPv4, IPv6 and a dual-stack one
 * over IPv4 (an IPv4-mapped IPv6 socket). Both sides stream a pattern to each
 * other all the time, across the dump and the restore, each checking every
 * byte it gets. On SIGUSR1 the program shuts its sides down, reads to the end,
 * and takes the peer's account (result file): every byte sent by each side
 * came to the other, in order, and none was lost or reset.
 * SIGUSR2: the program takes one byte as read that it never read (FAIL). */
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#define NCONN 3
#define CHUNK 2048

struct end {
	int fd;
	long sent, got, bad; /* bad: the first wrong byte, or -1 */
	int eof, wclosed, err;
};

/* Program to peer on connection k: seed k; peer to program: k + 10. */
static unsigned char pat(int seed, long i)
{
	return (unsigned char)(i * 13 + (i >> 11) + seed * 71);
}

static void take(struct end *e, int seed, const unsigned char *b, long n)
{
	for (long j = 0; j < n; j++)
		if (e->bad < 0 && b[j] != pat(seed, e->got + j))
			e->bad = e->got + j;
	e->got += n;
}

static void give(struct end *e, int seed)
{
	unsigned char b[CHUNK];
	for (int j = 0; j < CHUNK; j++)
		b[j] = pat(seed, e->sent + j);
	ssize_t n = send(e->fd, b, CHUNK, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0)
		e->sent += n;
	else if (n < 0 && errno != EAGAIN)
		e->err = errno;
}

/* One round: whatever can be read is read and checked; a chunk sent where it can be. */
static void pump(struct end *ends, int inseed, int outseed, int writing, int ms, const sigset_t *mask)
{
	struct pollfd p[NCONN];
	for (int k = 0; k < NCONN; k++)
		p[k] = (struct pollfd){ ends[k].eof || ends[k].err ? -1 : ends[k].fd,
					POLLIN | (writing && !ends[k].wclosed ? POLLOUT : 0), 0 };
	struct timespec ts = { 0, ms * 1000000L };
	if (ppoll(p, NCONN, &ts, mask) <= 0)
		return;
	if (writing) {
		/* About a MB/s each way and connection: the machine is shared. */
		struct timespec d = { 0, 2000000L };
		nanosleep(&d, NULL);
	}
	for (int k = 0; k < NCONN; k++) {
		struct end *e = &ends[k];
		if (p[k].revents & (POLLIN | POLLHUP | POLLERR)) {
			unsigned char b[1 << 16];
			ssize_t n = recv(e->fd, b, sizeof(b), MSG_DONTWAIT);
			if (n > 0)
				take(e, inseed + k, b, n);
			else if (n == 0)
				e->eof = 1;
			else if (errno != EAGAIN)
				e->err = errno;
		}
		if (writing && !e->wclosed && !e->err && (p[k].revents & POLLOUT))
			give(e, outseed + k);
	}
}

/* A ppoll() that finds an fd ready never delivers the signal it unblocks: take it here. */
static void take_signals(void)
{
	sigset_t s;
	struct timespec zero = { 0, 0 };
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGUSR2);
	int sig = sigtimedwait(&s, NULL, &zero);
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else if (sig == SIGUSR2)
		got_usr2 = 1;
}

static int all_eof(struct end *ends)
{
	for (int k = 0; k < NCONN; k++)
		if (!ends[k].eof && !ends[k].err)
			return 0;
	return 1;
}

static int listener(int family, const char *addr, int v6only, struct sockaddr_storage *a, socklen_t *l)
{
	int fd = socket(family, SOCK_STREAM, 0);
	MUST(fd >= 0);
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)a;
		s->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s->sin_addr);
		*l = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)a;
		MUST(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) == 0);
		s->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s->sin6_addr);
		*l = sizeof(*s);
	}
	MUST(bind(fd, (struct sockaddr *)a, *l) == 0 && listen(fd, 4) == 0);
	MUST(getsockname(fd, (struct sockaddr *)a, l) == 0);
	return fd;
}

/* The peer: outside the tree, until the program has shut down every connection. */
static void peer(struct sockaddr_storage *to, socklen_t *tol, const char *result)
{
	struct end ends[NCONN];
	sigset_t none;
	sigemptyset(&none);
	alarm(600); /* never outlives a test that lost it */
	char pidfile[4200];
	snprintf(pidfile, sizeof(pidfile), "%s.pid", result);
	FILE *pf = fopen(pidfile, "w");
	MUST(pf != NULL);
	fprintf(pf, "%d\n", getpid());
	fclose(pf);
	for (int k = 0; k < NCONN; k++) {
		ends[k] = (struct end){ socket(to[k].ss_family, SOCK_STREAM, 0), 0, 0, -1, 0, 0, 0 };
		MUST(ends[k].fd >= 0 && connect(ends[k].fd, (struct sockaddr *)&to[k], tol[k]) == 0);
	}
	while (!all_eof(ends)) {
		pump(ends, 0, 10, 1, 5, &none);
		/* The program is done with a connection: so is the peer, after what it sent. */
		for (int k = 0; k < NCONN; k++)
			if (ends[k].eof && !ends[k].wclosed) {
				shutdown(ends[k].fd, SHUT_WR);
				ends[k].wclosed = 1;
			}
	}
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", result);
	FILE *f = fopen(tmp, "w");
	MUST(f != NULL);
	for (int k = 0; k < NCONN; k++)
		fprintf(f, "%d %ld %ld %ld %d\n", k, ends[k].sent, ends[k].got, ends[k].bad, ends[k].err);
	fclose(f);
	rename(tmp, result);
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	struct sockaddr_storage a[NCONN];
	socklen_t l[NCONN];
	int ls[NCONN];
	char result[4096];
	struct end ends[NCONN];
	sigset_t mask;

	prog_init();
	snprintf(result, sizeof(result), "%s/tcpext-peer.result", dir);
	unlink(result);
	ls[0] = listener(AF_INET, "127.0.0.1", 0, &a[0], &l[0]);
	ls[1] = listener(AF_INET6, "::1", 1, &a[1], &l[1]);
	ls[2] = listener(AF_INET6, "::", 0, &a[2], &l[2]);
	/* The dual-stack listener is reached over IPv4. */
	struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = ((struct sockaddr_in6 *)&a[2])->sin6_port };
	inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
	memcpy(&a[2], &v4, sizeof(v4));
	l[2] = sizeof(v4);

	pid_t mid = fork();
	MUST(mid >= 0);
	if (mid == 0) {
		setsid();
		for (int k = 0; k < NCONN; k++)
			close(ls[k]); /* the listeners are the program's alone */
		if (fork() == 0)
			peer(a, l, result);
		_exit(0);
	}
	MUST(waitpid(mid, NULL, 0) == mid);
	for (int k = 0; k < NCONN; k++) {
		ends[k] = (struct end){ accept(ls[k], NULL, NULL), 0, 0, -1, 0, 0, 0 };
		MUST(ends[k].fd >= 0);
	}
	wake_mask(&mask);
	/* Data flows both ways before READY. */
	while (ends[0].got < 100000 || ends[1].got < 100000 || ends[2].got < 100000)
		pump(ends, 10, 0, 1, 5, &mask);
	printf("PORTS %d %d %d\n", ntohs(((struct sockaddr_in *)&a[0])->sin_port),
	       ntohs(((struct sockaddr_in6 *)&a[1])->sin6_port), ntohs(v4.sin_port));
	prog_ready();
	while (!got_usr1 && !got_usr2) {
		pump(ends, 10, 0, 1, 5, &mask);
		take_signals();
	}
	if (got_usr2)
		ends[0].got++; /* a byte taken as read that never was: every later one is off */
	for (int k = 0; k < NCONN; k++)
		shutdown(ends[k].fd, SHUT_WR);
	time_t until = time(NULL) + 20;
	while (!all_eof(ends) && time(NULL) < until)
		pump(ends, 10, 0, 0, 50, &mask);
	FILE *f = NULL;
	while (!(f = fopen(result, "r")) && time(NULL) < until)
		usleep(20000);
	if (!f) {
		failf("the peer gave no account (%s)", result);
		return prog_finish();
	}
	for (int k = 0; k < NCONN; k++) {
		int kk, perr;
		long psent, pgot, pbad;
		struct end *e = &ends[k];
		if (fscanf(f, "%d %ld %ld %ld %d", &kk, &psent, &pgot, &pbad, &perr) != 5 || kk != k) {
			failf("connection %d: no account of the peer", k);
			continue;
		}
		if (e->err || perr)
			failf("connection %d: error %s here, %s at the peer", k, strerror(e->err), strerror(perr));
		if (!e->eof)
			failf("connection %d: the peer never closed it", k);
		if (e->bad >= 0)
			failf("connection %d: byte %ld from the peer is wrong", k, e->bad);
		if (pbad >= 0)
			failf("connection %d: byte %ld to the peer is wrong", k, pbad);
		if (psent != e->got)
			failf("connection %d: the peer sent %ld bytes, %ld came", k, psent, e->got);
		if (pgot != e->sent)
			failf("connection %d: %ld bytes sent, the peer got %ld", k, e->sent, pgot);
	}
	fclose(f);
	printf("bytes: %ld/%ld %ld/%ld %ld/%ld\n", ends[0].sent, ends[0].got, ends[1].sent, ends[1].got, ends[2].sent, ends[2].got);
	return prog_finish();
}
