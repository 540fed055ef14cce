/*
 * unixmnt: unix sockets bound to path names and an inotify watch, in a mount
 * namespace of the tree's own (with a pid namespace, as mntns.c).
 *
 * Before it unshares, the program binds a socket of the host's to DIR/t/host.sock
 * and closes it, and makes DIR/t/sub: the host's file and directory stay there,
 * under the tmpfs the tree mounts on DIR/t (a restore binding from the host's
 * side would find every directory it needs, and leave its files there). The child (pid 1 of the new pid namespace, the tree to dump) makes
 * its mounts private and, on that tmpfs:
 *   - listen.sock: a stream listener with an accepted connection (its client
 *     sent "hello" on it) and a client still waiting to be accepted;
 *   - host.sock: a datagram socket bound to the same path as the host's file,
 *     with "to-host-name" queued from a sender that connected to it by name;
 *   - sub/rel.sock: a seqpacket listener bound by a relative name from DIR/t/sub
 *     (its cwd);
 *   - gone.sock: a datagram socket whose file was unlinked, a client connected to it;
 *   - an inotify watch (IN_MODIFY) on DIR/t/watched, and a fanotify group with an
 *     inode mark (FAN_MODIFY) on it and a mount mark (FAN_CLOSE_WRITE) on the tmpfs;
 *   - om/l.sock: an accepted connection (data queued) of a closed listener, then
 *     a tmpfs mounted over om/ (zdtm overmount_sock): after restore the accepted
 *     end must not hold that tmpfs (it is unmounted in the check).
 * On SIGUSR1 it checks every name (getsockname, getpeername), the queued data,
 * that the names lead to the same sockets again (connect, sendto by name), that
 * gone.sock is still gone, and the watch (an event with its wd). SIGUSR2:
 * listen.sock is unlinked first (FAIL). argv[2] "outside": also a socket bound to
 * DIR/pre.sock before the namespace is made (refused). The host checks DIR/t on its side:
 * host.sock, the host's own file, untouched, and sub/, empty.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

static char base[200];
static int lsn, acc, cli, waiting, dg, dgsend, rel, gone, gonecli, ify, wd, oacc, ocli, fan;

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
	int s = socket(AF_UNIX, type, 0);

	MUST(s >= 0 && bind(s, (struct sockaddr *)&a, l) == 0);
	return s;
}

static int connected(int type, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = addr(&a, name);
	int s = socket(AF_UNIX, type, 0);

	MUST(s >= 0 && connect(s, (struct sockaddr *)&a, l) == 0);
	return s;
}

/* The socket's own name (or its peer's) is `name`. */
static void name_is(int s, int peer, const char *name, const char *what)
{
	struct sockaddr_un want, got;
	socklen_t l = sizeof(got);

	addr(&want, name);
	memset(&got, 0, sizeof(got));
	if ((peer ? getpeername(s, (struct sockaddr *)&got, &l) : getsockname(s, (struct sockaddr *)&got, &l)) < 0)
		failf("%s: %s", what, strerror(errno));
	else if (strcmp(got.sun_path, want.sun_path))
		failf("%s: %s \"%s\", not \"%s\"", what, peer ? "peer" : "name", got.sun_path, want.sun_path);
}

static void setup(const char *dir)
{
	char p[400];
	int f;

	MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	umount2("/dev/shm", MNT_DETACH); /* the host's second one, over the first */
	umount2("/dev/pts", MNT_DETACH);
	MUST(mount("unixmnt", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755") == 0);
	snprintf(p, sizeof(p), "%s/sub", base);
	MUST(mkdir(p, 0755) == 0);

	lsn = bound(SOCK_STREAM, "listen.sock");
	MUST(listen(lsn, 8) == 0);
	cli = connected(SOCK_STREAM, "listen.sock");
	MUST((acc = accept(lsn, NULL, NULL)) >= 0);
	MUST(write(cli, "hello", 5) == 5);
	waiting = connected(SOCK_STREAM, "listen.sock");

	dg = bound(SOCK_DGRAM, "host.sock");
	dgsend = connected(SOCK_DGRAM, "host.sock");
	MUST(send(dgsend, "to-host-name", 12, 0) == 12);

	snprintf(p, sizeof(p), "%s/sub", base);
	MUST(chdir(p) == 0);
	rel = bound(SOCK_SEQPACKET, "rel.sock");
	MUST(listen(rel, 4) == 0);

	gone = bound(SOCK_DGRAM, "gone.sock");
	gonecli = connected(SOCK_DGRAM, "gone.sock");
	snprintf(p, sizeof(p), "%s/gone.sock", base);
	MUST(unlink(p) == 0);

	snprintf(p, sizeof(p), "%s/watched", base);
	MUST((f = open(p, O_CREAT | O_WRONLY, 0644)) >= 0);
	close(f);
	MUST((ify = inotify_init1(IN_NONBLOCK)) >= 0);
	MUST((wd = inotify_add_watch(ify, p, IN_MODIFY)) >= 0);
	MUST((fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY)) >= 0);
	MUST(fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, p) == 0);
	MUST(fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, AT_FDCWD, base) == 0);

	snprintf(p, sizeof(p), "%s/om", base);
	MUST(mkdir(p, 0755) == 0);
	f = bound(SOCK_STREAM, "om/l.sock");
	MUST(listen(f, 1) == 0);
	ocli = connected(SOCK_STREAM, "om/l.sock");
	MUST((oacc = accept(f, NULL, NULL)) >= 0);
	close(f);
	MUST(write(ocli, "over", 4) == 4);
	MUST(mount("over", p, "tmpfs", 0, "size=64k") == 0);
	(void)dir;
}

static void check(int corrupt)
{
	char buf[64] = { 0 }, p[400];
	struct sockaddr_un a;
	struct stat st;
	int s, t;

	if (corrupt) {
		snprintf(p, sizeof(p), "%s/listen.sock", base);
		unlink(p);
	}
	/* The listener, its accepted connection and the one waiting. */
	name_is(lsn, 0, "listen.sock", "listener");
	name_is(acc, 0, "listen.sock", "accepted");
	name_is(cli, 1, "listen.sock", "client");
	if (read(acc, buf, sizeof(buf)) != 5 || memcmp(buf, "hello", 5))
		failf("accepted: read \"%s\"", buf);
	if (write(acc, "back", 4) != 4 || read(cli, buf, sizeof(buf)) != 4 || memcmp(buf, "back", 4))
		failf("accepted and client are not one connection");
	if ((t = accept(lsn, NULL, NULL)) < 0) {
		failf("the waiting client: %s", strerror(errno));
	} else {
		if (write(waiting, "w", 1) != 1 || read(t, buf, 1) != 1 || buf[0] != 'w')
			failf("the waiting client is not the accepted one");
		close(t);
	}
	/* The name leads to the listener again. */
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (connect(s, (struct sockaddr *)&a, addr(&a, "listen.sock")) < 0)
		failf("connect to listen.sock: %s", strerror(errno));
	else if ((t = accept(lsn, NULL, NULL)) < 0)
		failf("listen.sock leads elsewhere: %s", strerror(errno));
	else
		close(t);
	close(s);

	/* The datagram socket over the host's name: its queue, its sender, the name. */
	name_is(dg, 0, "host.sock", "datagram");
	name_is(dgsend, 1, "host.sock", "datagram sender");
	memset(buf, 0, sizeof(buf));
	if (recv(dg, buf, sizeof(buf), MSG_DONTWAIT) != 12 || memcmp(buf, "to-host-name", 12))
		failf("datagram: queued \"%s\"", buf);
	if (send(dgsend, "again", 5, 0) != 5 || recv(dg, buf, sizeof(buf), MSG_DONTWAIT) != 5 || memcmp(buf, "again", 5))
		failf("datagram sender: not connected to it");
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sendto(s, "by-name", 7, 0, (struct sockaddr *)&a, addr(&a, "host.sock")) != 7 ||
	    recv(dg, buf, sizeof(buf), MSG_DONTWAIT) != 7 || memcmp(buf, "by-name", 7))
		failf("host.sock does not lead to the datagram socket");
	close(s);

	/* The relative name, in its directory. */
	name_is(rel, 0, "rel.sock", "relative");
	snprintf(p, sizeof(p), "%s/sub", base);
	if (!getcwd(buf, sizeof(buf)) || strcmp(buf, p))
		failf("cwd is %s", buf);
	s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (connect(s, (struct sockaddr *)&a, addr(&a, "rel.sock")) < 0 || (t = accept(rel, NULL, NULL)) < 0)
		failf("rel.sock: %s", strerror(errno));
	else
		close(t);
	close(s);

	/* The deleted name: still gone, still reached by its client. */
	name_is(gone, 0, "gone.sock", "deleted");
	snprintf(p, sizeof(p), "%s/gone.sock", base);
	if (lstat(p, &st) == 0)
		failf("gone.sock is there again");
	memset(buf, 0, sizeof(buf));
	if (send(gonecli, "g", 1, 0) != 1 || recv(gone, buf, sizeof(buf), MSG_DONTWAIT) != 1 || buf[0] != 'g')
		failf("deleted: its client does not reach it");

	/* The connection under the overmount: its name, its data; the tmpfs over it is free to go. */
	name_is(oacc, 0, "om/l.sock", "overmounted");
	memset(buf, 0, sizeof(buf));
	if (read(oacc, buf, sizeof(buf)) != 4 || memcmp(buf, "over", 4))
		failf("overmounted: read \"%s\"", buf);
	snprintf(p, sizeof(p), "%s/om", base);
	if (umount(p) < 0)
		failf("cannot unmount om: %s", strerror(errno));

	/* The watch. */
	{
		char ev[sizeof(struct inotify_event) + 256] __attribute__((aligned(8)));
		struct inotify_event *e = (struct inotify_event *)ev;
		int f;

		char fev[4096] __attribute__((aligned(8)));
		struct fanotify_event_metadata *m;
		struct stat w, o;
		unsigned got = 0;
		ssize_t n;

		while (read(ify, ev, sizeof(ev)) > 0)
			; /* nothing is expected before the write */
		while ((n = read(fan, fev, sizeof(fev))) > 0)
			for (m = (void *)fev; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n))
				if (m->fd >= 0)
					close(m->fd);
		snprintf(p, sizeof(p), "%s/watched", base);
		f = open(p, O_WRONLY);
		if (f < 0 || write(f, "x", 1) != 1)
			failf("watched: %s", strerror(errno));
		if (f >= 0)
			close(f);
		if (read(ify, ev, sizeof(ev)) < (ssize_t)sizeof(*e) || e->wd != wd || !(e->mask & IN_MODIFY))
			failf("inotify: no IN_MODIFY event for wd %d", wd);
		/* fanotify: both marks, on the watched file of the tmpfs. */
		if (stat(p, &w))
			failf("watched: %s", strerror(errno));
		while ((n = read(fan, fev, sizeof(fev))) > 0) {
			for (m = (void *)fev; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
				if (m->fd >= 0 && !fstat(m->fd, &o) && o.st_ino == w.st_ino && o.st_dev == w.st_dev)
					got |= m->mask;
				if (m->fd >= 0)
					close(m->fd);
			}
		}
		if ((got & (FAN_MODIFY | FAN_CLOSE_WRITE)) != (FAN_MODIFY | FAN_CLOSE_WRITE))
			failf("fanotify: events 0x%x on watched, not FAN_MODIFY and FAN_CLOSE_WRITE", got);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un a;
	char p[400];
	pid_t kid;
	int status, h;

	prog_init();
	MUST(snprintf(base, sizeof(base), "%s/t", prog_dir(argc, argv)) < 80);
	mkdir(base, 0755);
	snprintf(p, sizeof(p), "%s/sub", base);
	mkdir(p, 0755);
	/* The host's own file at host.sock, which the tree's tmpfs hides. */
	MUST((h = socket(AF_UNIX, SOCK_DGRAM, 0)) >= 0 && bind(h, (struct sockaddr *)&a, addr(&a, "host.sock")) == 0);
	close(h);
	/* argv[2] "outside": a socket bound on the host's side before the namespace is
	 * made, kept open: its file is on none of the tree's mounts (refused at dump). */
	if (argc > 2 && !strcmp(argv[2], "outside")) {
		snprintf(p, sizeof(p), "%s/pre.sock", prog_dir(argc, argv));
		MUST((h = socket(AF_UNIX, SOCK_DGRAM, 0)) >= 0 && bind(h, (struct sockaddr *)&a, addr(&a, p)) == 0);
	}
	MUST(unshare(CLONE_NEWNS | CLONE_NEWPID) == 0);
	kid = fork();
	MUST(kid >= 0);
	if (kid) {
		printf("child %d\n", kid);
		fflush(stdout);
		while (waitpid(kid, &status, 0) < 0 && errno == EINTR)
			;
		return 0;
	}
	setup(prog_dir(argc, argv));
	prog_ready();
	check(wait_for_signal());
	return prog_finish();
}
