/*
 * files: regular-file descriptors come back with the same numbers, positions,
 * status flags, fd flags and sharing.
 *
 *   fd A    a.dat  O_RDWR, position 1234
 *   fd 100  dup2(A): shares A's open file description (offset moves together)
 *   fd 200  a.dat  opened again O_RDONLY|O_NONBLOCK at 4000: its own description
 *   fd B    b.log  O_WRONLY|O_APPEND
 *   fd C    c.dat  O_RDONLY, position 100
 *   fd D    d.dat  O_RDWR|O_CLOEXEC (FD_CLOEXEC must stay set)
 *   fd N    /dev/null O_RDWR
 *   fd T    the scratch directory, O_RDONLY|O_DIRECTORY
 * and 0/1/2 as the harness left them. Every open fd 0..1023 is snapshotted
 * (F_GETFL, F_GETFD, offset, dev/ino/mode/rdev, /proc/self/fd link) before
 * READY and compared after; then each one is used.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define MAXFD 1024

struct fdsnap {
	int open;
	int fl, fdfl;
	off_t pos;
	dev_t dev, rdev;
	ino_t ino;
	mode_t mode;
	char link[512];
};

static struct fdsnap before[MAXFD], after[MAXFD];

static void snapshot(struct fdsnap *s)
{
	for (int fd = 0; fd < MAXFD; fd++) {
		struct stat st;
		char proc[64];
		ssize_t n;

		memset(&s[fd], 0, sizeof(s[fd]));
		s[fd].fdfl = fcntl(fd, F_GETFD);
		if (s[fd].fdfl < 0)
			continue;
		s[fd].open = 1;
		s[fd].fl = fcntl(fd, F_GETFL);
		s[fd].pos = lseek(fd, 0, SEEK_CUR);
		if (fstat(fd, &st) == 0) {
			s[fd].dev = st.st_dev;
			s[fd].ino = st.st_ino;
			s[fd].mode = st.st_mode;
			s[fd].rdev = st.st_rdev;
		}
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		n = readlink(proc, s[fd].link, sizeof(s[fd].link) - 1);
		s[fd].link[n > 0 ? n : 0] = 0;
	}
}

static void compare(void)
{
	for (int fd = 0; fd < MAXFD; fd++) {
		const struct fdsnap *a = &before[fd], *b = &after[fd];

		if (a->open != b->open) {
			failf("fd %d is %s, was %s (%s)", fd, b->open ? "open" : "closed",
			      a->open ? "open" : "closed", a->open ? a->link : b->link);
			continue;
		}
		if (!a->open)
			continue;
		if (a->fl != b->fl)
			failf("fd %d F_GETFL is %#o, was %#o", fd, b->fl, a->fl);
		if (a->fdfl != b->fdfl)
			failf("fd %d F_GETFD is %#x, was %#x", fd, b->fdfl, a->fdfl);
		/* An O_APPEND offset moves with every write (READY itself went to
		 * fds 1 and 2 after the snapshot): skip it. */
		if (a->pos != b->pos && !(a->fl & O_APPEND))
			failf("fd %d position is %lld, was %lld", fd, (long long)b->pos, (long long)a->pos);
		if (a->dev != b->dev || a->ino != b->ino)
			failf("fd %d is inode %u:%u/%llu, was %u:%u/%llu", fd, major(b->dev),
			      minor(b->dev), (unsigned long long)b->ino, major(a->dev), minor(a->dev),
			      (unsigned long long)a->ino);
		if (a->mode != b->mode || a->rdev != b->rdev)
			failf("fd %d mode/rdev is %#o/%#llx, was %#o/%#llx", fd, b->mode,
			      (unsigned long long)b->rdev, a->mode, (unsigned long long)a->rdev);
		if (strcmp(a->link, b->link))
			failf("fd %d points to %s, was %s", fd, b->link, a->link);
	}
}

static unsigned char content(size_t i)
{
	return (unsigned char)(i * 131 + 7 + (i >> 8));
}

static int open_at(const char *dir, const char *name, int flags)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, flags, 0644);
	MUST(fd >= 0);
	return fd;
}

static void expect_content(const char *what, const unsigned char *buf, size_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != content(off + i)) {
			failf("%s: byte at %zu is %#x, want %#x", what, off + i, buf[i], content(off + i));
			return;
		}
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	static unsigned char data[8192], buf[8192];
	int fa, fb, fc, fd, fn, ft, f200, i;
	struct stat st_dir, st;
	char path[512];
	ssize_t n;

	prog_init();
	for (i = 0; i < (int)sizeof(data); i++)
		data[i] = content(i);

	fa = open_at(dir, "a.dat", O_RDWR | O_CREAT | O_TRUNC);
	MUST(write(fa, data, sizeof(data)) == (ssize_t)sizeof(data));
	MUST(lseek(fa, 1234, SEEK_SET) == 1234);
	MUST(dup2(fa, 100) == 100);
	f200 = open_at(dir, "a.dat", O_RDONLY | O_NONBLOCK);
	MUST(dup2(f200, 200) == 200);
	close(f200);
	MUST(lseek(200, 4000, SEEK_SET) == 4000);

	fb = open_at(dir, "b.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
	MUST(write(fb, "first\n", 6) == 6);

	fc = open_at(dir, "c.dat", O_WRONLY | O_CREAT | O_TRUNC);
	MUST(write(fc, data, sizeof(data)) == (ssize_t)sizeof(data));
	close(fc);
	fc = open_at(dir, "c.dat", O_RDONLY);
	MUST(lseek(fc, 100, SEEK_SET) == 100);

	fd = open_at(dir, "d.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC);
	MUST(write(fd, "dddd", 4) == 4);

	fn = open("/dev/null", O_RDWR);
	MUST(fn >= 0);
	ft = open(dir, O_RDONLY | O_DIRECTORY);
	MUST(ft >= 0);
	MUST(fstat(ft, &st_dir) == 0);

	snapshot(before);
	prog_ready();

	if (wait_for_signal()) {
		lseek(fa, 5, SEEK_SET);
		fcntl(fd, F_SETFD, 0);
	}

	snapshot(after);
	compare();

	/* A: read at 1234, and fd 100 shares the offset. */
	n = read(fa, buf, 100);
	if (n != 100)
		failf("read fd A: %zd (%s)", n, n < 0 ? strerror(errno) : "short");
	else
		expect_content("fd A read at 1234", buf, 1234, 100);
	if (lseek(100, 0, SEEK_CUR) != 1334)
		failf("fd 100 offset is %lld after reading 100 bytes on fd A, want 1334 (shared)",
		      (long long)lseek(100, 0, SEEK_CUR));
	lseek(100, 77, SEEK_SET);
	if (lseek(fa, 0, SEEK_CUR) != 77)
		failf("fd A offset did not follow lseek on fd 100");
	if (write(fa, "XYZ", 3) != 3)
		failf("write fd A: %s", strerror(errno));
	/* fd 200: same file, separate description. */
	if (pread(200, buf, 3, 77) != 3 || memcmp(buf, "XYZ", 3))
		failf("fd 200 does not see fd A's write");
	if (lseek(200, 0, SEEK_CUR) != 4000)
		failf("fd 200 offset moved with fd A: not a separate description");
	n = read(200, buf, 10);
	if (n != 10)
		failf("read fd 200: %zd", n);
	else
		expect_content("fd 200 read at 4000", buf, 4000, 10);

	/* B appends wherever the offset is. */
	lseek(fb, 0, SEEK_SET);
	if (write(fb, "second\n", 7) != 7)
		failf("write fd B: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/b.log", dir);
	i = open(path, O_RDONLY);
	n = i >= 0 ? read(i, buf, sizeof(buf)) : -1;
	if (i >= 0)
		close(i);
	if (n != 13 || memcmp(buf, "first\nsecond\n", 13))
		failf("b.log is not \"first\\nsecond\\n\" after an O_APPEND write (%zd bytes)", n);

	/* C reads at 100 and cannot write. */
	n = read(fc, buf, 10);
	if (n != 10)
		failf("read fd C: %zd", n);
	else
		expect_content("fd C read at 100", buf, 100, 10);
	if (write(fc, "x", 1) != -1 || errno != EBADF)
		failf("write to O_RDONLY fd C did not fail with EBADF");

	/* D keeps FD_CLOEXEC and its contents. */
	if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
		failf("fd D lost FD_CLOEXEC");
	if (pread(fd, buf, 4, 0) != 4 || memcmp(buf, "dddd", 4))
		failf("fd D contents");

	/* /dev/null. */
	if (fstat(fn, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		failf("fd N is not /dev/null");
	if (write(fn, "zzz", 3) != 3 || read(fn, buf, 10) != 0)
		failf("fd N does not behave as /dev/null");

	/* The directory. */
	if (fstat(ft, &st) || !S_ISDIR(st.st_mode) || st.st_ino != st_dir.st_ino ||
	    st.st_dev != st_dir.st_dev)
		failf("fd T is not the scratch directory");

	return prog_finish();
}
