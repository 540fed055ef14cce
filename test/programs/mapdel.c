/* mapdel: mappings of files deleted while mapped, and a deleted executable.
 *   The program copies itself to DIR/mapdel-exe, runs the copy and deletes it:
 *     /proc/self/exe reads ".../mapdel-exe (deleted)".
 *   mapped.dat: 3 pages, an O_RDWR fd, a MAP_SHARED writable mapping (written
 *     through) and a MAP_PRIVATE one (page 1 changed privately), then deleted.
 *   maponly.dat: 2 pages mapped MAP_SHARED, no fd, deleted.
 *   replaced.dat: opened and mapped, then replaced by another file of the same
 *     name (rename over it): the fd and the mapping keep the old contents.
 * After restore every mapping must reach the same (deleted) file as its fd, with
 * the contents it had, the name must still be free (or hold the new file), and no
 * helper file may be left in DIR. SIGUSR2: change mapped.dat through the fd (FAIL). */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PG 4096

static unsigned char pat(int i)
{
	return (unsigned char)(i * 17 + 3);
}

static void copy_self(const char *to)
{
	char buf[65536];
	int in, out;
	ssize_t n;

	MUST((in = open("/proc/self/exe", O_RDONLY)) >= 0);
	MUST((out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755)) >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		MUST(write(out, buf, n) == n);
	close(in);
	close(out);
}

/* The file behind a mapping (its map_files link) is the file behind fd? */
static int same_file(void *addr, size_t len, int fd)
{
	char proc[96];
	struct stat a, b;

	snprintf(proc, sizeof(proc), "/proc/self/map_files/%lx-%lx", (unsigned long)addr, (unsigned long)addr + len);
	return stat(proc, &a) == 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static void link_of(const char *proc, char *out, size_t size)
{
	ssize_t n = readlink(proc, out, size - 1);

	out[n > 0 ? n : 0] = 0;
}

static int ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

int main(int argc, char **argv)
{
	char exe[4096], fpath[4096], gpath[4096], rpath[4096], tmp[4096], link[4200], proc[96];
	unsigned char *fsh, *fpriv, *gmap, *rmap, back[3 * PG];
	int f, r, corrupt;
	const char *dir = prog_dir(argc, argv);

	prog_init();
	snprintf(exe, sizeof(exe), "%s/mapdel-exe", dir);
	if (argc < 3 || strcmp(argv[2], "copy")) {
		copy_self(exe);
		execl(exe, exe, dir, "copy", (char *)NULL);
		MUST(0);
	}
	MUST(unlink(exe) == 0);

	snprintf(fpath, sizeof(fpath), "%s/mapped.dat", dir);
	MUST((f = open(fpath, O_RDWR | O_CREAT | O_TRUNC, 0640)) >= 0);
	for (int i = 0; i < 3 * PG; i++)
		back[i] = pat(i);
	MUST(write(f, back, sizeof(back)) == (ssize_t)sizeof(back));
	MUST((fsh = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0)) != MAP_FAILED);
	MUST((fpriv = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0)) != MAP_FAILED);
	memcpy(fsh + 2 * PG, "written through the shared mapping", 34);
	memset(fpriv + PG, 0x77, 8);
	MUST(unlink(fpath) == 0);

	snprintf(gpath, sizeof(gpath), "%s/maponly.dat", dir);
	int g;
	MUST((g = open(gpath, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	MUST(ftruncate(g, 2 * PG) == 0);
	MUST((gmap = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0)) != MAP_FAILED);
	strcpy((char *)gmap + PG, "only mapped");
	close(g);
	MUST(unlink(gpath) == 0);

	snprintf(rpath, sizeof(rpath), "%s/replaced.dat", dir);
	snprintf(tmp, sizeof(tmp), "%s/replaced.new", dir);
	MUST((r = open(rpath, O_RDWR | O_CREAT | O_TRUNC, 0644)) >= 0);
	MUST(write(r, "old contents", 12) == 12);
	MUST((rmap = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, r, 0)) != MAP_FAILED);
	int n;
	MUST((n = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	MUST(write(n, "the new file", 12) == 12);
	close(n);
	MUST(rename(tmp, rpath) == 0);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		pwrite(f, "!", 1, 100);

	/* The executable. */
	link_of("/proc/self/exe", link, sizeof(link));
	if (!ends_with(link, "/mapdel-exe (deleted)"))
		failf("exe is %s", link);

	/* mapped.dat: one deleted file behind the fd and both mappings. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f);
	link_of(proc, link, sizeof(link));
	if (!ends_with(link, "/mapped.dat (deleted)"))
		failf("the fd of mapped.dat is %s", link);
	struct stat st;
	if (fstat(f, &st) || st.st_nlink != 0 || st.st_size != 3 * PG || (st.st_mode & 0777) != 0640)
		failf("mapped.dat: nlink %lu size %ld mode %o", (unsigned long)st.st_nlink, (long)st.st_size, st.st_mode & 0777);
	if (!same_file(fsh, 3 * PG, f) || !same_file(fpriv, 3 * PG, f))
		failf("mapped.dat: a mapping is not the fd's file");
	unsigned char want[3 * PG], got[3 * PG];
	for (int i = 0; i < 3 * PG; i++)
		want[i] = pat(i);
	memcpy(want + 2 * PG, "written through the shared mapping", 34);
	if (pread(f, got, sizeof(got), 0) != (ssize_t)sizeof(got) || memcmp(got, want, sizeof(want)))
		failf("mapped.dat: the contents changed");
	if (memcmp(fsh, want, sizeof(want)))
		failf("mapped.dat: the shared mapping differs from the file");
	if (fpriv[PG] != 0x77 || fpriv[PG + 7] != 0x77 || fpriv[PG + 8] != pat(PG + 8) || fpriv[0] != pat(0))
		failf("mapped.dat: the private mapping lost its own page or the file's");
	fsh[5] = 'M';
	if (pread(f, got, 6, 0) != 6 || got[5] != 'M')
		failf("mapped.dat: a write through the mapping does not show through the fd");
	if (access(fpath, F_OK) == 0)
		failf("%s exists again", fpath);

	/* maponly.dat. */
	snprintf(proc, sizeof(proc), "/proc/self/map_files/%lx-%lx", (unsigned long)gmap, (unsigned long)gmap + 2 * PG);
	link_of(proc, link, sizeof(link));
	if (!ends_with(link, "/maponly.dat (deleted)"))
		failf("the mapping of maponly.dat is %s", link);
	if (strcmp((char *)gmap + PG, "only mapped"))
		failf("maponly.dat: the mapping holds \"%.12s\"", (char *)gmap + PG);
	if (access(gpath, F_OK) == 0)
		failf("%s exists again", gpath);

	/* replaced.dat: ours is the old file, the name holds the new one. */
	if (!same_file(rmap, PG, r))
		failf("replaced.dat: the mapping is not the fd's file");
	if (pread(r, got, 12, 0) != 12 || memcmp(got, "old contents", 12) || memcmp(rmap, "old contents", 12))
		failf("replaced.dat: the fd or mapping does not hold the old contents");
	int nr = open(rpath, O_RDONLY);
	if (nr < 0 || read(nr, got, 12) != 12 || memcmp(got, "the new file", 12))
		failf("replaced.dat: the name does not hold the new file");
	if (nr >= 0)
		close(nr);

	/* Nothing left behind by the restore (ghost files, links). */
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strstr(de->d_name, ".cr.") || strstr(de->d_name, ".cr_link") || strstr(de->d_name, "link_remap") || strstr(de->d_name, "mapdel-exe"))
			failf("%s is left in %s", de->d_name, dir);
	if (d)
		closedir(d);
	return prog_finish();
}
