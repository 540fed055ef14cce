/* Unix sockets of every type and state, each with unread data:
 *  - a stream socketpair with bytes queued both ways, one end shut down for writing;
 *  - a datagram socketpair with three datagrams of different sizes (boundaries);
 *  - a seqpacket socketpair with two records;
 *  - a listener bound to a path (mode 0640), one accepted connection with data
 *    queued both ways, one connection not yet accepted;
 *  - a datagram server on an abstract name with a client connected to it, two
 *    datagrams queued;
 *  - a pipe read end in flight in a socket queue (SCM_RIGHTS), with data in the pipe;
 *  - a stream socket whose peer was closed with data still unread (then EOF);
 *  - options (SO_SNDBUF, SO_RCVTIMEO, SO_PASSCRED, SO_BUF_LOCK) and O_NONBLOCK;
 *  - a child echoing on its end of a pair, blocked in read() at dump time.
 * SIGUSR2: read one of the queued datagrams first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#define RCVBUF_LOCK 2 /* SOCK_RCVBUF_LOCK */

static socklen_t mkaddr(struct sockaddr_un *a, const char *name, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (abstract) {
		a->sun_path[0] = 0;
		strcpy(a->sun_path + 1, name);
		return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
	}
	strcpy(a->sun_path, name);
	return sizeof(*a);
}

static void expect_read(int fd, const char *want, const char *what)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n))
		failf("%s: read %zd bytes (%.*s), want \"%s\"", what, n, n > 0 ? (int)n : 0, buf, want);
}

int main(int argc, char **argv)
{
	int st[2], dg[2], sp[2], echo[2], gone[2], carrier[2], p[2];
	int corrupt;
	char path[4096];

	prog_init();
	/* stream pair */
	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, st) == 0);
	MUST(write(st[0], "to-one", 6) == 6);
	MUST(write(st[1], "to-zero", 7) == 7);
	MUST(shutdown(st[1], SHUT_WR) == 0);
	/* datagram pair */
	MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) == 0);
	MUST(send(dg[0], "aaaaaaaaaa", 10, 0) == 10);
	MUST(send(dg[0], "bbbbbbbbbbbbbbbbbbbb", 20, 0) == 20);
	MUST(send(dg[0], "cccccccccccccccccccccccccccccc", 30, 0) == 30);
	/* seqpacket pair */
	MUST(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) == 0);
	MUST(send(sp[1], "rec-1", 5, 0) == 5);
	MUST(send(sp[1], "record-2", 8, 0) == 8);
	/* a listener on a path, an accepted connection and a pending one */
	struct sockaddr_un la, aa, got;
	snprintf(path, sizeof(path), "%s/listen.sock", prog_dir(argc, argv));
	socklen_t llen = mkaddr(&la, path, 0);
	int lsn = socket(AF_UNIX, SOCK_STREAM, 0);
	MUST(lsn >= 0 && bind(lsn, (struct sockaddr *)&la, llen) == 0 && listen(lsn, 8) == 0);
	MUST(chmod(path, 0640) == 0);
	int cli = socket(AF_UNIX, SOCK_STREAM, 0);
	MUST(connect(cli, (struct sockaddr *)&la, llen) == 0);
	int srv = accept(lsn, NULL, NULL);
	MUST(srv >= 0);
	MUST(write(cli, "request", 7) == 7);
	MUST(write(srv, "response", 8) == 8);
	int pending = socket(AF_UNIX, SOCK_STREAM, 0);
	MUST(connect(pending, (struct sockaddr *)&la, llen) == 0);
	/* abstract datagram server and a connected client */
	char abs_name[64];
	snprintf(abs_name, sizeof(abs_name), "cryo-test-%d", getpid());
	socklen_t alen = mkaddr(&aa, abs_name, 1);
	int dsrv = socket(AF_UNIX, SOCK_DGRAM, 0);
	MUST(dsrv >= 0 && bind(dsrv, (struct sockaddr *)&aa, alen) == 0);
	int dcli = socket(AF_UNIX, SOCK_DGRAM, 0);
	MUST(connect(dcli, (struct sockaddr *)&aa, alen) == 0);
	MUST(send(dcli, "dgram-one", 9, 0) == 9);
	MUST(send(dcli, "dgram-two!", 10, 0) == 10);
	/* a pipe in flight */
	MUST(pipe(p) == 0 && write(p[1], "through-the-pipe", 16) == 16);
	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, carrier) == 0);
	{
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { "F", 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(ch), &p[0], sizeof(int));
		MUST(sendmsg(carrier[0], &mh, 0) == 1);
	}
	close(p[0]);
	/* peer gone, data left */
	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, gone) == 0);
	MUST(write(gone[1], "last words", 10) == 10);
	close(gone[1]);
	/* options */
	int sndbuf = 65536, one = 1;
	struct timeval tmo = { 3, 250000 };
	MUST(setsockopt(dcli, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	MUST(setsockopt(dsrv, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) == 0);
	socklen_t tl = sizeof(tmo);
	MUST(getsockopt(dsrv, SOL_SOCKET, SO_RCVTIMEO, &tmo, &tl) == 0); /* as the kernel rounded it */
	/* SO_PASSCRED on a socket with nothing queued (the credentials of queued messages cannot be put back) */
	int pc = socket(AF_UNIX, SOCK_DGRAM, 0);
	MUST(pc >= 0 && setsockopt(pc, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0);
	int rcvlock = RCVBUF_LOCK;
	MUST(setsockopt(dsrv, SOL_SOCKET, SO_BUF_LOCK, &rcvlock, sizeof(rcvlock)) == 0);
	MUST(fcntl(srv, F_SETFL, O_NONBLOCK) == 0);
	/* an echoing child */
	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, echo) == 0);
	pid_t child = fork();
	MUST(child >= 0);
	if (child == 0) {
		char b[64];
		close(echo[0]);
		for (;;) {
			ssize_t n = read(echo[1], b, sizeof(b));
			if (n <= 0)
				_exit(0);
			b[0] = 'P';
			if (write(echo[1], b, n) != n)
				_exit(1);
		}
	}
	close(echo[1]);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		recv(dg[1], path, sizeof(path), 0);

	expect_read(st[1], "to-one", "stream pair, end 1");
	expect_read(st[0], "to-zero", "stream pair, end 0");
	if (recv(st[0], path, 1, MSG_DONTWAIT) != 0)
		failf("stream pair: end 0 does not see the shutdown of end 1");
	if (send(st[1], "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		failf("stream pair: end 1 can still write after SHUT_WR");
	expect_read(dg[1], "aaaaaaaaaa", "datagram 1");
	expect_read(dg[1], "bbbbbbbbbbbbbbbbbbbb", "datagram 2");
	expect_read(dg[1], "cccccccccccccccccccccccccccccc", "datagram 3");
	expect_read(sp[0], "rec-1", "seqpacket record 1");
	expect_read(sp[0], "record-2", "seqpacket record 2");
	expect_read(srv, "request", "accepted connection, server side");
	expect_read(cli, "response", "accepted connection, client side");
	if (!(fcntl(srv, F_GETFL) & O_NONBLOCK))
		failf("accepted socket lost O_NONBLOCK");
	socklen_t glen = sizeof(got);
	if (getsockname(lsn, (struct sockaddr *)&got, &glen) || strcmp(got.sun_path, path))
		failf("listener: bound to \"%s\", want \"%s\"", got.sun_path, path);
	struct stat sst;
	if (stat(path, &sst) || !S_ISSOCK(sst.st_mode) || (sst.st_mode & 0777) != 0640)
		failf("listener: socket file mode %o", sst.st_mode);
	int acc = accept(lsn, NULL, NULL);
	if (acc < 0)
		failf("the pending connection cannot be accepted: %s", strerror(errno));
	else if (write(pending, "late", 4) != 4)
		failf("the pending connection cannot write");
	else
		expect_read(acc, "late", "the pending connection, once accepted");
	int again = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(again, (struct sockaddr *)&la, llen))
		failf("a new client cannot connect to the listener: %s", strerror(errno));
	expect_read(dsrv, "dgram-one", "abstract datagram 1");
	expect_read(dsrv, "dgram-two!", "abstract datagram 2");
	if (send(dcli, "more", 4, 0) != 4)
		failf("the datagram client is no longer connected");
	expect_read(dsrv, "more", "abstract datagram 3");
	glen = sizeof(got);
	if (getsockname(dsrv, (struct sockaddr *)&got, &glen) || glen != alen || memcmp(&got, &aa, alen))
		failf("the abstract name changed");
	{
		char b[4], cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { b, sizeof(b) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		int fd = -1;
		if (recvmsg(carrier[1], &mh, MSG_DONTWAIT) != 1 || b[0] != 'F')
			failf("in-flight fd: the carrier message is gone");
		else if (!CMSG_FIRSTHDR(&mh) || CMSG_FIRSTHDR(&mh)->cmsg_type != SCM_RIGHTS)
			failf("in-flight fd: no SCM_RIGHTS came with it");
		else {
			memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
			char pb[32];
			if (read(fd, pb, sizeof(pb)) != 16 || memcmp(pb, "through-the-pipe", 16))
				failf("in-flight fd: the pipe's data is not there");
			if (write(p[1], "x", 1) != 1 || read(fd, pb, 1) != 1)
				failf("in-flight fd: it is not the same pipe");
		}
	}
	expect_read(gone[0], "last words", "socket whose peer closed");
	if (recv(gone[0], path, 1, MSG_DONTWAIT) != 0)
		failf("socket whose peer closed: no EOF after the data");
	int v = 0;
	socklen_t vl = sizeof(v);
	getsockopt(dcli, SOL_SOCKET, SO_SNDBUF, &v, &vl);
	if (v != 2 * sndbuf)
		failf("SO_SNDBUF is %d, want %d", v, 2 * sndbuf);
	struct timeval t2;
	vl = sizeof(t2);
	if (getsockopt(dsrv, SOL_SOCKET, SO_RCVTIMEO, &t2, &vl) || t2.tv_sec != tmo.tv_sec || t2.tv_usec != tmo.tv_usec)
		failf("SO_RCVTIMEO is %ld.%06ld, want %ld.%06ld", (long)t2.tv_sec, (long)t2.tv_usec, (long)tmo.tv_sec, (long)tmo.tv_usec);
	vl = sizeof(v);
	if (getsockopt(pc, SOL_SOCKET, SO_PASSCRED, &v, &vl) || v != 1)
		failf("SO_PASSCRED is off");
	vl = sizeof(v);
	if (getsockopt(dsrv, SOL_SOCKET, SO_BUF_LOCK, &v, &vl) || v != RCVBUF_LOCK)
		failf("SO_BUF_LOCK is %d, want %d (receive buffer locked)", v, RCVBUF_LOCK);
	vl = sizeof(v);
	if (getsockopt(dcli, SOL_SOCKET, SO_BUF_LOCK, &v, &vl) || v != 1)
		failf("SO_BUF_LOCK of the client is %d, want 1 (SO_SNDBUF locks the send buffer)", v);
	char eb[16];
	if (write(echo[0], "ping", 4) != 4 || read(echo[0], eb, sizeof(eb)) != 4 || memcmp(eb, "Ping", 4))
		failf("the echoing child does not answer");
	close(echo[0]);
	int wst;
	if (waitpid(child, &wst, 0) != child || !WIFEXITED(wst) || WEXITSTATUS(wst))
		failf("the echoing child ended with status %#x", wst);
	return prog_finish();
}
