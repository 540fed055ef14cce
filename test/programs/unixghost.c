/* Unix sockets bound to names whose file is gone (zdtm sk-unix01,
 * del_standalone_un, deleted_unix_sock, fifo_upon_unix_socket), all under DIR/ghost:
 *  - in gone/, then removed with its files: a datagram socket others send to
 *    (a datagram queued), a listener with an accepted connection (data queued)
 *    and one waiting, a datagram pair both bound to one name;
 *  - shared.sock: a datagram socket whose file was unlinked, and a live one
 *    bound to the same path since, each with a client connected;
 *  - f.sock: a datagram socket whose file was replaced by a FIFO, open here;
 *  - r.sock: listener R1's file, renamed away, listener R2 bound to the path,
 *    R1's file renamed back over R2's: R2's name is gone, the path is R1's;
 *  - acc.sock: an accepted connection whose listener was closed and its file
 *    unlinked, with data queued;
 *  - rel.sock: bound by a relative name from DIR/ghost, unlinked, a client connected;
 *  - m.sock: socket M's file renamed to moved.sock, then socket O bound to m.sock;
 *    M's fd is the higher, so that it comes back after O.
 * Afterwards DIR/ghost holds exactly f.sock, m.sock, moved.sock, r.sock and shared.sock.
 * SIGUSR2: unlink r.sock first (FAIL). */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static char base[200];

static socklen_t addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (name[0] == '/' || !strncmp(name, "rel", 3))
		snprintf(a->sun_path, sizeof(a->sun_path), "%s", name);
	else
		snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", base, name);
	return offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
}

static int bound(int type, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = addr(&a, name);
	int fd = socket(AF_UNIX, type, 0);
	MUST(fd >= 0 && bind(fd, (struct sockaddr *)&a, l) == 0);
	return fd;
}

static int connected(int type, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = addr(&a, name);
	int fd = socket(AF_UNIX, type, 0);
	MUST(fd >= 0 && connect(fd, (struct sockaddr *)&a, l) == 0);
	return fd;
}

static void unlink_at(const char *name)
{
	struct sockaddr_un a;
	addr(&a, name);
	MUST(unlink(a.sun_path) == 0);
}

static void expect_name(int fd, const char *name, const char *what)
{
	struct sockaddr_un want, got;
	socklen_t l = sizeof(got);
	addr(&want, name);
	if (getsockname(fd, (struct sockaddr *)&got, &l) || strcmp(got.sun_path, want.sun_path))
		failf("%s: bound to \"%s\", want \"%s\"", what, got.sun_path, want.sun_path);
}

static void expect_recv(int fd, const char *want, const char *what)
{
	char buf[64];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n))
		failf("%s: got %zd bytes (%.*s), want \"%s\"", what, n, n > 0 ? (int)n : 0, buf, want);
}

static void say(int fd, const char *what, const char *text)
{
	if (send(fd, text, strlen(text), MSG_DONTWAIT) != (ssize_t)strlen(text))
		failf("%s: cannot send (%s)", what, strerror(errno));
}

static int gone(const char *name)
{
	struct sockaddr_un a;
	struct stat st;
	addr(&a, name);
	return lstat(a.sun_path, &st) != 0 && errno == ENOENT;
}

int main(int argc, char **argv)
{
	struct sockaddr_un a;
	char tmp[300], c = 0;
	int corrupt;

	prog_init();
	snprintf(base, sizeof(base), "%s/ghost", prog_dir(argc, argv));
	MUST(mkdir(base, 0755) == 0);
	snprintf(tmp, sizeof(tmp), "%s/gone", base);
	MUST(mkdir(tmp, 0755) == 0);
	/* in gone/, removed with its files */
	int x = bound(SOCK_DGRAM, "gone/x.sock"), y = connected(SOCK_DGRAM, "gone/x.sock");
	MUST(send(y, "to-x", 4, 0) == 4);
	int l = bound(SOCK_STREAM, "gone/l.sock");
	MUST(listen(l, 4) == 0);
	int c1 = connected(SOCK_STREAM, "gone/l.sock"), a1 = accept(l, NULL, NULL);
	int c2 = connected(SOCK_STREAM, "gone/l.sock");
	MUST(a1 >= 0 && write(c1, "req", 3) == 3);
	int p0 = bound(SOCK_DGRAM, "gone/p.sock");
	unlink_at("gone/p.sock");
	int p1 = bound(SOCK_DGRAM, "gone/p.sock");
	socklen_t pl = sizeof(a);
	MUST(getsockname(p1, (struct sockaddr *)&a, &pl) == 0);
	MUST(connect(p0, (struct sockaddr *)&a, pl) == 0); /* p0 -> p1, one way */
	MUST(send(p0, "p0-to-p1", 8, 0) == 8);
	unlink_at("gone/p.sock");
	unlink_at("gone/x.sock");
	unlink_at("gone/l.sock");
	MUST(rmdir(tmp) == 0);
	/* shared.sock: one unlinked, one live */
	int x2 = bound(SOCK_DGRAM, "shared.sock"), y2 = connected(SOCK_DGRAM, "shared.sock");
	unlink_at("shared.sock");
	int z = bound(SOCK_DGRAM, "shared.sock"), w = connected(SOCK_DGRAM, "shared.sock");
	/* f.sock: a FIFO over a socket's name */
	int s = bound(SOCK_DGRAM, "f.sock"), t = connected(SOCK_DGRAM, "f.sock");
	unlink_at("f.sock");
	addr(&a, "f.sock");
	MUST(mkfifo(a.sun_path, 0600) == 0);
	int fifo = open(a.sun_path, O_RDWR);
	MUST(fifo >= 0);
	/* r.sock: R1's file renamed away and back over R2's */
	int r1 = bound(SOCK_STREAM, "r.sock");
	MUST(listen(r1, 4) == 0);
	addr(&a, "r.sock");
	snprintf(tmp, sizeof(tmp), "%s/tmp", base);
	MUST(rename(a.sun_path, tmp) == 0);
	int r2 = bound(SOCK_STREAM, "r.sock");
	MUST(listen(r2, 4) == 0 && rename(tmp, a.sun_path) == 0);
	MUST(fcntl(r1, F_SETFL, O_NONBLOCK) == 0 && fcntl(r2, F_SETFL, O_NONBLOCK) == 0);
	/* acc.sock: the listener closed and unlinked */
	int l3 = bound(SOCK_STREAM, "acc.sock");
	MUST(listen(l3, 4) == 0);
	int c3 = connected(SOCK_STREAM, "acc.sock"), a3 = accept(l3, NULL, NULL);
	MUST(a3 >= 0 && write(c3, "hello", 5) == 5);
	close(l3);
	unlink_at("acc.sock");
	/* rel.sock: a relative name */
	MUST(chdir(base) == 0);
	int q = bound(SOCK_DGRAM, "rel.sock"), v = connected(SOCK_DGRAM, "rel.sock");
	MUST(chdir("/") == 0);
	snprintf(tmp, sizeof(tmp), "%s/rel.sock", base);
	MUST(unlink(tmp) == 0);
	/* m.sock: renamed away, the name bound again by another */
	int m = bound(SOCK_DGRAM, "m.sock"), mc = connected(SOCK_DGRAM, "m.sock");
	MUST(dup2(m, 200) == 200 && close(m) == 0);
	m = 200;
	char moved[300];
	addr(&a, "m.sock");
	snprintf(moved, sizeof(moved), "%s/moved.sock", base);
	MUST(rename(a.sun_path, moved) == 0);
	int o = bound(SOCK_DGRAM, "m.sock");

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		unlink_at("r.sock");

	/* gone/ */
	say(y, "client of a socket in a removed directory", "y-to-x");
	expect_recv(x, "to-x", "socket in a removed directory, queued");
	expect_recv(x, "y-to-x", "socket in a removed directory, after restore");
	expect_name(x, "gone/x.sock", "socket in a removed directory");
	expect_recv(a1, "req", "accepted connection of a removed listener");
	say(a1, "accepted connection of a removed listener", "resp");
	expect_recv(c1, "resp", "client of a removed listener");
	expect_name(l, "gone/l.sock", "listener in a removed directory");
	expect_name(a1, "gone/l.sock", "connection accepted by a removed listener");
	MUST(fcntl(l, F_SETFL, O_NONBLOCK) == 0);
	int a2 = accept(l, NULL, NULL);
	if (a2 < 0)
		failf("the connection waiting on a removed listener is gone");
	else {
		say(c2, "waiting client", "late");
		expect_recv(a2, "late", "the connection waiting on a removed listener");
	}
	expect_recv(p1, "p0-to-p1", "datagram socket named as another, queued");
	say(p0, "datagram socket named as another", "again");
	expect_recv(p1, "again", "datagram socket named as another, after restore");
	expect_name(p0, "gone/p.sock", "first of two sockets of one removed name");
	expect_name(p1, "gone/p.sock", "second of two sockets of one removed name");
	if (!gone("gone"))
		failf("the removed directory gone/ is back");
	/* shared.sock */
	say(y2, "client of the unlinked socket", "to-x2");
	expect_recv(x2, "to-x2", "the unlinked socket of a name bound again");
	say(w, "client of the live socket", "to-z");
	expect_recv(z, "to-z", "the live socket of a shared name");
	int n = connected(SOCK_DGRAM, "shared.sock");
	say(n, "a new client of shared.sock", "new");
	expect_recv(z, "new", "shared.sock reaches the live socket");
	if (recv(x2, &c, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		failf("the unlinked socket of shared.sock got what was sent to the path");
	/* f.sock */
	say(t, "client of the socket under a FIFO", "to-s");
	expect_recv(s, "to-s", "the socket whose name is a FIFO now");
	struct stat st;
	addr(&a, "f.sock");
	if (write(fifo, "f", 1) != 1 || read(fifo, &c, 1) != 1 || c != 'f')
		failf("the FIFO over the socket's name does not work");
	if (stat(a.sun_path, &st) || !S_ISFIFO(st.st_mode))
		failf("f.sock is no longer a FIFO");
	/* r.sock */
	int rc = socket(AF_UNIX, SOCK_STREAM, 0);
	socklen_t rl = addr(&a, "r.sock");
	if (connect(rc, (struct sockaddr *)&a, rl))
		failf("r.sock: cannot connect (%s)", strerror(errno));
	else if (accept(r1, NULL, NULL) < 0)
		failf("r.sock does not reach listener R1, whose file it is");
	if (accept(r2, NULL, NULL) >= 0 || errno != EAGAIN)
		failf("listener R2, whose name is gone, got a connection");
	expect_name(r2, "r.sock", "listener R2");
	/* acc.sock */
	expect_recv(a3, "hello", "accepted connection of a closed, unlinked listener");
	expect_name(a3, "acc.sock", "accepted connection of a closed, unlinked listener");
	/* rel.sock */
	say(v, "client of a relative name", "rel");
	expect_recv(q, "rel", "socket of an unlinked relative name");
	expect_name(q, "rel.sock", "socket of an unlinked relative name");

	/* m.sock */
	say(mc, "client of the renamed socket", "to-m");
	expect_recv(m, "to-m", "the socket whose file was renamed away");
	expect_name(m, "m.sock", "the socket whose file was renamed away");
	int on = connected(SOCK_DGRAM, "m.sock");
	say(on, "a new client of m.sock", "to-o");
	expect_recv(o, "to-o", "m.sock reaches the socket bound there since");

	/* what the directory holds */
	DIR *d = opendir(base);
	struct dirent *e;
	char names[512] = "";
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(names + strlen(names), sizeof(names) - strlen(names), " %s", e->d_name);
	if (d)
		closedir(d);
	/* readdir order is the filesystem's: check each name is there and the count */
	int count = 0;
	for (char *p = names; (p = strchr(p, ' ')); p++)
		count++;
	if (count != 5 || !strstr(names, " f.sock") || !strstr(names, " r.sock") || !strstr(names, " shared.sock") ||
	    !strstr(names, " m.sock") || !strstr(names, " moved.sock"))
		failf("%s holds%s, want f.sock m.sock moved.sock r.sock shared.sock", base, names);
	return prog_finish();
}
