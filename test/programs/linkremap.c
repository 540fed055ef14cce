/* linkremap: files deleted (or replaced) under the name they were opened by, but
 * still linked under another name, dumped with --link-remap.
 *   linked.dat (also keep.dat): an O_RDWR fd at offset 3000 and a MAP_SHARED
 *     mapping, then linked.dat is unlinked.
 *   swapped.dat (also swapped.keep): opened, then another file is renamed over
 *     swapped.dat: the fd keeps the old file, the name holds the new one.
 *   sub/deep.dat (also deep.keep): opened, then unlinked and sub/ removed.
 * After restore each fd must be the very file its other name still shows (same
 * inode, one link), with its contents and offset; no link_remap.N, NAME.cr_link or
 * sub/ may be left. A child sits in the tree (a dump that fails in it must take
 * its links back). SIGUSR2: move linked.dat's offset (FAIL). */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PG 4096

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

static int make(const char *path, const char *text)
{
	int fd;

	MUST((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) >= 0);
	MUST(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	return fd;
}

/* fd is the file `other` names, now its only link, holding `text`. */
static void check_same(int fd, const char *other, const char *text, const char *what)
{
	struct stat a, b;
	char got[64] = { 0 };

	if (fstat(fd, &a) || stat(other, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		failf("%s: the fd is not the file %s names", what, other);
	else if (a.st_nlink != 1)
		failf("%s: %lu links, want 1", what, (unsigned long)a.st_nlink);
	if (pread(fd, got, strlen(text), 0) != (ssize_t)strlen(text) || strcmp(got, text))
		failf("%s: holds \"%s\", want \"%s\"", what, got, text);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char linked[4096], keep[4096], swapped[4096], skeep[4096], sub[4096], deep[4096], dkeep[4096], tmp[4096];
	int l, s, d, corrupt;
	char *map;
	pid_t child;

	prog_init();
	path_in(linked, sizeof(linked), dir, "linked.dat");
	path_in(keep, sizeof(keep), dir, "keep.dat");
	path_in(swapped, sizeof(swapped), dir, "swapped.dat");
	path_in(skeep, sizeof(skeep), dir, "swapped.keep");
	path_in(sub, sizeof(sub), dir, "sub");
	path_in(deep, sizeof(deep), dir, "sub/deep.dat");
	path_in(dkeep, sizeof(dkeep), dir, "deep.keep");
	path_in(tmp, sizeof(tmp), dir, "swapped.new");

	l = make(linked, "linked contents");
	MUST(ftruncate(l, 2 * PG) == 0);
	MUST(link(linked, keep) == 0);
	MUST(lseek(l, 3000, SEEK_SET) == 3000);
	MUST((map = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, l, 0)) != MAP_FAILED);
	memcpy(map + PG, "via the mapping", 15);
	MUST(unlink(linked) == 0);

	s = make(swapped, "the old swapped");
	MUST(link(swapped, skeep) == 0);
	close(make(tmp, "the new swapped"));
	MUST(rename(tmp, swapped) == 0);

	MUST(mkdir(sub, 0755) == 0);
	d = make(deep, "deep contents");
	MUST(link(deep, dkeep) == 0);
	MUST(unlink(deep) == 0 && rmdir(sub) == 0);

	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		for (;;)
			pause();
	}

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		lseek(l, 1, SEEK_SET);

	check_same(l, keep, "linked contents", "linked.dat");
	if (lseek(l, 0, SEEK_CUR) != 3000)
		failf("linked.dat: offset %ld, want 3000", (long)lseek(l, 0, SEEK_CUR));
	if ((fcntl(l, F_GETFL) & O_ACCMODE) != O_RDWR)
		failf("linked.dat: not O_RDWR any more");
	char got[16] = { 0 }, link[4200], proc[64];
	if (pread(l, got, 15, PG) != 15 || memcmp(got, "via the mapping", 15))
		failf("linked.dat: the write through the mapping is lost");
	map[0] = 'L';
	if (pread(l, got, 1, 0) != 1 || got[0] != 'L')
		failf("linked.dat: the mapping is not the fd's file");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", l);
	ssize_t n = readlink(proc, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (strcmp(link + (n > 20 ? n - 20 : 0), "linked.dat (deleted)"))
		failf("linked.dat: the fd is %s", link);
	if (access(linked, F_OK) == 0)
		failf("%s exists again", linked);

	check_same(s, skeep, "the old swapped", "swapped.dat");
	int nw = open(swapped, O_RDONLY);
	memset(got, 0, sizeof(got));
	if (nw < 0 || read(nw, got, 15) != 15 || strcmp(got, "the new swapped"))
		failf("swapped.dat: the name does not hold the new file (\"%s\")", got);
	if (nw >= 0)
		close(nw);

	check_same(d, dkeep, "deep contents", "sub/deep.dat");
	if (access(sub, F_OK) == 0)
		failf("%s exists again", sub);

	DIR *dd = opendir(dir);
	struct dirent *de;
	while (dd && (de = readdir(dd)))
		if (strstr(de->d_name, "link_remap") || strstr(de->d_name, ".cr_link") || strstr(de->d_name, ".cr."))
			failf("%s is left in %s", de->d_name, dir);
	if (dd)
		closedir(dd);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return prog_finish();
}
