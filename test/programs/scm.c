/* Files in flight (SCM_RIGHTS) that only a socket queue holds:
 *  - both ends of a pipe sent in two datagrams and closed here (two files of
 *    one inode, each in flight);
 *  - a datagram pair whose sending end was closed: its packets wait in the
 *    other end, one of them carrying a pipe read end with data in the pipe;
 *  - an epoll sent twice and closed here, watching a socket this task holds,
 *    with a datagram waiting on that socket;
 *  - a stream socket in flight that has queued data and an eventfd in flight
 *    of its own (a queue inside a queue); its peer is kept;
 *  - a datagram socket in flight in its own queue, reached only through a
 *    carrier socket.
 * SIGUSR2: read the first queued datagram of the closed pair first (FAIL). */
#include "common.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

static void send_fd(int via, const char *data, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)data, strlen(data) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);

	if (fd < 0) {
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	} else {
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(ch), &fd, sizeof(int));
	}
	MUST(sendmsg(via, &mh, 0) == (ssize_t)strlen(data));
}

/* Receives one message: checks its bytes, returns the fd it carried (-1 if none). */
static int recv_fd(int via, const char *want, const char *what)
{
	char buf[64], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(via, &mh, MSG_DONTWAIT);
	int fd = -1;

	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n)) {
		failf("%s: got %zd bytes (%.*s), want \"%s\"", what, n, n > 0 ? (int)n : 0, buf, want);
		return -1;
	}
	if (CMSG_FIRSTHDR(&mh) && CMSG_FIRSTHDR(&mh)->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
	return fd;
}

static void expect_bytes(int fd, const char *want, const char *what)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n))
		failf("%s: read %zd bytes (%.*s), want \"%s\"", what, n, n > 0 ? (int)n : 0, buf, want);
}

int main(void)
{
	int both[2], p[2], closed[2], q[2], ep, watched[2], inner[2], carrier[2], self[2], selfc[2], efd;
	int corrupt;

	prog_init();
	/* both ends of one pipe in flight */
	MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, both) == 0 && pipe(p) == 0);
	send_fd(both[0], "read-end", p[0]);
	send_fd(both[0], "write-end", p[1]);
	close(p[0]);
	close(p[1]);
	/* a pair whose sender is gone, a pipe end with data among its packets */
	MUST(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, closed) == 0 && pipe(q) == 0);
	MUST(write(q[1], "in-pipe", 7) == 7);
	send_fd(closed[1], "first", -1);
	send_fd(closed[1], "with-pipe", q[0]);
	send_fd(closed[1], "last", -1);
	close(closed[1]);
	close(q[0]);
	close(q[1]);
	/* an epoll in flight, watching a socket of ours */
	MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, watched) == 0);
	MUST((ep = epoll_create1(0)) >= 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1234567890abcdefULL };
	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, watched[1], &ev) == 0);
	send_fd(watched[0], "epoll-1", ep);
	send_fd(watched[0], "epoll-2", ep);
	MUST(send(watched[0], "ready", 5, 0) == 5);
	close(ep);
	/* a socket in flight with a queue and an fd in flight of its own */
	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, inner) == 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, carrier) == 0);
	MUST((efd = eventfd(7, 0)) >= 0);
	send_fd(inner[1], "deep", efd);
	close(efd);
	send_fd(carrier[0], "inner", inner[0]);
	close(inner[0]);
	/* a socket in flight in its own queue, reachable only through the carrier */
	MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, self) == 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, selfc) == 0);
	send_fd(self[1], "myself", self[0]);
	send_fd(selfc[0], "loop", self[0]);
	close(self[0]);
	close(self[1]);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		recv(closed[0], p, sizeof(p), MSG_DONTWAIT);

	int r = recv_fd(both[1], "read-end", "pipe read end in flight");
	int w = recv_fd(both[1], "write-end", "pipe write end in flight");
	if (r < 0 || w < 0)
		failf("the pipe ends in flight came back without their fds (%d, %d)", r, w);
	else if (write(w, "through", 7) != 7)
		failf("the pipe's write end in flight cannot be written");
	else
		expect_bytes(r, "through", "the pipe whose both ends were in flight");

	if (recv_fd(closed[0], "first", "closed pair, packet 1") >= 0)
		failf("closed pair, packet 1: an fd came with it");
	int qr = recv_fd(closed[0], "with-pipe", "closed pair, packet 2");
	if (qr < 0)
		failf("closed pair: the pipe end in flight is gone");
	else
		expect_bytes(qr, "in-pipe", "pipe in flight in the closed pair");
	recv_fd(closed[0], "last", "closed pair, packet 3");
	if (recv(closed[0], p, sizeof(p), MSG_DONTWAIT) != -1 || errno != EAGAIN)
		failf("closed pair: more than three packets, or not non-blocking");

	int e1 = recv_fd(watched[1], "epoll-1", "epoll in flight, 1");
	int e2 = recv_fd(watched[1], "epoll-2", "epoll in flight, 2");
	struct epoll_event got = { 0 };
	struct stat s1, s2;
	if (e1 < 0 || e2 < 0)
		failf("the epoll in flight came back without its fd");
	else if (fstat(e1, &s1) || fstat(e2, &s2) || s1.st_ino != s2.st_ino)
		failf("the epoll sent twice came back as two epolls");
	else if (epoll_wait(e1, &got, 1, 0) != 1 || got.data.u64 != 0x1234567890abcdefULL || !(got.events & EPOLLIN))
		failf("epoll in flight: no event for the watched socket (data %llx)", (unsigned long long)got.data.u64);
	char ready[8];
	if (recv(watched[1], ready, sizeof(ready), MSG_DONTWAIT) != 5)
		failf("the socket the epoll watches lost its datagram");
	else if (e1 >= 0 && epoll_wait(e1, &got, 1, 0) != 0)
		failf("epoll in flight: an event once the socket is drained");

	int in = recv_fd(carrier[1], "inner", "socket in flight");
	if (in < 0) {
		failf("the socket in flight is gone");
	} else {
		int ev2 = recv_fd(in, "deep", "the queue of the socket in flight");
		uint64_t v = 0;
		if (ev2 < 0 || read(ev2, &v, sizeof(v)) != sizeof(v) || v != 7)
			failf("the eventfd in flight inside the socket in flight: value %llu, want 7", (unsigned long long)v);
		if (write(in, "up", 2) != 2)
			failf("the socket in flight cannot be written");
		else
			expect_bytes(inner[1], "up", "the peer of the socket in flight");
	}

	int loop = recv_fd(selfc[1], "loop", "carrier of the self-queued socket");
	struct stat a, b;
	if (loop < 0) {
		failf("the socket in its own queue is gone");
	} else {
		int again = recv_fd(loop, "myself", "the queue of the self-queued socket");
		if (again < 0 || fstat(loop, &a) || fstat(again, &b) || a.st_ino != b.st_ino)
			failf("the socket in its own queue came back as another socket");
	}
	return prog_finish();
}
