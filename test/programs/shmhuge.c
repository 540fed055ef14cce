/*
 * shmhuge: SysV shared memory in huge pages (SHM_HUGETLB), in an ipc
 * namespace of the task's own (unshare(CLONE_NEWIPC)):
 *   - H1: key 0x4321, 40960 bytes (one huge page), mode 0600, attached,
 *     a pattern in all of it;
 *   - H2: key 0x4322, a huge page and 4096 bytes (two huge pages), mode 0640,
 *     not attached, a pattern in its first page only (the second stays zeros).
 * On SIGUSR1 it checks ids, keys, modes and sizes, that both are still in
 * huge pages (the attachment's file is on hugetlbfs), and their contents; PASS.
 * SIGUSR2: a byte of H1 is changed first.
 */
#define _GNU_SOURCE
#include "common.h"

#include <sched.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/vfs.h>

#define HUGE (2UL << 20)
#define SIZE1 40960UL
#define SIZE2 (HUGE + 4096UL)
#define HUGETLBFS_MAGIC 0x958458f6

static unsigned char at(unsigned long i, int seed)
{
	return (unsigned char)(i * 31 + seed);
}

static int on_hugetlbfs(const void *addr, unsigned long len)
{
	char path[128];
	struct statfs sf;
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)addr, (unsigned long)addr + len);
	return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == HUGETLBFS_MAGIC;
}

static void check_seg(const char *what, int id, key_t key, int mode, unsigned long size)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds)) {
		failf("%s: IPC_STAT: %s", what, strerror(errno));
		return;
	}
	if (ds.shm_perm.__key != key || (ds.shm_perm.mode & 0777) != mode || ds.shm_segsz != size)
		failf("%s: key 0x%x mode %o size %lu, want 0x%x %o %lu", what, ds.shm_perm.__key, ds.shm_perm.mode & 0777, (unsigned long)ds.shm_segsz, key, mode, size);
}

int main(int argc, char **argv)
{
	int h1, h2;
	unsigned char *p1, *p2;

	prog_init();
	if (unshare(CLONE_NEWIPC)) {
		perror("unshare");
		return 2;
	}
	MUST((h1 = shmget(0x4321, SIZE1, IPC_CREAT | IPC_EXCL | SHM_HUGETLB | 0600)) >= 0);
	MUST((p1 = shmat(h1, NULL, 0)) != (void *)-1);
	for (unsigned long i = 0; i < SIZE1; i++)
		p1[i] = at(i, 1);
	MUST((h2 = shmget(0x4322, SIZE2, IPC_CREAT | IPC_EXCL | SHM_HUGETLB | 0640)) >= 0);
	MUST((p2 = shmat(h2, NULL, 0)) != (void *)-1);
	for (unsigned long i = 0; i < 4096; i++)
		p2[i] = at(i, 2);
	MUST(shmdt(p2) == 0);
	printf("IDS %d %d\n", h1, h2);
	prog_ready();

	if (wait_for_signal())
		p1[100] ^= 0xff;

	check_seg("H1", h1, 0x4321, 0600, SIZE1);
	check_seg("H2", h2, 0x4322, 0640, SIZE2);
	if (shmget(0x4321, 0, 0) != h1 || shmget(0x4322, 0, 0) != h2)
		failf("the keys name other ids: %d %d, want %d %d", shmget(0x4321, 0, 0), shmget(0x4322, 0, 0), h1, h2);
	if (!on_hugetlbfs(p1, HUGE))
		failf("H1's attachment is not in huge pages");
	for (unsigned long i = 0; i < SIZE1; i++)
		if (p1[i] != at(i, 1)) {
			failf("H1: byte %lu is %u, want %u", i, p1[i], at(i, 1));
			break;
		}
	if ((p2 = shmat(h2, NULL, SHM_RDONLY)) == (void *)-1) {
		failf("shmat(H2): %s", strerror(errno));
	} else {
		if (!on_hugetlbfs(p2, 2 * HUGE))
			failf("H2 is not in huge pages");
		for (unsigned long i = 0; i < SIZE2; i++) {
			unsigned char want = i < 4096 ? at(i, 2) : 0;
			if (p2[i] != want) {
				failf("H2: byte %lu is %u, want %u", i, p2[i], want);
				break;
			}
		}
		shmdt(p2);
	}
	return prog_finish();
}
