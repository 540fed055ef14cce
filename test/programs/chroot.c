/* chroot: tasks whose root is not "/".
 *   - the parent: chroot(rootA), chdir("/"), then opens /inner.txt (a path in its root);
 *   - its child: chroot(rootB) without chdir, so its cwd (the session dir) lies
 *     outside its root; it holds outer.txt, opened before the chroot.
 * After restore each one's root is its directory ("/" is rootA's or rootB's inode),
 * the parent's cwd is its root and the child's the session dir; paths resolve in
 * the root (the parent opens /inner.txt again and gets that file, the child finds
 * no /outer.txt) and the held files are the same. SIGUSR2: the child chdirs to its
 * root (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int same_inode(const char *p, const struct stat *want)
{
	struct stat st;

	return stat(p, &st) == 0 && st.st_ino == want->st_ino && st.st_dev == want->st_dev;
}

static int child(const char *d, const char *rootb)
{
	struct stat root, cwd, outer;
	int fd;
	char p[4096];

	snprintf(p, sizeof(p), "%s/outer.txt", d);
	MUST((fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	MUST(write(fd, "outer", 5) == 5);
	MUST(stat(rootb, &root) == 0 && stat(".", &cwd) == 0 && fstat(fd, &outer) == 0);
	MUST(chroot(rootb) == 0);
	if (wait_for_signal())
		chdir("/");
	if (!same_inode("/", &root))
		failf("child: / is not rootB");
	if (!same_inode(".", &cwd))
		failf("child: the cwd is not the session dir outside its root");
	if (access("/outer.txt", F_OK) == 0)
		failf("child: /outer.txt is reachable: the root is wrong");
	char b[8] = "";
	struct stat st;
	if (pread(fd, b, 5, 0) != 5 || memcmp(b, "outer", 5) || fstat(fd, &st) || st.st_ino != outer.st_ino)
		failf("child: outer.txt changed");
	return prog_finish();
}

int main(int argc, char **argv)
{
	const char *d = prog_dir(argc, argv);
	char roota[4096], rootb[4096];
	struct stat root, inner;
	int fd, status, corrupt;
	pid_t pid;

	prog_init();
	snprintf(roota, sizeof(roota), "%s/rootA", d);
	snprintf(rootb, sizeof(rootb), "%s/rootB", d);
	MUST(mkdir(roota, 0755) == 0 && mkdir(rootb, 0755) == 0);
	MUST((pid = fork()) >= 0);
	if (pid == 0)
		return child(d, rootb);
	MUST(stat(roota, &root) == 0);
	MUST(chroot(roota) == 0 && chdir("/") == 0);
	MUST((fd = open("/inner.txt", O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	MUST(write(fd, "inner", 5) == 5 && fstat(fd, &inner) == 0);
	prog_ready();
	corrupt = wait_for_signal();
	if (!same_inode("/", &root) || !same_inode(".", &root))
		failf("parent: / or the cwd is not rootA");
	if (!same_inode("/inner.txt", &inner))
		failf("parent: /inner.txt is not the file it made");
	char b[8] = "";
	if (pread(fd, b, 5, 0) != 5 || memcmp(b, "inner", 5))
		failf("parent: inner.txt changed");
	kill(pid, corrupt ? SIGUSR2 : SIGUSR1);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("the child failed its checks (status 0x%x)", status);
	return prog_finish();
}
