/*
 * filesize: regular files whose size the dump records (or not) and the restore
 * checks, as CRIU's files-reg.c does.
 *
 *   log     O_WRONLY|O_APPEND (a log: no size recorded; it may grow meanwhile)
 *   data    O_RDWR|O_APPEND   (size recorded and checked)
 *   plain   O_RDWR, position 10 (size recorded and checked)
 *   mapped  mapped MAP_PRIVATE read-only, no fd (size recorded and checked)
 *
 * After restore (SIGUSR1) every fd still names its file (same inode as the
 * path), plain is still at position 10, the mapping still reads "mapped", and
 * a write to log and to data lands at the end of the file as it is now (so
 * after whatever was appended to log while the task was away). SIGUSR2:
 * moves plain's position first, so the check fails.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

static int open_in(const char *dir, const char *name, int flags)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, flags | O_CREAT, 0644);
	MUST(fd >= 0);
	return fd;
}

static void same_file(const char *dir, const char *name, int fd)
{
	char path[4096];
	struct stat a, b;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fstat(fd, &a) || stat(path, &b)) {
		failf("%s: stat: %s", name, strerror(errno));
		return;
	}
	if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		failf("%s: the fd is another file than the path", name);
}

/* Appends a line through fd and checks that it went to the end of the file. */
static void append_at_end(const char *name, int fd)
{
	struct stat st;
	off_t size;

	if (fstat(fd, &st)) {
		failf("%s: fstat: %s", name, strerror(errno));
		return;
	}
	size = st.st_size;
	if (write(fd, "after\n", 6) != 6) {
		failf("%s: write: %s", name, strerror(errno));
		return;
	}
	if (fstat(fd, &st) || st.st_size != size + 6)
		failf("%s: size %lld after a write at %lld, want %lld", name, (long long)st.st_size,
		      (long long)size, (long long)size + 6);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	int log, data, plain, mfd, corrupt;
	char *map;

	prog_init();
	log = open_in(dir, "log", O_WRONLY | O_APPEND | O_TRUNC);
	data = open_in(dir, "data", O_RDWR | O_APPEND | O_TRUNC);
	plain = open_in(dir, "plain", O_RDWR | O_TRUNC);
	mfd = open_in(dir, "mapped", O_RDWR | O_TRUNC);
	MUST(write(log, "log line 1\n", 11) == 11);
	MUST(write(data, "data line 1\n", 12) == 12);
	MUST(write(plain, "0123456789abcdef\n", 17) == 17);
	MUST(lseek(plain, 10, SEEK_SET) == 10);
	MUST(write(mfd, "mapped\n", 7) == 7);
	map = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, mfd, 0);
	MUST(map != MAP_FAILED);
	close(mfd);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt)
		lseek(plain, 3, SEEK_SET);
	same_file(dir, "log", log);
	same_file(dir, "data", data);
	same_file(dir, "plain", plain);
	if (lseek(plain, 0, SEEK_CUR) != 10)
		failf("plain: position %lld, want 10", (long long)lseek(plain, 0, SEEK_CUR));
	if (memcmp(map, "mapped\n", 7) != 0)
		failf("mapped: the mapping reads %.7s", map);
	append_at_end("log", log);
	append_at_end("data", data);
	return prog_finish();
}
