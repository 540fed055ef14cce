/*
 * mntns: a tree in mount and pid namespaces of its own, with mounts of its own.
 *
 * The program unshares CLONE_NEWNS|CLONE_NEWPID and forks; the child (pid 1
 * of the new pid namespace, the tree to dump) makes every mount private, then,
 * under DIR (argv[1]):
 *   - DIR/t: a tmpfs (size=2m,mode=751, nosuid,nodev) holding "data" (text,
 *     mode 0640), "link" -> "data", "sub/" (mode 0711) with "sub/f", and an
 *     empty file "hole" of 1 MiB (sparse);
 *   - DIR/b: a bind mount of DIR/t/sub, then made read-only, with an fd of
 *     DIR/b/gone, deleted before (a ghost on a read-only mount: its restore
 *     makes and removes files there, as zdtm ghost_on_rofs);
 *   - DIR/p: a proc of its pid namespace;
 *   - DIR/s1: a tmpfs made shared, and DIR/s2, a bind of it (its peer);
 *   - an fd open read-write on DIR/t/data at offset 3, and its cwd in DIR/t/sub;
 *   - a FIFO DIR/t/fifo, open read-write and write-only, with "queued" in it;
 *   - an fd of DIR/t/gone, deleted (a ghost), and one of DIR/t/kept, deleted but
 *     linked as DIR/t/kept2 (dumped with --link-remap).
 *   - /proc: a proc of its pid namespace in place of the host's, and an fd of
 *     /proc/N/mountinfo of a child N since killed (as zdtm remap_dead_pid: not
 *     shown deleted, the restore makes N exist for a moment in the new pid
 *     namespace to open it).
 * The host's overmounts of /dev/shm and /dev/pts are unmounted in the new
 * namespace (cryo cannot dump a tmpfs hidden under another mount yet).
 * It records the mountinfo lines of its mounts under DIR (mount point, type,
 * options, source, propagation type), and on SIGUSR1 checks they are the same,
 * with the files, modes, the symlink, the fd (its offset, its mount), the cwd,
 * the read-only bind, the peers' common group, and that DIR/p is its pid
 * namespace's proc. SIGUSR2: data is changed first.
 * The parent waits for the child; the child prints READY with its host pid.
 * argv[2] "ramfs": also a ramfs on DIR/r, which cryo does not carry (refused).
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>


static char dir[1024];
static char expect[8192];

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of /proc/self/mountinfo for mounts under dir, without ids and device numbers, sorted. */
static void mounts_under(char *out, size_t len)
{
	char lines[32][1600], *sorted[32];
	int nlines = 0, i;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	size_t used = 0;
	int group_s1 = -1, group_s2 = -2;

	out[0] = 0;
	if (!f) {
		snprintf(out, len, "no mountinfo: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char mp[1024], opts[512], rest[2048], fstype[64], src[256], sbopts[512];
		int id, parent, shared = 0;
		char *sep, *p;

		if (sscanf(line, "%d %d %*s %*s %1023s %511s %2047[^\n]", &id, &parent, mp, opts, rest) != 5)
			continue;
		if (strncmp(mp, dir, strlen(dir)) != 0 || mp[strlen(dir)] != '/')
			continue;
		sep = strstr(rest, "- ");
		if (!sep)
			continue;
		p = strstr(rest, "shared:");
		if (p && p < sep)
			shared = atoi(p + 7);
		if (sscanf(sep + 2, "%63s %255s %511s", fstype, src, sbopts) != 3)
			continue;
		if (!strcmp(mp + strlen(dir), "/s1"))
			group_s1 = shared;
		if (!strcmp(mp + strlen(dir), "/s2"))
			group_s2 = shared;
		if (nlines < 32)
			snprintf(lines[nlines++], sizeof(lines[0]), "%s %s %s %s %s %s\n", mp + strlen(dir), opts, fstype, src, sbopts,
				 shared ? "shared" : "private");
	}
	fclose(f);
	for (i = 0; i < nlines; i++)
		sorted[i] = lines[i];
	qsort(sorted, nlines, sizeof(sorted[0]), cmp_lines);
	for (i = 0; i < nlines; i++)
		used += snprintf(out + used, len - used, "%s", sorted[i]);
	snprintf(out + used, len - used, "s1 and s2 %s\n", group_s1 == group_s2 && group_s1 > 0 ? "peers" : "not peers");
}

static void path(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", dir, rel);
}

static int fd, fifo_rw, fifo_w, gone, kept, gone_ro, dead_mi;
static pid_t dead_kid;

static void setup(void)
{
	char p[1200], q[1200];
	int f;

	MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	umount2("/dev/shm", MNT_DETACH); /* the host's second one, over the first */
	umount2("/dev/pts", MNT_DETACH);
	MUST(umount2("/proc", MNT_DETACH) == 0);
	MUST(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0);
	dead_kid = fork();
	MUST(dead_kid >= 0);
	if (dead_kid == 0) {
		pause();
		_exit(0);
	}
	snprintf(p, sizeof(p), "/proc/%d/mountinfo", dead_kid);
	MUST((dead_mi = open(p, O_RDONLY)) >= 0);
	MUST(kill(dead_kid, SIGKILL) == 0 && waitpid(dead_kid, NULL, 0) == dead_kid);
	path(p, sizeof(p), "t");
	mkdir(p, 0755);
	MUST(mount("cryotest", p, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m,mode=751") == 0);
	path(p, sizeof(p), "t/data");
	MUST((f = open(p, O_CREAT | O_WRONLY, 0640)) >= 0);
	MUST(write(f, "hello, mount namespace\n", 23) == 23);
	close(f);
	MUST(chmod(p, 0640) == 0);
	path(p, sizeof(p), "t/link");
	MUST(symlink("data", p) == 0);
	path(p, sizeof(p), "t/sub");
	MUST(mkdir(p, 0711) == 0);
	MUST(chmod(p, 0711) == 0);
	path(p, sizeof(p), "t/sub/f");
	MUST((f = open(p, O_CREAT | O_WRONLY, 0600)) >= 0);
	MUST(write(f, "in sub\n", 7) == 7);
	close(f);
	path(p, sizeof(p), "t/hole");
	MUST((f = open(p, O_CREAT | O_WRONLY, 0644)) >= 0);
	MUST(ftruncate(f, 1 << 20) == 0);
	close(f);

	path(p, sizeof(p), "b");
	mkdir(p, 0755);
	path(q, sizeof(q), "t/sub");
	MUST(mount(q, p, NULL, MS_BIND, NULL) == 0);
	path(q, sizeof(q), "b/gone");
	/* Read-only: a mount with a writer open cannot be made read-only. */
	MUST((f = open(q, O_CREAT | O_WRONLY, 0600)) >= 0 && write(f, "ro ghost", 8) == 8 && close(f) == 0);
	MUST((gone_ro = open(q, O_RDONLY)) >= 0 && unlink(q) == 0);
	MUST(mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0);

	path(p, sizeof(p), "p");
	mkdir(p, 0755);
	MUST(mount("proc", p, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) == 0);

	path(p, sizeof(p), "s1");
	mkdir(p, 0755);
	MUST(mount("shr", p, "tmpfs", 0, "size=64k") == 0);
	MUST(mount(NULL, p, NULL, MS_SHARED, NULL) == 0);
	path(q, sizeof(q), "s2");
	mkdir(q, 0755);
	MUST(mount(p, q, NULL, MS_BIND, NULL) == 0);

	/* A tmpfs with its files hidden under another tmpfs on the same point (zdtm tempfs_overmounted). */
	path(p, sizeof(p), "h");
	mkdir(p, 0755);
	MUST(mount("under", p, "tmpfs", 0, "size=64k") == 0);
	path(q, sizeof(q), "h/under");
	MUST((f = open(q, O_CREAT | O_WRONLY, 0600)) >= 0 && write(f, "hidden", 6) == 6 && close(f) == 0);
	MUST(mount("over", p, "tmpfs", 0, "size=64k") == 0);
	path(q, sizeof(q), "h/over");
	MUST((f = open(q, O_CREAT | O_WRONLY, 0600)) >= 0 && write(f, "on top", 6) == 6 && close(f) == 0);

	path(p, sizeof(p), "t/data");
	MUST((fd = open(p, O_RDWR)) >= 0);
	MUST(lseek(fd, 3, SEEK_SET) == 3);
	path(p, sizeof(p), "t/fifo");
	MUST(mkfifo(p, 0620) == 0 && chmod(p, 0620) == 0);
	MUST((fifo_rw = open(p, O_RDWR | O_NONBLOCK)) >= 0);
	MUST((fifo_w = open(p, O_WRONLY)) >= 0);
	MUST(write(fifo_w, "queued", 6) == 6);
	path(p, sizeof(p), "t/gone");
	MUST((gone = open(p, O_CREAT | O_RDWR, 0600)) >= 0 && write(gone, "ghost data", 10) == 10 && unlink(p) == 0);
	path(p, sizeof(p), "t/kept");
	path(q, sizeof(q), "t/kept2");
	MUST((kept = open(p, O_CREAT | O_RDWR, 0600)) >= 0 && write(kept, "kept data", 9) == 9 && link(p, q) == 0 && unlink(p) == 0);
	path(p, sizeof(p), "t/sub");
	MUST(chdir(p) == 0);
	mounts_under(expect, sizeof(expect));
}

static void check_file(const char *rel, const char *want, mode_t mode)
{
	char p[1200], buf[256] = { 0 };
	struct stat st;
	int f;

	path(p, sizeof(p), rel);
	if (lstat(p, &st) < 0) {
		failf("%s: %s", rel, strerror(errno));
		return;
	}
	if ((st.st_mode & 07777) != mode)
		failf("%s: mode %o, not %o", rel, st.st_mode & 07777, mode);
	f = open(p, O_RDONLY);
	if (f < 0 || read(f, buf, sizeof(buf) - 1) < 0)
		failf("%s: cannot read it", rel);
	else if (strcmp(buf, want))
		failf("%s holds \"%s\"", rel, buf);
	if (f >= 0)
		close(f);
}

static void check(int corrupt)
{
	char now[8192], p[1200], buf[64] = { 0 };
	struct stat a, b;
	ssize_t n;

	if (corrupt) {
		path(p, sizeof(p), "t/data");
		int f = open(p, O_WRONLY);
		if (f >= 0 && write(f, "J", 1) != 1)
			failf("corrupt: write");
		close(f);
	}
	mounts_under(now, sizeof(now));
	if (strcmp(now, expect))
		failf("mounts differ: was\n%snow\n%s", expect, now);
	check_file("t/data", "hello, mount namespace\n", 0640);
	check_file("t/sub/f", "in sub\n", 0600);
	check_file("b/f", "in sub\n", 0600);
	path(p, sizeof(p), "t/sub");
	if (stat(p, &a) || (a.st_mode & 07777) != 0711)
		failf("t/sub: not mode 0711");
	path(p, sizeof(p), "t");
	if (stat(p, &a) || (a.st_mode & 07777) != 0751)
		failf("t: not mode 0751 (%o)", a.st_mode & 07777);
	path(p, sizeof(p), "t/link");
	n = readlink(p, buf, sizeof(buf) - 1);
	if (n != 4 || memcmp(buf, "data", 4))
		failf("t/link: not a symlink to data");
	path(p, sizeof(p), "t/hole");
	if (stat(p, &a) || a.st_size != 1 << 20 || a.st_blocks != 0)
		failf("t/hole: size %ld, %ld blocks", (long)a.st_size, (long)a.st_blocks);
	/* The fd: its offset, and on the tmpfs. */
	memset(buf, 0, sizeof(buf));
	if (read(fd, buf, 5) != 5 || memcmp(buf, "lo, m", 5))
		failf("fd: read \"%s\" at offset 3", buf);
	path(p, sizeof(p), "t");
	if (fstat(fd, &a) || stat(p, &b) || a.st_dev != b.st_dev)
		failf("fd: not on the tmpfs");
	if (!getcwd(p, sizeof(p)) || strcmp(p + strlen(dir), "/t/sub") || strncmp(p, dir, strlen(dir)))
		failf("cwd is %s", p);
	/* The FIFO: the same one on the tmpfs, its data, both fds on it, each with its mode. */
	path(p, sizeof(p), "t/fifo");
	if (fstat(fifo_rw, &a) || stat(p, &b) || !S_ISFIFO(a.st_mode) || a.st_ino != b.st_ino || a.st_dev != b.st_dev || (b.st_mode & 07777) != 0620)
		failf("fifo: the fd is not on t/fifo (mode %o)", b.st_mode & 07777);
	if ((fcntl(fifo_rw, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDWR | O_NONBLOCK) || (fcntl(fifo_w, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != O_WRONLY)
		failf("fifo: flags %o and %o", fcntl(fifo_rw, F_GETFL), fcntl(fifo_w, F_GETFL));
	memset(buf, 0, sizeof(buf));
	if (read(fifo_rw, buf, sizeof(buf)) != 6 || memcmp(buf, "queued", 6))
		failf("fifo: read \"%s\"", buf);
	if (write(fifo_w, "x", 1) != 1 || read(fifo_rw, buf, 1) != 1 || buf[0] != 'x')
		failf("fifo: the two fds are not one pipe");
	/* The deleted files: their data, still deleted, on the tmpfs; the linked one is t/kept2's inode. */
	path(p, sizeof(p), "t");
	memset(buf, 0, sizeof(buf));
	if (pread(gone, buf, sizeof(buf), 0) != 10 || memcmp(buf, "ghost data", 10) || fstat(gone, &a) || a.st_nlink != 0 || stat(p, &b) || a.st_dev != b.st_dev)
		failf("t/gone: \"%s\", %ld links", buf, (long)a.st_nlink);
	/* The dead child's mountinfo: still that file, and its pid free again. */
	char want[1200], link[1200] = { 0 };
	snprintf(want, sizeof(want), "/proc/%d/mountinfo", dead_kid);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", dead_mi);
	memset(link, 0, sizeof(link));
	if (readlink(p, link, sizeof(link) - 1) < 0 || strncmp(link, want, strlen(want)) || fcntl(dead_mi, F_GETFD) < 0)
		failf("the dead child's mountinfo: fd at \"%s\", want %s", link, want);
	if (kill(dead_kid, 0) == 0 || errno != ESRCH)
		failf("pid %d is taken", dead_kid);
	/* The one on the read-only bind: its data, still deleted, opened through that mount. */
	memset(link, 0, sizeof(link));
	memset(buf, 0, sizeof(buf));
	path(want, sizeof(want) - 12, "b/gone");
	strcat(want, " (deleted)");
	snprintf(p, sizeof(p), "/proc/self/fd/%d", gone_ro);
	if (pread(gone_ro, buf, sizeof(buf), 0) != 8 || memcmp(buf, "ro ghost", 8) || fstat(gone_ro, &a) || a.st_nlink != 0 ||
	    readlink(p, link, sizeof(link) - 1) < 0 || strcmp(link, want))
		failf("b/gone: \"%s\", %ld links, fd at %s", buf, (long)a.st_nlink, link);
	path(p, sizeof(p), "t/kept2");
	memset(buf, 0, sizeof(buf));
	if (pread(kept, buf, sizeof(buf), 0) != 9 || memcmp(buf, "kept data", 9) || fstat(kept, &a) || stat(p, &b) || a.st_ino != b.st_ino || a.st_nlink != 1)
		failf("t/kept: \"%s\", %ld links, not t/kept2's inode", buf, (long)a.st_nlink);
	path(p, sizeof(p), "t/kept");
	if (access(p, F_OK) == 0)
		failf("t/kept is there again");
	path(p, sizeof(p), "b/new");
	if (open(p, O_CREAT | O_WRONLY, 0600) >= 0 || errno != EROFS)
		failf("b: writable (%s)", strerror(errno));
	path(p, sizeof(p), "p/self");
	memset(buf, 0, sizeof(buf));
	if (readlink(p, buf, sizeof(buf) - 1) < 0 || strcmp(buf, "1"))
		failf("p/self is \"%s\", not 1", buf);
	/* The peers share: a mount under one shows under the other. */
	path(p, sizeof(p), "s1/x");
	mkdir(p, 0755);
	if (mount("x", p, "tmpfs", 0, "size=4k"))
		failf("mount on s1/x: %s", strerror(errno));
	path(p, sizeof(p), "s2/x");
	{
		struct stat x, y;
		char q[1200];
		path(q, sizeof(q), "s1/x");
		if (stat(q, &x) || stat(p, &y) || x.st_dev != y.st_dev)
			failf("s2/x is not the mount made on s1/x: not peers");
	}
	/* The hidden tmpfs: the top one holds its file; under it, once it is gone, the hidden one its own. */
	check_file("h/over", "on top", 0600);
	path(p, sizeof(p), "h");
	if (umount2(p, 0))
		failf("umount h: %s", strerror(errno));
	check_file("h/under", "hidden", 0600);
}

int main(int argc, char **argv)
{
	pid_t kid;
	int status;

	prog_init();
	snprintf(dir, sizeof(dir), "%s", prog_dir(argc, argv));
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
	setup();
	if (argc > 2 && !strcmp(argv[2], "ramfs")) {
		char p[1200];

		path(p, sizeof(p), "r");
		mkdir(p, 0755);
		MUST(mount("ram", p, "ramfs", 0, NULL) == 0);
	}
	if (argc > 2 && !strcmp(argv[2], "overmount")) {
		/* A file open on a mount hidden since under another: its path leads to something else. */
		char p[1200];

		path(p, sizeof(p), "s1/under");
		MUST(open(p, O_CREAT | O_RDWR, 0600) >= 0);
		path(p, sizeof(p), "s1");
		MUST(mount("top", p, "tmpfs", 0, "size=4k") == 0);
	}
	prog_ready();
	check(wait_for_signal());
	return prog_finish();
}
