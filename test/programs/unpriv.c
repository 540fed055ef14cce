/*
 * unpriv: a task of an unprivileged user, for the service's security tests. It
 * opens "mine" in the scratch dir (a file of its own) as fd 3, writes to it, and
 * maps it shared. On SIGUSR1 it checks that its ids, groups and capabilities
 * are the ones it started with (so a restore gave it no more power), that fd 3
 * is still its file with its data and offset, and that it can still write
 * through the mapping; then it prints PASS. Every restored fd is reported on
 * stderr with its path, so the test sees what the task holds.
 */
#include "common.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/capability.h>
#include <sys/syscall.h>

struct ids {
	uid_t r, e, s;
	gid_t gr, ge, gs;
	int ngroups;
	gid_t groups[64];
	struct __user_cap_data_struct caps[2];
};

static void read_ids(struct ids *d)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	memset(d, 0, sizeof(*d));
	getresuid(&d->r, &d->e, &d->s);
	getresgid(&d->gr, &d->ge, &d->gs);
	d->ngroups = getgroups(64, d->groups);
	syscall(SYS_capget, &h, d->caps);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char path[PATH_MAX];
	struct ids before, after;
	struct stat st, now;
	char buf[64];
	char *map;
	int fd, corrupt, i;

	prog_init();
	read_ids(&before);
	snprintf(path, sizeof(path), "%s/mine", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, 3) != 3) {
		perror("open mine");
		return 2;
	}
	if (fd != 3)
		close(fd);
	if (write(3, "0123456789", 10) != 10 || ftruncate(3, 4096)) {
		perror("write mine");
		return 2;
	}
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	lseek(3, 5, SEEK_SET);
	fstat(3, &st);
	prog_ready();

	corrupt = wait_for_signal();
	read_ids(&after);
	if (corrupt)
		after.r++;
	for (i = 0; i < 16; i++) {
		char link[64], target[PATH_MAX];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", i);
		n = readlink(link, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = 0;
			fprintf(stderr, "fd %d -> %s\n", i, target);
		}
	}
	if (after.r != before.r || after.e != before.e || after.s != before.s)
		failf("uids %u/%u/%u, were %u/%u/%u", after.r, after.e, after.s, before.r, before.e, before.s);
	if (after.gr != before.gr || after.ge != before.ge || after.gs != before.gs)
		failf("gids changed");
	if (after.ngroups != before.ngroups || memcmp(after.groups, before.groups, sizeof(gid_t) * (before.ngroups > 0 ? before.ngroups : 0)))
		failf("groups changed (%d, were %d)", after.ngroups, before.ngroups);
	if (memcmp(after.caps, before.caps, sizeof(before.caps)))
		failf("capabilities changed: eff %08x%08x prm %08x%08x", after.caps[1].effective, after.caps[0].effective,
		      after.caps[1].permitted, after.caps[0].permitted);
	if (fstat(3, &now) || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
		failf("fd 3 is not the file it was");
	if (lseek(3, 0, SEEK_CUR) != 5)
		failf("fd 3 offset moved");
	if (pread(3, buf, 10, 0) != 10 || memcmp(buf, "0123456789", 10))
		failf("fd 3 data lost");
	if (memcmp(map, "0123456789", 10))
		failf("mapping data lost");
	map[100] = 'x';
	if (pread(3, buf, 1, 100) != 1 || buf[0] != 'x')
		failf("the mapping is no longer the file's");
	return prog_finish();
}
