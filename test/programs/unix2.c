/* Unix sockets, the less common shapes:
 *  - two datagram sockets bound to paths and connected to each other, a datagram queued each way;
 *  - a socket bound to a relative name (from the program's directory);
 *  - a listener whose socket file was unlinked: still bound, no file;
 *  - a client bound to a path of its own connected to a listener and accepted (both ends named);
 *  - a seqpacket listener with a connection waiting to be accepted;
 *  - a unix socket in flight (SCM_RIGHTS) whose peer the program holds.
 * SIGUSR2: read the queued datagram on the first socket first (FAIL). */
#include "common.h"
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static socklen_t mkaddr(struct sockaddr_un *a, const char *dir, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (dir)
		snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name);
	else
		snprintf(a->sun_path, sizeof(a->sun_path), "%s", name);
	return offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
}

static void expect_read(int fd, const char *want, const char *what)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n))
		failf("%s: read %zd bytes (%.*s), want \"%s\"", what, n, n > 0 ? (int)n : 0, buf, want);
}

static void expect_name(int fd, const char *want, const char *what)
{
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l) || strcmp(a.sun_path, want))
		failf("%s: bound to \"%s\", want \"%s\"", what, a.sun_path, want);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	struct sockaddr_un a1, a2, ar, al, ac, as;
	socklen_t l1 = mkaddr(&a1, dir, "d1.sock"), l2 = mkaddr(&a2, dir, "d2.sock");
	socklen_t lr = mkaddr(&ar, NULL, "relative.sock"), ll = mkaddr(&al, dir, "gone.sock");
	socklen_t lc = mkaddr(&ac, dir, "client.sock"), ls = mkaddr(&as, dir, "seq.sock");
	int corrupt;

	prog_init();
	int d1 = socket(AF_UNIX, SOCK_DGRAM, 0), d2 = socket(AF_UNIX, SOCK_DGRAM, 0);
	MUST(bind(d1, (struct sockaddr *)&a1, l1) == 0 && bind(d2, (struct sockaddr *)&a2, l2) == 0);
	MUST(connect(d1, (struct sockaddr *)&a2, l2) == 0 && connect(d2, (struct sockaddr *)&a1, l1) == 0);
	MUST(send(d1, "one-to-two", 10, 0) == 10 && send(d2, "two-to-one", 10, 0) == 10);
	MUST(chdir(dir) == 0);
	int rel = socket(AF_UNIX, SOCK_DGRAM, 0);
	MUST(bind(rel, (struct sockaddr *)&ar, lr) == 0);
	MUST(chdir("/") == 0);
	int gone = socket(AF_UNIX, SOCK_STREAM, 0);
	MUST(bind(gone, (struct sockaddr *)&al, ll) == 0 && listen(gone, 4) == 0 && unlink(al.sun_path) == 0);
	/* both ends named: the client bound to its own path */
	int lsn = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un am;
	socklen_t lm = mkaddr(&am, dir, "main.sock");
	MUST(bind(lsn, (struct sockaddr *)&am, lm) == 0 && listen(lsn, 4) == 0);
	int cli = socket(AF_UNIX, SOCK_STREAM, 0);
	MUST(bind(cli, (struct sockaddr *)&ac, lc) == 0 && connect(cli, (struct sockaddr *)&am, lm) == 0);
	int srv = accept(lsn, NULL, NULL);
	MUST(srv >= 0 && write(cli, "hi", 2) == 2);
	/* seqpacket listener, one connection waiting */
	int sl = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	MUST(bind(sl, (struct sockaddr *)&as, ls) == 0 && listen(sl, 4) == 0);
	int sc = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	MUST(connect(sc, (struct sockaddr *)&as, ls) == 0);
	/* a socket in flight, its peer kept */
	int inner[2], carrier[2];
	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, inner) == 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, carrier) == 0);
	MUST(write(inner[1], "inside", 6) == 6);
	{
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { "S", 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(ch), &inner[0], sizeof(int));
		MUST(sendmsg(carrier[0], &mh, 0) == 1);
	}
	close(inner[0]);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		recv(d2, am.sun_path, 10, 0);

	expect_read(d2, "one-to-two", "named datagram pair, 1 -> 2");
	expect_read(d1, "two-to-one", "named datagram pair, 2 -> 1");
	if (send(d1, "again", 5, 0) != 5)
		failf("named datagram pair: no longer connected");
	expect_read(d2, "again", "named datagram pair, after restore");
	expect_name(d1, a1.sun_path, "named datagram 1");
	expect_name(rel, "relative.sock", "relative name");
	struct stat st;
	char relpath[4096];
	snprintf(relpath, sizeof(relpath), "%s/relative.sock", dir);
	if (stat(relpath, &st) || !S_ISSOCK(st.st_mode))
		failf("the relative name's socket file is not in %s", dir);
	expect_name(gone, al.sun_path, "listener whose file was unlinked");
	if (stat(al.sun_path, &st) == 0)
		failf("the unlinked listener's file is back");
	expect_read(srv, "hi", "connection with both ends named");
	expect_name(cli, ac.sun_path, "named client");
	expect_name(srv, am.sun_path, "accepted socket");
	struct sockaddr_un peer;
	socklen_t pl = sizeof(peer);
	if (getpeername(srv, (struct sockaddr *)&peer, &pl) || strcmp(peer.sun_path, ac.sun_path))
		failf("accepted socket: peer \"%s\", want \"%s\"", peer.sun_path, ac.sun_path);
	int sa = accept(sl, NULL, NULL);
	if (sa < 0 || send(sc, "seq", 3, 0) != 3)
		failf("seqpacket: the waiting connection is gone");
	else
		expect_read(sa, "seq", "seqpacket connection, once accepted");
	{
		char b[4], cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { b, sizeof(b) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		int fd = -1;
		if (recvmsg(carrier[1], &mh, MSG_DONTWAIT) != 1 || b[0] != 'S' || !CMSG_FIRSTHDR(&mh))
			failf("socket in flight: the message or its fd is gone");
		else {
			memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
			expect_read(fd, "inside", "socket in flight");
			if (write(fd, "out", 3) != 3)
				failf("socket in flight: cannot write");
			expect_read(inner[1], "out", "the peer of the socket in flight");
		}
	}
	return prog_finish();
}
