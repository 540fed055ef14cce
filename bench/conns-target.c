/* bench/conns-target.c: COUNT established TCP connections to 127.0.0.1:PORT
 * (the benchmark's own peer, outside the dumped tree), every byte that comes
 * in echoed back on the same connection. It prints READY once all are made,
 * and exits 0 once the peer has closed every one, 1 on any error. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what)
{
	printf("FAIL: %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: conns-target PORT COUNT\n");
		return 2;
	}
	int port = atoi(argv[1]), count = atoi(argv[2]);
	struct pollfd *p = calloc(count, sizeof(*p));
	if (!p)
		die("calloc");
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < count; i++) {
		int one = 1;
		p[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (p[i].fd < 0)
			die("socket");
		if (connect(p[i].fd, (struct sockaddr *)&a, sizeof(a)))
			die("connect");
		setsockopt(p[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		p[i].events = POLLIN;
	}
	printf("READY\n");
	fflush(stdout);
	for (int open = count; open > 0;) {
		if (poll(p, count, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		for (int i = 0; i < count; i++) {
			if (!p[i].revents)
				continue;
			char buf[4096];
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n < 0)
				die("read");
			if (n == 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open--;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(p[i].fd, buf + off, n - off);
				if (w < 0)
					die("write");
				off += w;
			}
		}
	}
	printf("PASS\n");
	return 0;
}
