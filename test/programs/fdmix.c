/* A little of everything, for the image fuzz test (fuzz-images.test.ts): a
 * regular file at a position and mapped privately, a pipe with data queued,
 * a unix socketpair with data queued both ways, an epoll watching the pipe,
 * a memfd with contents (an fd and a shared mapping), heap and anonymous
 * memory with holes, the cwd and the umask. After restore each is checked
 * exactly; a restore from damaged images must either be refused or come back
 * whole. SIGUSR2: drain a byte of the pipe first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define PG 4096
#define FILE_SIZE (3 * PG + 500)
#define FILE_POS 1234
#define PIPE_QUEUED 3000
#define HEAP_WORDS (64 * 1024 / 8)
#define ANON_PAGES 16
#define MEMFD_SIZE (2 * PG + 77)

static unsigned char file_byte(int i)
{
	return (unsigned char)(i * 13 + 5);
}

static unsigned char pipe_byte(int i)
{
	return (unsigned char)(i * 7 + 3);
}

static unsigned char memfd_byte(int i)
{
	return (unsigned char)(i * 29 + 11);
}

/* Pages of the anonymous area that are touched; the rest stay holes. */
static int anon_touched(int page)
{
	return page % 3 != 1;
}

static void check_kind(int fd, mode_t want, const char *what)
{
	struct stat st;

	if (fstat(fd, &st))
		failf("%s fd %d: %s", what, fd, strerror(errno));
	else if ((st.st_mode & S_IFMT) != want)
		failf("%s fd %d has mode %o", what, fd, st.st_mode);
}

static void check_read(int fd, const char *what, int n, unsigned char (*byte)(int), int from)
{
	unsigned char buf[4 * PG];
	int got = 0, r;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); /* short data must not hang the check */
	while (got < (int)sizeof(buf) && (r = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += r;
	if (got != n) {
		failf("%s: read %d bytes, want %d", what, got, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (buf[i] != byte(from + i)) {
			failf("%s: byte %d is %d, want %d", what, i, buf[i], byte(from + i));
			return;
		}
	}
}

static const char *sk_a = "from a to b";
static const char *sk_b = "b says hello to a";

static unsigned char ska_byte(int i)
{
	return (unsigned char)sk_a[i];
}

static unsigned char skb_byte(int i)
{
	return (unsigned char)sk_b[i];
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], cwd[PATH_MAX];
	unsigned char buf[FILE_SIZE];
	int reg, p[2], sk[2], ep, mfd, corrupt;
	struct epoll_event ev;

	prog_init();
	MUST(realpath(prog_dir(argc, argv), dir) != NULL);
	MUST(chdir(dir) == 0);
	umask(027);

	snprintf(path, sizeof(path), "%s/fdmix.dat", dir);
	MUST((reg = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640)) >= 0);
	for (int i = 0; i < FILE_SIZE; i++)
		buf[i] = file_byte(i);
	MUST(write(reg, buf, FILE_SIZE) == FILE_SIZE);
	MUST(lseek(reg, FILE_POS, SEEK_SET) == FILE_POS);
	unsigned char *fmap = mmap(NULL, 2 * PG, PROT_READ, MAP_PRIVATE, reg, PG);
	MUST(fmap != MAP_FAILED);

	MUST(pipe(p) == 0);
	unsigned char pb[PIPE_QUEUED];
	for (int i = 0; i < PIPE_QUEUED; i++)
		pb[i] = pipe_byte(i);
	MUST(write(p[1], pb, PIPE_QUEUED) == PIPE_QUEUED);

	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sk) == 0);
	MUST(write(sk[0], sk_a, strlen(sk_a)) == (ssize_t)strlen(sk_a));
	MUST(write(sk[1], sk_b, strlen(sk_b)) == (ssize_t)strlen(sk_b));

	MUST((ep = epoll_create1(0)) >= 0);
	ev.events = EPOLLIN;
	ev.data.u64 = 0xfeedfacecafebeefULL;
	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);

	MUST((mfd = memfd_create("fdmix", 0)) >= 0);
	unsigned char mb[MEMFD_SIZE];
	for (int i = 0; i < MEMFD_SIZE; i++)
		mb[i] = memfd_byte(i);
	MUST(write(mfd, mb, MEMFD_SIZE) == MEMFD_SIZE);
	unsigned char *mmap_fd = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	MUST(mmap_fd != MAP_FAILED);

	uint64_t *heap = malloc(HEAP_WORDS * 8);
	MUST(heap != NULL);
	for (uint64_t i = 0; i < HEAP_WORDS; i++)
		heap[i] = pattern64(1, i);
	uint64_t *anon = mmap(NULL, ANON_PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	MUST(anon != MAP_FAILED);
	for (int pg = 0; pg < ANON_PAGES; pg++)
		if (anon_touched(pg))
			for (int w = 0; w < PG / 8; w++)
				anon[pg * PG / 8 + w] = pattern64(2, pg * PG / 8 + w);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		MUST(read(p[0], pb, 1) == 1);

	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, dir))
		failf("cwd is %s, want %s", cwd, dir);
	mode_t um = umask(0);
	if (um != 027)
		failf("umask is %o, want 027", um);

	check_kind(reg, S_IFREG, "regular file");
	if (lseek(reg, 0, SEEK_CUR) != FILE_POS)
		failf("file position is %ld, want %d", (long)lseek(reg, 0, SEEK_CUR), FILE_POS);
	check_read(reg, "fdmix.dat", FILE_SIZE - FILE_POS, file_byte, FILE_POS);
	for (int i = 0; i < 2 * PG; i++)
		if (fmap[i] != (PG + i < FILE_SIZE ? file_byte(PG + i) : 0)) {
			failf("the file mapping differs at byte %d", i);
			break;
		}

	check_kind(p[0], S_IFIFO, "pipe read end");
	check_kind(p[1], S_IFIFO, "pipe write end");
	struct epoll_event got[2];
	int n = epoll_wait(ep, got, 2, 1000);
	if (n != 1 || got[0].data.u64 != 0xfeedfacecafebeefULL || !(got[0].events & EPOLLIN))
		failf("epoll_wait reported %d events", n);
	check_read(p[0], "pipe", PIPE_QUEUED, pipe_byte, 0);
	if (write(p[1], "x", 1) != 1)
		failf("the pipe's write end does not write: %s", strerror(errno));

	check_kind(sk[0], S_IFSOCK, "socket a");
	check_kind(sk[1], S_IFSOCK, "socket b");
	check_read(sk[1], "socket b's queue", strlen(sk_a), ska_byte, 0);
	check_read(sk[0], "socket a's queue", strlen(sk_b), skb_byte, 0);
	if (write(sk[0], "y", 1) != 1 || read(sk[1], pb, 1) != 1 || pb[0] != 'y')
		failf("the socketpair no longer carries data");

	struct stat st;
	if (fstat(mfd, &st) || st.st_size != MEMFD_SIZE)
		failf("memfd size is %ld, want %d", (long)st.st_size, MEMFD_SIZE);
	for (int i = 0; i < MEMFD_SIZE; i++)
		if (mmap_fd[i] != memfd_byte(i)) {
			failf("the memfd mapping differs at byte %d", i);
			break;
		}
	mmap_fd[5] ^= 0xff;
	unsigned char one;
	if (pread(mfd, &one, 1, 5) != 1 || one != (unsigned char)(memfd_byte(5) ^ 0xff))
		failf("the memfd mapping and its fd are not one object");

	for (uint64_t i = 0; i < HEAP_WORDS; i++)
		if (heap[i] != pattern64(1, i)) {
			failf("heap word %lu differs", (unsigned long)i);
			break;
		}
	for (int pg = 0; pg < ANON_PAGES; pg++)
		for (int w = 0; w < PG / 8; w++)
			if (anon[pg * PG / 8 + w] != (anon_touched(pg) ? pattern64(2, pg * PG / 8 + w) : 0)) {
				failf("anonymous page %d differs at word %d", pg, w);
				pg = ANON_PAGES;
				break;
			}
	return prog_finish();
}
