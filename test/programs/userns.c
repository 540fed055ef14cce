/*
 * userns: a tree in a user namespace of its own, with uts, ipc, net and pid
 * namespaces made from inside it (so owned by it).
 *
 * The program is a launcher: it clones the tree's root with CLONE_NEWUSER |
 * CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET, writes the
 * root's maps from outside (uid 0 100000 65536, gid 0 200000 65536: not the
 * identity), and waits for it. The root (pid 1 there, the task to dump) sets up:
 *   - host name "cryo-userns";
 *   - a SysV message queue (key 0x5151, mode 0640, owner uid 7 gid 8 inside);
 *   - a child that becomes uid 1000 gid 1001 (groups 1001, 1002 unless
 *     setgroups is denied) inside, and waits;
 *   - files cryo makes again itself, with owners that differ in the two views:
 *     a deleted file (7:8 inside), a memfd (9:10) and a unix socket's name
 *     (5:6), in DIR/uns-files (made by the launcher, owned by the root).
 * argv[2] (mode; the directory is argv[1]):
 *   allow   - (default) as above;
 *   deny    - setgroups is denied (written before the gid_map): groups stay;
 *   nested  - the child makes a user namespace of its own (refused at dump).
 * On SIGUSR1 the root checks, in itself and through its child: its ids, its
 * maps (/proc/self/uid_map, gid_map, setgroups), that its uts, ipc, net and
 * pid namespaces are owned by its user namespace (NS_GET_USERNS), the host
 * name, the queue's owner, the three files' owners and contents, and that the child is uid 1000 and has no
 * capability; then it PASSes. SIGUSR2: the host name is changed first.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/nsfs.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static char stack[1 << 16] __attribute__((aligned(16)));
static int sync_pipe[2];
static const char *mode = "allow";
static int kid_pipe[2], kid_back[2];
static char files_dir[256];
static int ghost_fd = -1, memfd = -1, sock_fd = -1;

static void sock_path(struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/sock", files_dir);
}

/* Made by the root (uid 0 inside) with owners of their own, inside ids. */
static void make_owned_files(void)
{
	char p[300];
	struct sockaddr_un a;

	snprintf(p, sizeof(p), "%s/ghost", files_dir);
	ghost_fd = open(p, O_CREAT | O_RDWR | O_EXCL, 0640);
	MUST(ghost_fd >= 0 && write(ghost_fd, "ghost", 5) == 5);
	MUST(fchown(ghost_fd, 7, 8) == 0 && unlink(p) == 0);
	memfd = memfd_create("uns-memfd", 0);
	MUST(memfd >= 0 && write(memfd, "memfd", 5) == 5);
	MUST(fchown(memfd, 9, 10) == 0);
	sock_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	sock_path(&a);
	MUST(sock_fd >= 0 && bind(sock_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	MUST(chown(a.sun_path, 5, 6) == 0);
}

static void check_owner(const char *what, struct stat *st, uid_t u, gid_t g)
{
	if (st->st_uid != u || st->st_gid != g)
		failf("%s owned by %u:%u, want %u:%u", what, st->st_uid, st->st_gid, u, g);
}

static void check_owned_files(void)
{
	struct stat st;
	struct sockaddr_un a;
	char buf[8] = { 0 };

	if (fstat(ghost_fd, &st) || pread(ghost_fd, buf, 5, 0) != 5 || strcmp(buf, "ghost") || st.st_nlink != 0)
		failf("the deleted file: \"%s\", %lu links", buf, (unsigned long)st.st_nlink);
	check_owner("the deleted file", &st, 7, 8);
	memset(buf, 0, sizeof(buf));
	if (fstat(memfd, &st) || pread(memfd, buf, 5, 0) != 5 || strcmp(buf, "memfd"))
		failf("the memfd: \"%s\"", buf);
	check_owner("the memfd", &st, 9, 10);
	sock_path(&a);
	if (stat(a.sun_path, &st) || !S_ISSOCK(st.st_mode))
		failf("the socket's name %s: %s", a.sun_path, strerror(errno));
	check_owner("the socket's name", &st, 5, 6);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		fprintf(stderr, "write %s: %s\n", path, strerror(errno));
		exit(2);
	}
	close(fd);
}

static void read_file(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, out, len - 1);

	out[n < 0 ? 0 : n] = 0;
	if (fd >= 0)
		close(fd);
}

static ino_t ino_of_fd(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_ino;
}

static ino_t owner_of(const char *kind)
{
	char path[64];
	int fd, u;
	ino_t ino;

	snprintf(path, sizeof(path), "/proc/self/ns/%s", kind);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	u = ioctl(fd, NS_GET_USERNS);
	close(fd);
	if (u < 0)
		return 0;
	ino = ino_of_fd(u);
	close(u);
	return ino;
}

static ino_t ns_ino(const char *kind)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/self/ns/%s", kind);
	return stat(path, &st) ? 0 : st.st_ino;
}

/* The child: drops to uid 1000, then answers each byte on kid_pipe with a report line. */
static void kid(void)
{
	gid_t groups[2] = { 1001, 1002 };
	char c, line[512];
	uid_t r, e, s;
	gid_t gr, ge, gs;
	int n;

	if (!strcmp(mode, "nested")) {
		MUST(unshare(CLONE_NEWUSER) == 0);
	} else {
		if (strcmp(mode, "deny"))
			MUST(setgroups(2, groups) == 0);
		MUST(setresgid(1001, 1001, 1001) == 0);
		MUST(setresuid(1000, 1000, 1000) == 0);
	}
	MUST(write(kid_back[1], "k", 1) == 1);
	while (read(kid_pipe[0], &c, 1) == 1) {
		getresuid(&r, &e, &s);
		getresgid(&gr, &ge, &gs);
		n = getgroups(0, NULL);
		/* Without capabilities (uid 1000): EPERM. */
		errno = 0;
		int h = sethostname("kid", 3);
		snprintf(line, sizeof(line), "%u %u %u %u %u %u %d %d", r, e, s, gr, ge, gs, n, h < 0 ? errno : 0);
		MUST(write(kid_back[1], line, strlen(line) + 1) == (ssize_t)strlen(line) + 1);
	}
	_exit(0);
}

static void check_file(const char *path, const char *want)
{
	char got[256];

	read_file(path, got, sizeof(got));
	/* The maps are printed padded: compare their numbers only. */
	unsigned a, b, c, x, y, z;
	if (sscanf(want, "%u %u %u", &a, &b, &c) == 3) {
		if (sscanf(got, "%u %u %u", &x, &y, &z) != 3 || a != x || b != y || c != z)
			failf("%s is \"%s\", want \"%s\"", path, got, want);
		return;
	}
	if (strncmp(got, want, strlen(want)))
		failf("%s is \"%s\", want \"%s\"", path, got, want);
}

static int root_main(void *arg)
{
	char c, host[64], line[512];
	int q;
	ino_t user;
	pid_t k;
	struct msqid_ds ds;
	const char *kinds[] = { "uts", "ipc", "net", "pid" };

	(void)arg;
	close(sync_pipe[1]);
	MUST(read(sync_pipe[0], &c, 1) == 1); /* the maps are written */
	close(sync_pipe[0]);
	MUST(setresgid(0, 0, 0) == 0);
	MUST(setresuid(0, 0, 0) == 0);
	MUST(chdir("/") == 0);
	MUST(sethostname("cryo-userns", 11) == 0);
	q = msgget(0x5151, IPC_CREAT | 0640);
	MUST(q >= 0);
	MUST(msgctl(q, IPC_STAT, &ds) == 0);
	ds.msg_perm.uid = 7;
	ds.msg_perm.gid = 8;
	MUST(msgctl(q, IPC_SET, &ds) == 0);
	{
		/* A POSIX queue of its ipc namespace, owned by ids of its own, a message waiting. */
		struct mq_attr a = { .mq_maxmsg = 4, .mq_msgsize = 32 };
		mqd_t m = mq_open("/cryo-uns", O_CREAT | O_EXCL | O_RDWR, 0640, &a);

		MUST(m >= 0 && mq_send(m, "uns", 3, 3) == 0 && fchown(m, 7, 8) == 0);
		mq_close(m);
	}
	if (strcmp(mode, "nested"))
		make_owned_files();
	MUST(pipe(kid_pipe) == 0 && pipe(kid_back) == 0);
	k = fork();
	MUST(k >= 0);
	if (k == 0)
		kid();
	MUST(read(kid_back[0], &c, 1) == 1);
	prog_ready();

	if (wait_for_signal())
		sethostname("changed", 7);

	uid_t r, e, s;
	gid_t gr, ge, gs;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	if (r || e || s || gr || ge || gs)
		failf("root ids %u %u %u / %u %u %u, want 0", r, e, s, gr, ge, gs);
	if (getpid() != 1)
		failf("root is pid %d in its namespace, want 1", getpid());
	check_file("/proc/self/uid_map", "0 100000 65536");
	check_file("/proc/self/gid_map", "0 200000 65536");
	check_file("/proc/self/setgroups", strcmp(mode, "deny") ? "allow" : "deny");
	user = ns_ino("user");
	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		ino_t o = owner_of(kinds[i]);
		if (o != user)
			failf("%s namespace owned by user:[%lu], not its own user:[%lu]", kinds[i], (unsigned long)o, (unsigned long)user);
	}
	gethostname(host, sizeof(host));
	if (strcmp(host, "cryo-userns"))
		failf("host name \"%s\"", host);
	if (msgctl(q, IPC_STAT, &ds))
		failf("queue: %s", strerror(errno));
	else if (ds.msg_perm.uid != 7 || ds.msg_perm.gid != 8 || (ds.msg_perm.mode & 0777) != 0640 || ds.msg_perm.__key != 0x5151)
		failf("queue owner %u:%u mode %o key %x", ds.msg_perm.uid, ds.msg_perm.gid, ds.msg_perm.mode & 0777, ds.msg_perm.__key);
	{
		struct stat mst;
		char got[32] = "";
		unsigned prio = 0;
		mqd_t m = mq_open("/cryo-uns", O_RDWR | O_NONBLOCK);

		if (m < 0)
			failf("POSIX queue: %s", strerror(errno));
		else if (fstat(m, &mst) || mst.st_uid != 7 || mst.st_gid != 8 || (mst.st_mode & 0777) != 0640)
			failf("POSIX queue owner %u:%u mode %o", mst.st_uid, mst.st_gid, mst.st_mode & 0777);
		else if (mq_receive(m, got, sizeof(got), &prio) != 3 || memcmp(got, "uns", 3) || prio != 3)
			failf("POSIX queue message \"%s\" prio %u", got, prio);
	}
	if (strcmp(mode, "nested"))
		check_owned_files();
	MUST(write(kid_pipe[1], "?", 1) == 1);
	ssize_t n = read(kid_back[0], line, sizeof(line));
	if (n <= 0)
		failf("no report from the child");
	else {
		char want[128];
		snprintf(want, sizeof(want), "1000 1000 1000 1001 1001 1001 %d %d", strcmp(mode, "deny") ? 2 : 0, EPERM);
		if (strncmp(line, want, strlen(want)))
			failf("child reports \"%s\", want \"%s ...\"", line, want);
	}
	return prog_finish();
}

int main(int argc, char **argv)
{
	char path[64], c = 'x';
	pid_t root;
	int st;

	prog_init();
	if (argc > 2)
		mode = argv[2];
	/* The root (uid 100000 here) makes its files there: the test's directory is opened to it. */
	snprintf(files_dir, sizeof(files_dir), "%s/uns-files", argv[1]);
	MUST(chmod(argv[1], 0755) == 0 && mkdir(files_dir, 0755) == 0 && chown(files_dir, 100000, 200000) == 0);
	MUST(pipe(sync_pipe) == 0);
	root = clone(root_main, stack + sizeof(stack),
		     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD, NULL);
	MUST(root > 0);
	close(sync_pipe[0]);
	if (!strcmp(mode, "deny")) {
		snprintf(path, sizeof(path), "/proc/%d/setgroups", root);
		write_file(path, "deny");
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", root);
	write_file(path, "0 100000 65536");
	snprintf(path, sizeof(path), "/proc/%d/gid_map", root);
	write_file(path, "0 200000 65536");
	MUST(write(sync_pipe[1], &c, 1) == 1);
	close(sync_pipe[1]);
	/* Until the root ends (it is dumped and killed then; restored, it is cryo's). */
	while (waitpid(root, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}
