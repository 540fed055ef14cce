/* TCP sockets in state CLOSE whose read side is shut: both ends of a loopback
 * connection that ended in this task (FIN both ways: tcp_done shuts a socket
 * both ways), and a never connected socket shut down both ways (which is what a
 * --tcp-close restore makes of a connection). After restore each still reads
 * end-of-file (0, not ENOTCONN), polls POLLRDHUP|POLLHUP|POLLIN and fails a send
 * with EPIPE; a plain unconnected socket still says ENOTCONN and no POLLRDHUP.
 * SIGUSR2: the shut socket is replaced by a fresh one (FAIL). */
#include "common.h"
#include "tcpstate.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

static short revents(int fd)
{
	struct pollfd p = { fd, POLLIN | POLLOUT | POLLRDHUP, 0 };

	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

static void check_shut(int fd, const char *what)
{
	char b[4];
	short ev = revents(fd);
	ssize_t r;

	if (tcp_state(fd) != TCP_CLOSE)
		failf("%s: state %d, not CLOSE", what, tcp_state(fd));
	r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	if (r != 0)
		failf("%s: recv gave %zd (%s), not end-of-file", what, r, r < 0 ? strerror(errno) : "data");
	if ((ev & (POLLRDHUP | POLLHUP | POLLIN)) != (POLLRDHUP | POLLHUP | POLLIN) || (ev & POLLERR))
		failf("%s: poll revents 0x%x, want POLLRDHUP|POLLHUP|POLLIN and no POLLERR", what, ev);
	errno = 0;
	if (send(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != -1 || errno != EPIPE)
		failf("%s: send did not fail with EPIPE (%s)", what, strerror(errno));
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int ls, c, s, shut, fresh;

	prog_init();
	(void)prog_dir(argc, argv);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	MUST(ls >= 0 && bind(ls, (struct sockaddr *)&a, l) == 0 && listen(ls, 1) == 0);
	MUST(getsockname(ls, (struct sockaddr *)&a, &l) == 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	MUST(c >= 0 && connect(c, (struct sockaddr *)&a, l) == 0);
	s = accept(ls, NULL, NULL);
	MUST(s >= 0);
	close(ls);
	/* c: FIN_WAIT2 once s has the FIN; s: CLOSE_WAIT, then LAST_ACK; both CLOSE at the end. */
	MUST(shutdown(c, SHUT_WR) == 0);
	for (int i = 0; i < 500 && tcp_state(s) != TCP_CLOSE_WAIT; i++)
		usleep(10000);
	MUST(tcp_state(s) == TCP_CLOSE_WAIT);
	MUST(shutdown(s, SHUT_WR) == 0);
	for (int i = 0; i < 500 && (tcp_state(s) != TCP_CLOSE || tcp_state(c) != TCP_CLOSE); i++)
		usleep(10000);
	MUST(tcp_state(s) == TCP_CLOSE && tcp_state(c) == TCP_CLOSE);
	/* Both read end-of-file already: nothing is left to read. */
	char b[4];
	MUST(recv(s, b, sizeof(b), MSG_DONTWAIT) == 0 && recv(c, b, sizeof(b), MSG_DONTWAIT) == 0);
	shut = socket(AF_INET, SOCK_STREAM, 0);
	MUST(shut >= 0);
	/* Unconnected: the kernel says ENOTCONN, and sets the bits. */
	MUST(shutdown(shut, SHUT_RDWR) == -1 && errno == ENOTCONN);
	fresh = socket(AF_INET, SOCK_STREAM, 0);
	MUST(fresh >= 0);
	check_shut(c, "client");
	check_shut(s, "server");
	check_shut(shut, "shut unconnected");
	MUST(common_fail_count == 0);
	prog_ready();

	if (wait_for_signal()) {
		int n = socket(AF_INET, SOCK_STREAM, 0);
		MUST(n >= 0 && dup2(n, shut) == shut);
		close(n);
	}
	check_shut(c, "client");
	check_shut(s, "server");
	check_shut(shut, "shut unconnected");
	{
		char x[4];
		short ev = revents(fresh);
		ssize_t r = recv(fresh, x, sizeof(x), MSG_DONTWAIT);
		if (r != -1 || errno != ENOTCONN)
			failf("fresh: recv gave %zd (%s), not ENOTCONN", r, r < 0 ? strerror(errno) : "");
		if (ev & POLLRDHUP)
			failf("fresh: poll revents 0x%x has POLLRDHUP", ev);
	}
	return prog_finish();
}
