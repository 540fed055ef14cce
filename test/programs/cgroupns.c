/*
 * cgroupns: a tree in a cgroup namespace of its own.
 *
 * argv[2] is a memory cgroup directory made for the test (G). The root moves
 * itself into G, unshares a cgroup namespace there (rooted at G), then moves
 * into G/inner; a child moves into G/inner/kid. At READY the root notes
 * /proc/self/cgroup and the child's /proc/PID/cgroup as it sees them (paths
 * from the namespace's root: memory is /inner and /inner/kid).
 * On SIGUSR1 it checks that both read the same now, that the memory lines
 * are those, and that it is not in the cgroup namespace it started in.
 * SIGUSR2 first moves the root into G itself (seen as /).
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>

static void move_to(const char *dir)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY);
	MUST(fd >= 0 && dprintf(fd, "0\n") > 0);
	close(fd);
}

static void read_file(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	MUST(fd >= 0);
	n = read(fd, out, size - 1);
	MUST(n >= 0);
	out[n] = 0;
	close(fd);
}

/* The memory line's path, or "" */
static void memory_of(const char *text, char *out, size_t size)
{
	const char *l = strstr(text, ":memory:");

	out[0] = 0;
	if (l) {
		const char *e = strchr(l + 8, '\n');
		size_t n = e ? (size_t)(e - l - 8) : strlen(l + 8);

		snprintf(out, size, "%.*s", (int)n, l + 8);
	}
}

int main(int argc, char **argv)
{
	char g[400], d[512], start[64], now[64], self0[4096], kid0[4096], self1[4096], kid1[4096], mem[256], kpath[64];
	int p[2], status;
	ssize_t n;
	pid_t child;

	prog_init();
	MUST(argc > 2);
	snprintf(g, sizeof(g), "%s", argv[2]);
	n = readlink("/proc/self/ns/cgroup", start, sizeof(start) - 1);
	MUST(n > 0);
	start[n] = 0;
	move_to(g);
	MUST(unshare(CLONE_NEWCGROUP) == 0);
	snprintf(d, sizeof(d), "%s/inner", g);
	move_to(d);
	MUST(pipe(p) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		snprintf(d, sizeof(d), "%s/inner/kid", g);
		move_to(d);
		MUST(write(p[1], "x", 1) == 1);
		for (;;)
			pause();
	}
	{
		char c;

		MUST(read(p[0], &c, 1) == 1);
	}
	snprintf(kpath, sizeof(kpath), "/proc/%d/cgroup", child);
	read_file("/proc/self/cgroup", self0, sizeof(self0));
	read_file(kpath, kid0, sizeof(kid0));
	memory_of(self0, mem, sizeof(mem));
	MUST(!strcmp(mem, "/inner"));
	prog_ready();
	if (wait_for_signal())
		move_to(g);

	read_file("/proc/self/cgroup", self1, sizeof(self1));
	read_file(kpath, kid1, sizeof(kid1));
	if (strcmp(self0, self1))
		failf("/proc/self/cgroup is [%s], was [%s]", self1, self0);
	if (strcmp(kid0, kid1))
		failf("the child's cgroup file is [%s], was [%s]", kid1, kid0);
	memory_of(self1, mem, sizeof(mem));
	if (strcmp(mem, "/inner"))
		failf("memory cgroup %s, want /inner", mem);
	memory_of(kid1, mem, sizeof(mem));
	if (strcmp(mem, "/inner/kid"))
		failf("the child's memory cgroup %s, want /inner/kid", mem);
	n = readlink("/proc/self/ns/cgroup", now, sizeof(now) - 1);
	now[n < 0 ? 0 : n] = 0;
	if (!strcmp(now, start))
		failf("in the cgroup namespace it started in (%s)", now);

	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	return prog_finish();
}
