/*
 * hugetlb: memory in huge pages must come back in huge pages (the same hugetlbfs
 * device in /proc/self/maps), with its contents and its sharing.
 *
 * - MAP_SHARED|MAP_HUGETLB anonymous memory of two huge pages, also mapped by a
 *   child, which wrote into it before the dump; after restore a write of the
 *   parent's must reach the child (one object);
 * - MAP_PRIVATE|MAP_HUGETLB anonymous memory;
 * - a memfd_create(MFD_HUGETLB) memfd of two huge pages mapped shared and
 *   privately (the private mapping has a copy of its own of the first huge page,
 *   and sees the shared one's writes in the second) and open: pread sees the
 *   contents, the fd is on hugetlbfs.
 * Needs 7 free 2 MiB huge pages (vm.nr_hugepages).
 * SIGUSR2: the private huge page is overwritten first.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#define HP (2UL << 20)
#define HUGETLBFS_MAGIC 0x958458f6
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 4
#endif

/* The device of the mapping at addr, as /proc/self/maps shows it. */
static unsigned long dev_of(const void *addr)
{
	char line[512];
	unsigned long start, maj = ~0UL, min = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%*x %*s %*x %lx:%lx", &start, &maj, &min) == 3 && start == (unsigned long)(uintptr_t)addr)
			break;
		else
			maj = ~0UL;
	if (f)
		fclose(f);
	return maj == ~0UL ? ~0UL : (maj << 20) | min;
}

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)p)[i] = pattern64(seed, i);
}

static int holds(const uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		if (((const uint64_t *)p)[i] != pattern64(seed, i))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	uint8_t *shared, *priv, *mshared, *mpriv;
	unsigned long dev[4];
	uint8_t buf[4096];
	struct statfs sf;
	int mfd, ready[2], status, corrupt;
	pid_t child;

	(void)argc;
	(void)argv;
	prog_init();
	MUST((shared = mmap(NULL, 2 * HP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0)) != MAP_FAILED);
	MUST((priv = mmap(NULL, HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0)) != MAP_FAILED);
	MUST((mfd = memfd_create("huge", MFD_CLOEXEC | MFD_HUGETLB)) >= 0);
	MUST(ftruncate(mfd, 2 * HP) == 0);
	MUST((mshared = mmap(NULL, 2 * HP, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) != MAP_FAILED);
	MUST((mpriv = mmap(NULL, 2 * HP, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0)) != MAP_FAILED);
	fill(shared, 4096, 1);
	fill(shared + 2 * HP - 4096, 4096, 2);
	fill(priv, 4096, 3);
	fill(priv + HP - 4096, 4096, 4);
	fill(mshared, 4096, 5);
	fill(mshared + HP - 4096, 4096, 6);
	fill(mpriv + 4096, 4096, 10); /* a copy of the first huge page, with the shared one's page 0 */
	dev[0] = dev_of(shared);
	dev[1] = dev_of(priv);
	dev[2] = dev_of(mshared);
	dev[3] = dev_of(mpriv);

	MUST(pipe(ready) == 0);
	MUST((child = fork()) >= 0);
	if (child == 0) {
		fill(shared + HP, 4096, 7); /* the second huge page, for the parent to see */
		MUST(write(ready[1], "", 1) == 1);
		wait_for_signal();
		/* The parent wrote this after restore. */
		_exit(holds(shared + 4096, 4096, 8) ? 0 : 1);
	}
	MUST(read(ready[0], buf, 1) == 1);
	close(ready[0]);
	close(ready[1]);
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt)
		fill(priv, 4096, 99);
	if (!holds(shared, 4096, 1) || !holds(shared + 2 * HP - 4096, 4096, 2))
		failf("shared huge pages: contents changed");
	if (!holds(shared + HP, 4096, 7))
		failf("shared huge pages: the child's write is gone");
	if (!holds(priv, 4096, 3) || !holds(priv + HP - 4096, 4096, 4))
		failf("private huge page: contents changed");
	if (!holds(mshared, 4096, 5) || !holds(mshared + HP - 4096, 4096, 6))
		failf("hugetlb memfd: contents changed");
	if (!holds(mpriv, 4096, 5) || !holds(mpriv + 4096, 4096, 10))
		failf("private mapping of the hugetlb memfd: its copy of the first huge page changed");
	if (holds(mshared + 4096, 4096, 10))
		failf("the private mapping's copy is in the hugetlb memfd");
	fill(mshared + HP, 4096, 11);
	if (!holds(mpriv + HP, 4096, 11))
		failf("private mapping of the hugetlb memfd does not see a write to the memfd's second huge page");
	if (pread(mfd, buf, sizeof(buf), HP - 4096) != (ssize_t)sizeof(buf) || !holds(buf, sizeof(buf), 6))
		failf("pread of the hugetlb memfd: not its contents");
	if (fstatfs(mfd, &sf) || sf.f_type != HUGETLBFS_MAGIC || sf.f_bsize != (long)HP)
		failf("the memfd is not on hugetlbfs with 2 MiB pages");
	if (dev_of(shared) != dev[0] || dev_of(priv) != dev[1] || dev_of(mshared) != dev[2] || dev_of(mpriv) != dev[3])
		failf("a mapping moved to another device (%lx %lx %lx %lx, were %lx %lx %lx %lx)", dev_of(shared), dev_of(priv),
		      dev_of(mshared), dev_of(mpriv), dev[0], dev[1], dev[2], dev[3]);
	fill(shared + 4096, 4096, 8);
	kill(child, SIGUSR1);
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("the child does not see the parent's write to the shared huge pages (status %#x)", status);
	return prog_finish();
}
