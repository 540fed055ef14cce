/*
 * unsfiles: files of a tree in user and mount namespaces of its own, on file
 * systems of its user namespace, where cryo's own ids mean nothing (zdtm's
 * uns flavour: file_lease*, unlink_regular00, mntns_link_remap,
 * overmount_sock, socket_icmp).
 *
 * Built static into DIR/root/prog (its root file system holds nothing else
 * but what it makes), it is a launcher: it clones the tree's root, pid 1 of
 * new user, mount, pid and net namespaces (maps written from outside: uid 0
 * 100000 65536, gid 0 200000 65536), prints "child N" (the root's pid here)
 * and waits for it. The root pivots into DIR/root with a proc of its own,
 * runs /prog there again (its executable then on a mount of the tree's),
 * mounts a tmpfs on /t and sets up there:
 *   - a read lease on /t/leased (open read-only; it owns the file);
 *   - /t/dir/a open read-write holding "linked", linked as /t/b, then /t/dir/a
 *     and /t/dir removed (a link remap of a file on a tmpfs of the user
 *     namespace, made by cryo at dump);
 *   - /t/gd/g open holding "ghost", then removed with its directory (a ghost
 *     file cryo makes on that tmpfs again);
 *   - an ICMP socket (net.ipv4.ping_group_range "0 0" in its namespace, lo up);
 *   - a unix socket listening on /t/s/sock, with a tmpfs mounted on /t/s since.
 * It prints READY, then writes to /log in its root (nothing outside it stays
 * open). On SIGUSR1 it checks the lease, the file's contents and links, the
 * ICMP socket's protocol, and that the unix socket listens under its name:
 * PASS or FAIL into /log. (Its file, hidden under the tmpfs, is dumped as a
 * removed name, as CRIU does: it is not there once that tmpfs is gone.)
 * It remounts /t too (a tmpfs of another user namespace's refuses).
 * SIGUSR2: the lease is dropped first.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

static char stack[256 * 1024] __attribute__((aligned(16)));
static int sync_pipe[2];
static char root_dir[600];

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	MUST(fd >= 0);
	MUST(write(fd, data, strlen(data)) == (ssize_t)strlen(data));
	close(fd);
}

static int root_main(void *arg)
{
	char c, proc[700];

	(void)arg;
	close(sync_pipe[1]);
	MUST(read(sync_pipe[0], &c, 1) == 1); /* the maps are written */
	close(sync_pipe[0]);
	MUST(syscall(SYS_close_range, 3, ~0U, 0) == 0);
	MUST(setresgid(0, 0, 0) == 0 && setresuid(0, 0, 0) == 0);
	MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	MUST(mount(root_dir, root_dir, NULL, MS_BIND | MS_REC, NULL) == 0);
	/* Its pid namespace's proc, made while the host's shows (a user namespace may not mount one otherwise). */
	snprintf(proc, sizeof(proc), "%s/proc", root_dir);
	MUST(mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0);
	MUST(chdir(root_dir) == 0);
	MUST(syscall(SYS_pivot_root, ".", ".") == 0);
	MUST(umount2(".", MNT_DETACH) == 0);
	MUST(chdir("/") == 0);
	/* Its executable from its own root: the launcher's is on a mount the tree does not have. */
	char *args[] = { "prog", "--tree", NULL }, *env[] = { NULL };
	execve("/prog", args, env);
	_exit(126);
}

/* The tree's root, run again from /prog in its root, with stdout and stderr still the launcher's. */
static int tree_main(void)
{
	char buf[64];
	int leased, linked, ghost, ping, srv, log, v;
	socklen_t len = sizeof(v);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;

	MUST(mount("cryo-uns", "/t", "tmpfs", 0, "size=1m") == 0);

	write_file("/t/leased", "lease");
	leased = open("/t/leased", O_RDONLY);
	MUST(leased >= 0 && fcntl(leased, F_SETLEASE, F_RDLCK) == 0);

	MUST(mkdir("/t/dir", 0755) == 0);
	linked = open("/t/dir/a", O_RDWR | O_CREAT, 0640);
	MUST(linked >= 0 && write(linked, "linked", 6) == 6);
	MUST(link("/t/dir/a", "/t/b") == 0 && unlink("/t/dir/a") == 0 && rmdir("/t/dir") == 0);
	/* A deleted file on it, in a directory gone too: a ghost file cryo makes there again. */
	MUST(mkdir("/t/gd", 0700) == 0);
	ghost = open("/t/gd/g", O_RDWR | O_CREAT, 0600);
	MUST(ghost >= 0 && write(ghost, "ghost", 5) == 5 && unlink("/t/gd/g") == 0 && rmdir("/t/gd") == 0);

	{
		struct ifreq ifr = { .ifr_name = "lo" };
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		MUST(s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0);
		ifr.ifr_flags |= IFF_UP;
		MUST(ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
		close(s);
	}
	write_file("/proc/sys/net/ipv4/ping_group_range", "0 0");
	ping = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	MUST(ping >= 0);

	MUST(mkdir("/t/s", 0755) == 0);
	srv = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sun.sun_path, "/t/s/sock");
	MUST(srv >= 0 && bind(srv, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(srv, 4) == 0);
	MUST(mount("cryo-over", "/t/s", "tmpfs", 0, "size=64k") == 0);

	prog_ready();
	log = open("/log", O_WRONLY | O_CREAT | O_APPEND, 0644);
	MUST(log >= 0 && dup2(log, 0) == 0 && dup2(log, 1) == 1 && dup2(log, 2) == 2);
	close(log);

	if (wait_for_signal())
		fcntl(leased, F_SETLEASE, F_UNLCK);
	if ((v = fcntl(leased, F_GETLEASE)) != F_RDLCK)
		failf("the lease is %d, want F_RDLCK", v);
	memset(buf, 0, sizeof(buf));
	if (pread(linked, buf, sizeof(buf) - 1, 0) != 6 || strcmp(buf, "linked"))
		failf("the linked file holds \"%s\"", buf);
	if (fstat(linked, &st) || st.st_nlink != 1 || (st.st_mode & 0777) != 0640)
		failf("the linked file: %lu links, mode %o", (unsigned long)st.st_nlink, st.st_mode & 0777);
	memset(buf, 0, sizeof(buf));
	if (pread(ghost, buf, sizeof(buf) - 1, 0) != 5 || strcmp(buf, "ghost") || fstat(ghost, &st) || st.st_nlink != 0 || st.st_uid != 0)
		failf("the deleted file holds \"%s\", %lu links, owner %u", buf, (unsigned long)st.st_nlink, st.st_uid);
	if (stat("/t/b", &st) || st.st_nlink != 1)
		failf("/t/b is gone or has other links");
	if (getsockopt(ping, SOL_SOCKET, SO_PROTOCOL, &v, &len) || v != IPPROTO_ICMP)
		failf("the ICMP socket's protocol is %d", v);
	len = sizeof(sun);
	memset(&sun, 0, sizeof(sun));
	if (getsockname(srv, (struct sockaddr *)&sun, &len) || strcmp(sun.sun_path, "/t/s/sock"))
		failf("the unix socket's name is \"%s\"", sun.sun_path);
	len = sizeof(v);
	if (getsockopt(srv, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) || v != 1)
		failf("the unix socket does not listen");
	/* Its tmpfs is its user namespace's, as it was: root here may remount it. */
	if (mount(NULL, "/t", NULL, MS_REMOUNT, "size=2m"))
		failf("remounting /t: %s (its tmpfs is not this user namespace's)", strerror(errno));
	return prog_finish();
}

int main(int argc, char **argv)
{
	char path[700];
	const char *dir = prog_dir(argc, argv);
	pid_t root;

	prog_init();
	if (argc > 1 && !strcmp(argv[1], "--tree"))
		return tree_main();
	snprintf(root_dir, sizeof(root_dir), "%s/root", dir);
	MUST(chmod(dir, 0755) == 0 && chown(root_dir, 100000, 200000) == 0);
	for (const char *const *d = (const char *const[]){ "t", "proc", NULL }; *d; d++) {
		snprintf(path, sizeof(path), "%s/%s", root_dir, *d);
		MUST(mkdir(path, 0755) == 0 || errno == EEXIST);
	}
	MUST(pipe(sync_pipe) == 0);
	root = clone(root_main, stack + sizeof(stack), CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | SIGCHLD, NULL);
	MUST(root > 0);
	close(sync_pipe[0]);
	return launch_root(root, sync_pipe[1], 1);
}
