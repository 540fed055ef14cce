/* deletedkinds: things other than regular files deleted while in use, and
 * symlinks held by O_PATH|O_NOFOLLOW fds.
 *   - the cwd is a directory removed after chdir (its fd 'cwdfd' too);
 *   - 'dirfd' is a directory removed together with its parent;
 *   - 'fifo' is a FIFO removed while open read-only, with 300 bytes queued;
 *   - 'dev' is a character device node (1:3, as /dev/null) removed while open;
 *   - 'lnk' is a symlink held O_PATH|O_NOFOLLOW, 'gonelnk' one removed since.
 * After restore each is still that kind of deleted object (nlink 0, mode, rdev,
 * target, data), the removed paths stay gone, and cwd and cwdfd are one inode.
 * SIGUSR2: read the FIFO's data before checking (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static void check_deleted(int fd, const char *what, mode_t type, mode_t perm)
{
	struct stat st;

	if (fstat(fd, &st))
		failf("%s: fstat: %s", what, strerror(errno));
	else if ((st.st_mode & S_IFMT) != type || (st.st_mode & 07777) != perm || st.st_nlink != 0)
		failf("%s: mode 0%o nlink %lu, want 0%o nlink 0", what, st.st_mode, (unsigned long)st.st_nlink, type | perm);
}

static void check_gone(const char *p)
{
	struct stat st;

	if (lstat(p, &st) == 0)
		failf("%s is there again", p);
}

static void check_target(int fd, const char *what, const char *want)
{
	char t[4096];
	ssize_t n = readlinkat(fd, "", t, sizeof(t) - 1);
	struct stat st;

	t[n > 0 ? n : 0] = 0;
	if (fstat(fd, &st) || !S_ISLNK(st.st_mode))
		failf("%s: not a symlink any more", what);
	if (n < 0 || strcmp(t, want))
		failf("%s: points to '%s', want '%s'", what, n < 0 ? strerror(errno) : t, want);
}

int main(int argc, char **argv)
{
	const char *d = prog_dir(argc, argv);
	char cwdp[4096], outer[4096], inner[4096], fifop[4096], devp[4096], lnkp[4096], gonep[4096];
	char buf[300], got[300], link2[4200];
	int cwdfd, dirfd, fifo, fifow, dev, lnk, gonelnk, corrupt;
	struct stat a, b;

	prog_init();
	umask(0);
	snprintf(cwdp, sizeof(cwdp), "%s/cwd.d", d);
	snprintf(outer, sizeof(outer), "%s/outer.d", d);
	snprintf(inner, sizeof(inner), "%s/outer.d/inner.d", d);
	snprintf(fifop, sizeof(fifop), "%s/fifo", d);
	snprintf(devp, sizeof(devp), "%s/null.dev", d);
	snprintf(lnkp, sizeof(lnkp), "%s/lnk", d);
	snprintf(gonep, sizeof(gonep), "%s/gonelnk", d);

	MUST(mkdir(cwdp, 0751) == 0);
	MUST((cwdfd = open(cwdp, O_RDONLY | O_DIRECTORY)) >= 0);
	MUST(chdir(cwdp) == 0);
	MUST(rmdir(cwdp) == 0);

	MUST(mkdir(outer, 0700) == 0 && mkdir(inner, 0705) == 0);
	MUST((dirfd = open(inner, O_RDONLY | O_DIRECTORY)) >= 0);
	MUST(rmdir(inner) == 0 && rmdir(outer) == 0);

	MUST(mkfifo(fifop, 0640) == 0);
	MUST((fifo = open(fifop, O_RDONLY | O_NONBLOCK)) >= 0);
	MUST((fifow = open(fifop, O_WRONLY)) >= 0);
	for (int i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 1);
	MUST(write(fifow, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
	MUST(close(fifow) == 0);
	MUST(unlink(fifop) == 0);

	MUST(mknod(devp, S_IFCHR | 0620, makedev(1, 3)) == 0);
	MUST((dev = open(devp, O_RDWR)) >= 0);
	MUST(unlink(devp) == 0);

	MUST(symlink("/some/where", lnkp) == 0);
	MUST((lnk = open(lnkp, O_PATH | O_NOFOLLOW)) >= 0);
	MUST(symlink("gone/target", gonep) == 0);
	MUST((gonelnk = open(gonep, O_PATH | O_NOFOLLOW)) >= 0);
	MUST(unlink(gonep) == 0);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		read(fifo, got, sizeof(got));

	ssize_t n = readlink("/proc/self/cwd", link2, sizeof(link2) - 1);
	link2[n > 0 ? n : 0] = 0;
	if (!strstr(link2, "(deleted)") || strncmp(link2, cwdp, strlen(cwdp)))
		failf("cwd is %s, want %s (deleted)", link2, cwdp);
	if (stat(".", &a) || fstat(cwdfd, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		failf("cwd and cwdfd are not one directory");
	check_deleted(cwdfd, "cwdfd", S_IFDIR, 0751);
	check_deleted(dirfd, "dirfd", S_IFDIR, 0705);
	check_gone(cwdp);
	check_gone(outer);

	check_deleted(fifo, "fifo", S_IFIFO, 0640);
	memset(got, 0, sizeof(got));
	if (read(fifo, got, sizeof(got)) != (ssize_t)sizeof(got) || memcmp(got, buf, sizeof(buf)))
		failf("fifo: the queued data changed");
	check_gone(fifop);

	check_deleted(dev, "dev", S_IFCHR, 0620);
	if (fstat(dev, &a) == 0 && a.st_rdev != makedev(1, 3))
		failf("dev: rdev %u:%u, want 1:3", major(a.st_rdev), minor(a.st_rdev));
	if (write(dev, "x", 1) != 1)
		failf("dev: not writable");
	check_gone(devp);

	check_target(lnk, "lnk", "/some/where");
	check_target(gonelnk, "gonelnk", "gone/target");
	if (fstat(gonelnk, &a) == 0 && a.st_nlink != 0)
		failf("gonelnk: nlink %lu, want 0", (unsigned long)a.st_nlink);
	check_gone(gonep);
	if (lstat(lnkp, &a) || !S_ISLNK(a.st_mode))
		failf("%s is gone", lnkp);
	return prog_finish();
}
