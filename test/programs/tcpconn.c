/* Established TCP connections between tasks of the tree, over IPv4 and IPv6
 * loopback, with data in flight: each end has bytes it has not read yet, and
 * the client has sent so much that its send queue is full (the server's receive
 * buffer too). After restore every byte comes in order, the addresses are the
 * same, TCP_NODELAY, TCP_USER_TIMEOUT and SO_REUSEADDR are kept, and both ends go on talking.
 * SIGUSR2: the server reads one byte of the stream first (FAIL). */
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

struct conn {
	int c, s;
	long sent; /* bytes of the pattern the client sent */
	int buflock; /* SO_BUF_LOCK of the server (0: buffers autotuned) */
	char local[64];
};

static unsigned char pat(long i)
{
	return (unsigned char)(i * 7 + (i >> 9));
}

static void name_of(int fd, char *out)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);
	char h[48] = "";
	getsockname(fd, (struct sockaddr *)&a, &l);
	if (a.ss_family == AF_INET)
		snprintf(out, 64, "%s:%d", inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, h, sizeof(h)), ntohs(((struct sockaddr_in *)&a)->sin_port));
	else
		snprintf(out, 64, "[%s]:%d", inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a)->sin6_addr, h, sizeof(h)), ntohs(((struct sockaddr_in6 *)&a)->sin6_port));
}

static void setup(struct conn *k, int family)
{
	struct sockaddr_storage a = { 0 };
	socklen_t l;
	int ls = socket(family, SOCK_STREAM, 0), one = 1;
	MUST(ls >= 0);
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&a;
		s->sin_family = AF_INET;
		inet_pton(AF_INET, "127.0.0.1", &s->sin_addr);
		l = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a;
		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		l = sizeof(*s);
	}
	MUST(bind(ls, (struct sockaddr *)&a, l) == 0 && listen(ls, 1) == 0);
	MUST(getsockname(ls, (struct sockaddr *)&a, &l) == 0);
	k->c = socket(family, SOCK_STREAM, 0);
	MUST(setsockopt(k->c, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	MUST(connect(k->c, (struct sockaddr *)&a, l) == 0);
	k->s = accept(ls, NULL, NULL);
	MUST(k->s >= 0);
	close(ls);
	MUST(setsockopt(k->c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0);
	{
		int ut = 5555;

		MUST(setsockopt(k->c, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut)) == 0);
	}
	MUST(write(k->c, "hello from client", 17) == 17);
	MUST(write(k->s, "hi from server", 14) == 14);
	/* Fill the server's receive buffer and the client's send queue. */
	MUST(fcntl(k->c, F_SETFL, O_NONBLOCK) == 0);
	char buf[4096];
	for (int idle = 0; idle < 20;) {
		for (int i = 0; i < (int)sizeof(buf); i++)
			buf[i] = pat(k->sent + i);
		ssize_t n = write(k->c, buf, sizeof(buf));
		if (n > 0) {
			k->sent += n;
			idle = 0;
		} else {
			idle++;
			usleep(2000);
		}
	}
	MUST(fcntl(k->c, F_SETFL, 0) == 0);
	name_of(k->c, k->local);
	socklen_t bl = sizeof(k->buflock);
	MUST(getsockopt(k->s, SOL_SOCKET, SO_BUF_LOCK, &k->buflock, &bl) == 0);
}

static int read_full(int fd, void *b, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 5000) != 1)
			return -1;
		ssize_t r = read(fd, (char *)b + got, n - got);
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

static void check(struct conn *k, const char *what)
{
	char b[64], now[64];
	int v = 0;
	socklen_t l = sizeof(v);
	name_of(k->c, now);
	if (strcmp(now, k->local))
		failf("%s: client at %s, was %s", what, now, k->local);
	if (getsockopt(k->c, IPPROTO_TCP, TCP_NODELAY, &v, &l) || v != 1)
		failf("%s: TCP_NODELAY lost", what);
	if (getsockopt(k->c, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &l) || v != 5555)
		failf("%s: TCP_USER_TIMEOUT %d, not 5555", what, v);
	if (getsockopt(k->s, SOL_SOCKET, SO_BUF_LOCK, &v, &l) || v != k->buflock)
		failf("%s: SO_BUF_LOCK %d, was %d (refilling the queues locked the buffers)", what, v, k->buflock);
	if (getsockopt(k->c, SOL_SOCKET, SO_REUSEADDR, &v, &l) || v != 1)
		failf("%s: SO_REUSEADDR lost (repair mode clears it)", what);
	if (read_full(k->c, b, 14) || memcmp(b, "hi from server", 14))
		failf("%s: the client did not get the server's unread message", what);
	if (read_full(k->s, b, 17) || memcmp(b, "hello from client", 17))
		failf("%s: the server did not get the client's unread message", what);
	static char big[1 << 16];
	long i = 0, bad = -1;
	while (i < k->sent) {
		size_t n = k->sent - i < (long)sizeof(big) ? k->sent - i : sizeof(big);
		if (read_full(k->s, big, n)) {
			failf("%s: the stream stopped after %ld of %ld bytes", what, i, k->sent);
			return;
		}
		for (size_t j = 0; j < n && bad < 0; j++)
			if ((unsigned char)big[j] != pat(i + j))
				bad = i + j;
		i += n;
	}
	if (bad >= 0)
		failf("%s: byte %ld of the stream is wrong", what, bad);
	if (write(k->c, "more", 4) != 4 || read_full(k->s, b, 4) || memcmp(b, "more", 4))
		failf("%s: no new data client to server", what);
	if (write(k->s, "back", 4) != 4 || read_full(k->c, b, 4) || memcmp(b, "back", 4))
		failf("%s: no new data server to client", what);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct conn v4 = { 0 }, v6 = { 0 };
	prog_init();
	setup(&v4, AF_INET);
	setup(&v6, AF_INET6);
	printf("sent %ld and %ld bytes\n", v4.sent, v6.sent);
	prog_ready();
	if (wait_for_signal()) {
		char c;
		if (read(v4.s, &c, 1) != 1)
			return 2;
	}
	check(&v4, "IPv4 connection");
	check(&v6, "IPv6 connection");
	return prog_finish();
}
