/* Half-closed TCP connections between tasks of the tree, over IPv4 and IPv6
 * loopback, each with data in flight, one pair of ends per case:
 *  - "fin2": the client wrote a message and shut down for writing (FIN_WAIT2);
 *    the server has the message and the FIN unread (CLOSE_WAIT) and wrote a
 *    reply the client has not read;
 *  - "fin1": the client filled the server's receive buffer and its own send
 *    queue, then shut down for writing: its FIN waits behind the data
 *    (FIN_WAIT1), the server has seen none of it (ESTABLISHED);
 *  - "lastack": the client shut down for writing (FIN_WAIT2), the server got
 *    that FIN, filled the client's receive buffer and its own send queue, and
 *    shut down too: its FIN waits behind the data (LAST_ACK);
 *  - "closing": the client's FIN waits behind data as in "fin1", and the server
 *    shut down: the client got the server's FIN and acknowledged it (the
 *    client CLOSING, the server FIN_WAIT2);
 *  - "closed": the client wrote a message and shut down, the server shut
 *    down without reading it: both ends are CLOSE (the client's connection
 *    lives on in TIME_WAIT), the message and the end unread at the server.
 * After restore every end is in its state, every byte comes in order and then
 * the end of the stream (read returns 0), an end shut down for writing gets
 * EPIPE, the other can still send, and the closing ones finish.
 * SIGUSR2: the server of "fin2" reads the message first (FAIL). */
#include "common.h"
#include "tcpstate.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

struct conn {
	const char *name;
	int c, s;
	struct sockaddr_storage peer; /* the server's peer ("closed") */
	socklen_t peerlen; /* SO_PEERNAME wants the family's size exactly */
	long sent; /* bytes of the pattern sent by the end that filled the other */
};

static unsigned char pat(long i)
{
	return (unsigned char)(i * 7 + (i >> 9));
}

static void pair(struct conn *k, int family, const char *name)
{
	struct sockaddr_storage a = { 0 };
	socklen_t l;
	int ls = socket(family, SOCK_STREAM, 0), small = 4096;
	MUST(ls >= 0);
	k->name = name;
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
	/* Small buffers (inherited by the accepted end): they fill quickly. */
	MUST(setsockopt(ls, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	MUST(bind(ls, (struct sockaddr *)&a, l) == 0 && listen(ls, 1) == 0);
	MUST(getsockname(ls, (struct sockaddr *)&a, &l) == 0);
	k->c = socket(family, SOCK_STREAM, 0);
	MUST(setsockopt(k->c, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	MUST(connect(k->c, (struct sockaddr *)&a, l) == 0);
	k->s = accept(ls, NULL, NULL);
	MUST(k->s >= 0);
	close(ls);
}

/* Write the pattern until the peer's receive buffer and our send queue are full. */
static void fill(struct conn *k, int fd)
{
	char buf[1024];
	MUST(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	for (int idle = 0; idle < 20;) {
		for (int i = 0; i < (int)sizeof(buf); i++)
			buf[i] = pat(k->sent + i);
		ssize_t n = write(fd, buf, sizeof(buf));
		if (n > 0) {
			k->sent += n;
			idle = 0;
		} else {
			idle++;
			usleep(2000);
		}
	}
	MUST(fcntl(fd, F_SETFL, 0) == 0);
}

static void await_state(int fd, int want)
{
	for (int i = 0; i < 500 && tcp_state(fd) != want; i++)
		usleep(2000);
	MUST(tcp_state(fd) == want);
}

static void setup(struct conn k[5], int family)
{
	pair(&k[0], family, family == AF_INET ? "IPv4 fin2" : "IPv6 fin2");
	MUST(write(k[0].c, "from client", 11) == 11);
	MUST(shutdown(k[0].c, SHUT_WR) == 0);
	MUST(write(k[0].s, "reply", 5) == 5);
	await_state(k[0].c, TCP_FIN_WAIT2);
	await_state(k[0].s, TCP_CLOSE_WAIT);

	pair(&k[1], family, family == AF_INET ? "IPv4 fin1" : "IPv6 fin1");
	fill(&k[1], k[1].c);
	MUST(shutdown(k[1].c, SHUT_WR) == 0);
	MUST(tcp_state(k[1].c) == TCP_FIN_WAIT1 && tcp_state(k[1].s) == TCP_ESTABLISHED);

	pair(&k[2], family, family == AF_INET ? "IPv4 lastack" : "IPv6 lastack");
	MUST(shutdown(k[2].c, SHUT_WR) == 0);
	await_state(k[2].s, TCP_CLOSE_WAIT);
	fill(&k[2], k[2].s);
	MUST(shutdown(k[2].s, SHUT_WR) == 0);
	MUST(tcp_state(k[2].s) == TCP_LAST_ACK && tcp_state(k[2].c) == TCP_FIN_WAIT2);

	pair(&k[3], family, family == AF_INET ? "IPv4 closing" : "IPv6 closing");
	fill(&k[3], k[3].c);
	MUST(shutdown(k[3].c, SHUT_WR) == 0);
	MUST(shutdown(k[3].s, SHUT_WR) == 0);
	await_state(k[3].c, TCP_CLOSING);
	await_state(k[3].s, TCP_FIN_WAIT2);

	pair(&k[4], family, family == AF_INET ? "IPv4 closed" : "IPv6 closed");
	MUST(write(k[4].c, "tail", 4) == 4);
	MUST(shutdown(k[4].c, SHUT_WR) == 0);
	await_state(k[4].s, TCP_CLOSE_WAIT);
	MUST(shutdown(k[4].s, SHUT_WR) == 0);
	await_state(k[4].s, TCP_CLOSE);
	await_state(k[4].c, TCP_CLOSE);
	k[4].peerlen = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	MUST(getsockopt(k[4].s, SOL_SOCKET, SO_PEERNAME, &k[4].peer, &k[4].peerlen) == 0);
}

/* Read n bytes (n < 0: until the end, which must come then); -1 on a timeout or error. */
static long read_some(int fd, char *b, long n)
{
	long got = 0;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 10000) != 1)
			return -1;
		ssize_t r = read(fd, b + got, n - got);
		if (r < 0)
			return -1;
		if (r == 0 || (got += r) == n)
			return got;
	}
}

static int at_end(int fd)
{
	char c;
	return read_some(fd, &c, 1) == 0;
}

static void check_pattern(struct conn *k, int fd)
{
	static char big[1 << 16];
	long i = 0;
	while (i < k->sent) {
		long n = k->sent - i < (long)sizeof(big) ? k->sent - i : (long)sizeof(big);
		if (read_some(fd, big, n) != n) {
			failf("%s: the stream stopped after %ld of %ld bytes", k->name, i, k->sent);
			return;
		}
		for (long j = 0; j < n; j++)
			if ((unsigned char)big[j] != pat(i + j)) {
				failf("%s: byte %ld of the stream is wrong", k->name, i + j);
				return;
			}
		i += n;
	}
	if (!at_end(fd))
		failf("%s: no end of the stream after its %ld bytes", k->name, k->sent);
}

static void no_write(struct conn *k, int fd, const char *who)
{
	if (send(fd, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		failf("%s: the %s shut down for writing can write (%s)", k->name, who, strerror(errno));
}

static void want_state(struct conn *k, int fd, const char *who, int want)
{
	int got = tcp_state(fd);
	if (got != want)
		failf("%s: the %s is in state %d, want %d", k->name, who, got, want);
}

static void check(struct conn k[5])
{
	char b[64];

	want_state(&k[0], k[0].c, "client", TCP_FIN_WAIT2);
	want_state(&k[0], k[0].s, "server", TCP_CLOSE_WAIT);
	want_state(&k[1], k[1].c, "client", TCP_FIN_WAIT1);
	want_state(&k[1], k[1].s, "server", TCP_ESTABLISHED);
	want_state(&k[2], k[2].c, "client", TCP_FIN_WAIT2);
	want_state(&k[2], k[2].s, "server", TCP_LAST_ACK);
	want_state(&k[3], k[3].c, "client", TCP_CLOSING);
	want_state(&k[3], k[3].s, "server", TCP_FIN_WAIT2);
	want_state(&k[4], k[4].c, "client", TCP_CLOSE);
	want_state(&k[4], k[4].s, "server", TCP_CLOSE);

	/* fin2: the message, then the end; the reply; the server can still send. */
	if (read_some(k[0].s, b, 11) != 11 || memcmp(b, "from client", 11))
		failf("%s: the server did not get the client's message", k[0].name);
	else if (!at_end(k[0].s))
		failf("%s: the server did not get the end after the message", k[0].name);
	no_write(&k[0], k[0].c, "client");
	if (read_some(k[0].c, b, 5) != 5 || memcmp(b, "reply", 5))
		failf("%s: the client did not get the server's reply", k[0].name);
	if (write(k[0].s, "more", 4) != 4 || read_some(k[0].c, b, 4) != 4 || memcmp(b, "more", 4))
		failf("%s: the server cannot send to the client any more", k[0].name);
	close(k[0].s);
	if (!at_end(k[0].c))
		failf("%s: the client did not see the server's close", k[0].name);

	/* fin1: every byte, then the end; the server answers and closes. */
	no_write(&k[1], k[1].c, "client");
	check_pattern(&k[1], k[1].s);
	if (write(k[1].s, "bye", 3) != 3 || read_some(k[1].c, b, 3) != 3 || memcmp(b, "bye", 3))
		failf("%s: the client did not get the server's answer", k[1].name);
	close(k[1].s);
	if (!at_end(k[1].c))
		failf("%s: the client did not see the server's close", k[1].name);

	/* lastack: the server's bytes, then the end, at the client. */
	no_write(&k[2], k[2].s, "server");
	check_pattern(&k[2], k[2].c);

	/* closing: the client has the end already; the server gets every byte and the end. */
	if (!at_end(k[3].c))
		failf("%s: the client did not get the server's end", k[3].name);
	no_write(&k[3], k[3].c, "client");
	no_write(&k[3], k[3].s, "server");
	check_pattern(&k[3], k[3].s);

	/* closed: the server's peer as it was, the message then the end; the client's end. */
	{
		struct sockaddr_storage p;
		socklen_t l = k[4].peerlen;
		if (getsockopt(k[4].s, SOL_SOCKET, SO_PEERNAME, &p, &l) || memcmp(&p, &k[4].peer, l))
			failf("%s: the server's peer is gone or another", k[4].name);
	}
	if (read_some(k[4].s, b, 4) != 4 || memcmp(b, "tail", 4))
		failf("%s: the server did not get the client's message", k[4].name);
	else if (!at_end(k[4].s))
		failf("%s: the server did not get the end after the message", k[4].name);
	if (!at_end(k[4].c))
		failf("%s: the client did not get the end", k[4].name);
	no_write(&k[4], k[4].c, "client");
	no_write(&k[4], k[4].s, "server");
}

int main(void)
{
	struct conn v4[5] = { 0 }, v6[5] = { 0 };
	prog_init();
	setup(v4, AF_INET);
	setup(v6, AF_INET6);
	prog_ready();
	if (wait_for_signal()) {
		char c;
		if (read(v4[0].s, &c, 1) != 1)
			return 2;
	}
	check(v4);
	check(v6);
	return prog_finish();
}
