/* sparseghost: deleted files with holes (ghost files kept by their data).
 *   - sparse: 64 KiB deleted file, data at 4-8 KiB and 40-44 KiB only: a hole at
 *     its head, in its middle and at its tail;
 *   - large: a deleted file of 3 GiB with 8 KiB of data at 1 GiB and at its end,
 *     far more than the 1 MiB --ghost-limit by size, far less by data;
 *   - tmpfile: an O_TMPFILE file (never had a name) with 5000 bytes, fd at 321.
 * After restore each must have its size, its data, its holes where they were (no
 * more blocks on disk than before), nlink 0. SIGUSR2: fill a hole (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

#define SPARSE (64 << 10)
#define LARGE (3ull << 30)
#define TMPSZ 5000

static void fill(char *b, size_t n, int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (char)(pattern64(seed, i) & 0xff);
}

static int same(int fd, off_t off, size_t n, int seed)
{
	char want[8192], got[8192];

	fill(want, n, seed);
	return pread(fd, got, n, off) == (ssize_t)n && !memcmp(want, got, n);
}

static void check_data_at(int fd, const char *what, off_t off, size_t n, int seed)
{
	if (!same(fd, off, n, seed))
		failf("%s: data at %lld changed", what, (long long)off);
}

/* The next data from `from` must start at `data`, and the hole after it at `hole`. */
static void check_layout(int fd, const char *what, off_t from, off_t data, off_t hole)
{
	off_t d = lseek(fd, from, SEEK_DATA), h = lseek(fd, data, SEEK_HOLE);

	if (d != data || h != hole)
		failf("%s: from %lld data at %lld (want %lld), hole at %lld (want %lld)", what,
		      (long long)from, (long long)d, (long long)data, (long long)h, (long long)hole);
}

int main(int argc, char **argv)
{
	char path[4096], buf[8192];
	int sparse, large, tmp, corrupt;
	struct stat st, before_sparse, before_large;

	prog_init();
	snprintf(path, sizeof(path), "%s/sparse.dat", prog_dir(argc, argv));
	MUST((sparse = open(path, O_RDWR | O_CREAT | O_TRUNC, 0604)) >= 0);
	MUST(unlink(path) == 0);
	fill(buf, 4096, 1);
	MUST(pwrite(sparse, buf, 4096, 4096) == 4096);
	fill(buf, 4096, 2);
	MUST(pwrite(sparse, buf, 4096, 40 << 10) == 4096);
	MUST(ftruncate(sparse, SPARSE) == 0);
	MUST(fstat(sparse, &before_sparse) == 0);

	snprintf(path, sizeof(path), "%s/large.dat", prog_dir(argc, argv));
	MUST((large = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	MUST(unlink(path) == 0);
	fill(buf, 8192, 3);
	MUST(pwrite(large, buf, 8192, 1ll << 30) == 8192);
	fill(buf, 8192, 4);
	MUST(pwrite(large, buf, 8192, LARGE - 8192) == 8192);
	MUST(fstat(large, &before_large) == 0);

	MUST((tmp = open(prog_dir(argc, argv), O_RDWR | O_TMPFILE, 0640)) >= 0);
	fill(buf, TMPSZ, 5);
	MUST(write(tmp, buf, TMPSZ) == TMPSZ);
	MUST(lseek(tmp, 321, SEEK_SET) == 321);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		pwrite(sparse, "x", 1, 20 << 10);

	if (fstat(sparse, &st) || st.st_size != SPARSE || st.st_nlink != 0 || (st.st_mode & 0777) != 0604)
		failf("sparse: size %lld nlink %lu mode %o", (long long)st.st_size, (unsigned long)st.st_nlink, st.st_mode & 0777);
	else if (st.st_blocks > before_sparse.st_blocks)
		failf("sparse: %lld blocks, %lld before: holes were filled", (long long)st.st_blocks, (long long)before_sparse.st_blocks);
	check_data_at(sparse, "sparse", 4096, 4096, 1);
	check_data_at(sparse, "sparse", 40 << 10, 4096, 2);
	check_layout(sparse, "sparse", 0, 4096, 8192);
	check_layout(sparse, "sparse", 8192, 40 << 10, 44 << 10);
	if (lseek(sparse, 44 << 10, SEEK_DATA) != -1 || errno != ENXIO)
		failf("sparse: data after 44 KiB");

	if (fstat(large, &st) || (unsigned long long)st.st_size != LARGE || st.st_nlink != 0)
		failf("large: size %lld nlink %lu", (long long)st.st_size, (unsigned long)st.st_nlink);
	else if (st.st_blocks > before_large.st_blocks)
		failf("large: %lld blocks, %lld before", (long long)st.st_blocks, (long long)before_large.st_blocks);
	check_data_at(large, "large", 1ll << 30, 8192, 3);
	check_data_at(large, "large", LARGE - 8192, 8192, 4);
	check_layout(large, "large", 0, 1ll << 30, (1ll << 30) + 8192);

	if (fstat(tmp, &st) || st.st_size != TMPSZ || st.st_nlink != 0 || (st.st_mode & 0777) != 0640)
		failf("tmpfile: size %lld nlink %lu mode %o", (long long)st.st_size, (unsigned long)st.st_nlink, st.st_mode & 0777);
	if (lseek(tmp, 0, SEEK_CUR) != 321)
		failf("tmpfile: offset %lld, want 321", (long long)lseek(tmp, 0, SEEK_CUR));
	check_data_at(tmp, "tmpfile", 0, TMPSZ, 5);
	if (pwrite(tmp, "z", 1, 0) != 1)
		failf("tmpfile: not writable any more");
	return prog_finish();
}
