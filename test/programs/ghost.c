/* ghost: a file deleted while open. It holds 10000 bytes, the fd sits at offset
 * 1234; after restore the fd must still be a deleted file (no name, nlink 0) with
 * the same bytes and offset, and writable. SIGUSR2: move the offset (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	char path[4096], buf[10000], back[10000], link[4200], proc[64];
	int fd, corrupt;
	struct stat st;

	prog_init();
	snprintf(path, sizeof(path), "%s/ghost.dat", prog_dir(argc, argv));
	for (int i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (char)(i * 13 + 7);
	MUST((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640)) >= 0);
	MUST(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
	MUST(unlink(path) == 0);
	MUST(lseek(fd, 1234, SEEK_SET) == 1234);
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		lseek(fd, 1, SEEK_SET);
	if (lseek(fd, 0, SEEK_CUR) != 1234)
		failf("offset %ld, want 1234", (long)lseek(fd, 0, SEEK_CUR));
	if (fstat(fd, &st) || st.st_nlink != 0 || st.st_size != (off_t)sizeof(buf) || (st.st_mode & 0777) != 0640)
		failf("fstat: nlink %lu size %ld mode %o", (unsigned long)st.st_nlink, (long)st.st_size, st.st_mode & 0777);
	if (pread(fd, back, sizeof(back), 0) != (ssize_t)sizeof(back) || memcmp(back, buf, sizeof(buf)))
		failf("the contents changed");
	if (pwrite(fd, "z", 1, 0) != 1)
		failf("not writable any more");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!strstr(link, "(deleted)"))
		failf("the fd is %s, not a deleted file", link);
	if (access(path, F_OK) == 0)
		failf("%s exists again", path);
	return prog_finish();
}
