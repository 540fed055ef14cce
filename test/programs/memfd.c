/* memfd: memfds with their fds, mappings, names, contents, holes, seals, flags and
 * positions, and one shared with a child.
 *   A "cryo test: one", 8 pages + 100 bytes, data in pages 0-2 and 7 (3-6 holes),
 *     sealed SHRINK|GROW; fd a1 O_RDWR at 1234, fd a2 a reopen O_RDONLY at 77, a
 *     MAP_SHARED writable mapping and a MAP_PRIVATE one with page 1 changed privately.
 *   B "sealed", sealed WRITE|SEAL, mapped MAP_SHARED read-only (through an O_RDONLY fd).
 *   C "noexec", MFD_NOEXEC_SEAL: mode 0666, sealed EXEC.
 *   D "mapped only", mapped MAP_SHARED, no fd left; the child shares it.
 *   E "future", a writable shared mapping, then sealed FUTURE_WRITE: the mapping
 *     still writes, the fd no longer does.
 *   F "in flight", only in a unix socket queue (SCM_RIGHTS), sealed GROW.
 * After restore every piece is checked, and writes through one mapping must show
 * through the fd and in the child's mapping (one object, not copies).
 * SIGUSR2: change a byte of A through the fd first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define PG 4096
#define ASIZE (8 * PG + 100)

static unsigned char pat(int i)
{
	return (unsigned char)(i * 31 + 7);
}

/* What A holds at byte i (before the private change and later writes). */
static unsigned char a_byte(int i)
{
	int page = i / PG;

	return (page <= 2 || page == 7) ? pat(i) : 0;
}

static void check_link(int fd, const char *want)
{
	char proc[64], link[512];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (strcmp(link, want))
		failf("fd %d is \"%s\", want \"%s\"", fd, link, want);
}

static void check_map_link(void *addr, size_t len, const char *want)
{
	char proc[96], link[512];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/map_files/%lx-%lx", (unsigned long)addr, (unsigned long)addr + len);
	n = readlink(proc, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (strcmp(link, want))
		failf("mapping at %p is \"%s\", want \"%s\"", addr, link, want);
}

int main(int argc, char **argv)
{
	int a1, a2, b, c, d, e, corrupt, cmd[2], res[2];
	unsigned char *ash, *apriv, *bmap, *dmap, *emap;
	static unsigned char buf[ASIZE];
	struct stat st1, st2;
	pid_t child;

	(void)argc;
	(void)argv;
	prog_init();

	MUST((a1 = memfd_create("cryo test: one", MFD_ALLOW_SEALING)) >= 0);
	MUST(ftruncate(a1, ASIZE) == 0);
	for (int i = 0; i < ASIZE; i++)
		buf[i] = a_byte(i);
	MUST(pwrite(a1, buf, 3 * PG, 0) == 3 * PG);
	MUST(pwrite(a1, buf + 7 * PG, 100 + PG, 7 * PG) == 100 + PG);
	MUST(lseek(a1, 1234, SEEK_SET) == 1234);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", a1);
	MUST((a2 = open(path, O_RDONLY)) >= 0);
	MUST(lseek(a2, 77, SEEK_SET) == 77);
	MUST((ash = mmap(NULL, ASIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a1, 0)) != MAP_FAILED);
	MUST((apriv = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, a1, 0)) != MAP_FAILED);
	memset(apriv + PG, 0x5a, 16); /* copy-on-write: only this mapping sees it */
	MUST(fcntl(a1, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);

	MUST((b = memfd_create("sealed", MFD_ALLOW_SEALING)) >= 0);
	MUST(write(b, "sealed contents", 15) == 15);
	/* Through a read-only fd: a shared mapping of an O_RDWR one could be made
	 * writable later, which F_SEAL_WRITE refuses. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b);
	int bro;
	MUST((bro = open(path, O_RDONLY)) >= 0);
	MUST((bmap = mmap(NULL, PG, PROT_READ, MAP_SHARED, bro, 0)) != MAP_FAILED);
	close(bro);
	MUST(fcntl(b, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) == 0);

	MUST((c = memfd_create("noexec", MFD_NOEXEC_SEAL)) >= 0);
	MUST(write(c, "nx", 2) == 2);

	MUST((d = memfd_create("mapped only", 0)) >= 0);
	MUST(ftruncate(d, 2 * PG) == 0);
	MUST((dmap = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0)) != MAP_FAILED);
	strcpy((char *)dmap + PG, "second page of d");
	close(d);

	MUST((e = memfd_create("future", MFD_ALLOW_SEALING)) >= 0);
	MUST(ftruncate(e, PG) == 0);
	MUST((emap = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, e, 0)) != MAP_FAILED);
	MUST(fcntl(e, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0);
	strcpy((char *)emap, "written through the mapping");

	/* F: no fd left but the one in flight. */
	int fm, carrier[2];
	MUST((fm = memfd_create("in flight", MFD_ALLOW_SEALING)) >= 0);
	MUST(write(fm, "carried", 7) == 7);
	MUST(fcntl(fm, F_ADD_SEALS, F_SEAL_GROW) == 0);
	MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, carrier) == 0);
	{
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { "F", 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);

		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(ch), &fm, sizeof(int));
		MUST(sendmsg(carrier[0], &mh, 0) == 1);
	}
	close(fm);

	/* The child shares D's mapping and A's fds; it answers one command after restore. */
	MUST(pipe(cmd) == 0 && pipe(res) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		char x, reply[64];

		close(cmd[1]);
		close(res[0]);
		if (read(cmd[0], &x, 1) != 1)
			return 1;
		/* What the parent wrote after restore, seen through our own mappings and fd. */
		snprintf(reply, sizeof(reply), "%.16s|%.8s", (char *)dmap, (char *)ash + 4096);
		strcpy((char *)dmap + 100, "from the child");
		pwrite(a1, "C", 1, 2);
		return write(res[1], reply, strlen(reply) + 1) > 0 ? 0 : 1;
	}
	close(cmd[0]);
	close(res[1]);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		pwrite(a1, "!", 1, 5000);

	/* A: name, size, mode, seals, flags, positions, contents, holes. */
	check_link(a1, "/memfd:cryo test: one (deleted)");
	check_link(a2, "/memfd:cryo test: one (deleted)");
	if (fstat(a1, &st1) || fstat(a2, &st2) || st1.st_ino != st2.st_ino || st1.st_dev != st2.st_dev)
		failf("a1 and a2 are not one inode any more");
	if (st1.st_size != ASIZE || (st1.st_mode & 07777) != 0777)
		failf("A: size %ld mode %o", (long)st1.st_size, st1.st_mode & 07777);
	if (fcntl(a1, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW))
		failf("A: seals %#x", fcntl(a1, F_GET_SEALS));
	if ((fcntl(a1, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(a2, F_GETFL) & O_ACCMODE) != O_RDONLY)
		failf("A: access modes %#x %#x", fcntl(a1, F_GETFL), fcntl(a2, F_GETFL));
	if (lseek(a1, 0, SEEK_CUR) != 1234 || lseek(a2, 0, SEEK_CUR) != 77)
		failf("A: positions %ld %ld", (long)lseek(a1, 0, SEEK_CUR), (long)lseek(a2, 0, SEEK_CUR));
	static unsigned char back[ASIZE];
	if (pread(a2, back, ASIZE, 0) != ASIZE || memcmp(back, buf, ASIZE))
		failf("A: the contents changed");
	if (lseek(a1, 3 * PG, SEEK_DATA) != 7 * PG)
		failf("A: pages 3-6 are no hole any more (SEEK_DATA from page 3 gives %ld)", (long)lseek(a1, 3 * PG, SEEK_DATA));
	if (memcmp(ash, buf, ASIZE))
		failf("A: the shared mapping differs from the file");
	if (apriv[PG] != 0x5a || apriv[PG + 15] != 0x5a || apriv[PG + 16] != pat(PG + 16) || apriv[0] != pat(0))
		failf("A: the private mapping lost its own page or the file's");
	/* One object: the mapping writes into the file, the fd into the mapping. */
	ash[3] = 'M';
	if (pread(a2, back, 4, 0) != 4 || back[3] != 'M')
		failf("A: a write through the mapping does not show through the fd");
	if (pwrite(a1, "F", 1, 4) != 1 || ash[4] != 'F')
		failf("A: a write through the fd does not show in the mapping");
	if (ftruncate(a1, PG) == 0 || errno != EPERM)
		failf("A: shrinking was not refused (seal lost)");

	/* B: sealed against writes. */
	check_link(b, "/memfd:sealed (deleted)");
	if (fcntl(b, F_GET_SEALS) != (F_SEAL_WRITE | F_SEAL_SEAL))
		failf("B: seals %#x", fcntl(b, F_GET_SEALS));
	if (memcmp(bmap, "sealed contents", 15))
		failf("B: the mapping holds \"%.15s\"", (char *)bmap);
	if (pwrite(b, "x", 1, 0) >= 0 || errno != EPERM)
		failf("B: a write was not refused");
	if (fcntl(b, F_ADD_SEALS, F_SEAL_GROW) == 0)
		failf("B: F_SEAL_SEAL lost");

	/* C: MFD_NOEXEC_SEAL. */
	check_link(c, "/memfd:noexec (deleted)");
	if (fstat(c, &st1) || (st1.st_mode & 07777) != 0666 || st1.st_size != 2)
		failf("C: mode %o size %ld", st1.st_mode & 07777, (long)st1.st_size);
	if (fcntl(c, F_GET_SEALS) != F_SEAL_EXEC)
		failf("C: seals %#x", fcntl(c, F_GET_SEALS));

	/* D: only a mapping. */
	check_map_link(dmap, 2 * PG, "/memfd:mapped only (deleted)");
	if (strcmp((char *)dmap + PG, "second page of d"))
		failf("D: the mapping holds \"%.20s\"", (char *)dmap + PG);

	/* E: FUTURE_WRITE on, the mapping made before it still writes. */
	if (fcntl(e, F_GET_SEALS) != F_SEAL_FUTURE_WRITE)
		failf("E: seals %#x", fcntl(e, F_GET_SEALS));
	if (strcmp((char *)emap, "written through the mapping"))
		failf("E: the mapping holds \"%.30s\"", (char *)emap);
	emap[0] = 'W';
	if (pread(e, back, 1, 0) != 1 || back[0] != 'W')
		failf("E: a write through the mapping does not show through the fd");
	if (pwrite(e, "x", 1, 0) >= 0 || errno != EPERM)
		failf("E: a write through the fd was not refused");

	/* F: out of the socket queue. */
	{
		char cbuf[CMSG_SPACE(sizeof(int))], m[8];
		struct iovec iov = { m, sizeof(m) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		int got_fd = -1;

		if (recvmsg(carrier[1], &mh, MSG_DONTWAIT) != 1 || !CMSG_FIRSTHDR(&mh))
			failf("F: the memfd in flight is gone");
		else {
			memcpy(&got_fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
			check_link(got_fd, "/memfd:in flight (deleted)");
			if (pread(got_fd, m, 7, 0) != 7 || memcmp(m, "carried", 7))
				failf("F: holds \"%.7s\"", m);
			if (fcntl(got_fd, F_GET_SEALS) != F_SEAL_GROW)
				failf("F: seals %#x", fcntl(got_fd, F_GET_SEALS));
		}
	}

	/* The child: the same D and A, both ways. */
	strcpy((char *)dmap, "parent wrote it!");
	memcpy(ash + 4096, "shared A", 8);
	char reply[64] = { 0 };
	if (write(cmd[1], "c", 1) != 1 || read(res[0], reply, sizeof(reply) - 1) <= 0)
		failf("the child does not answer");
	else if (strcmp(reply, "parent wrote it!|shared A"))
		failf("the child sees \"%s\"", reply);
	int wst;
	if (waitpid(child, &wst, 0) != child || !WIFEXITED(wst) || WEXITSTATUS(wst))
		failf("child ended with %#x", wst);
	if (strcmp((char *)dmap + 100, "from the child"))
		failf("D: the child's write does not show here");
	if (ash[2] != 'C')
		failf("A: the child's write through its fd does not show in our mapping");
	return prog_finish();
}
