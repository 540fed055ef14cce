/* epoll watches that outlive the fd they were made through (zdtm epoll, epoll01):
 *  - pipe A watched through fd 900, a dup of its read end; 900 closed;
 *  - pipe B watched through fd 901, closed; then pipe C dup'ed to 901 and
 *    watched there too, 901 kept: two watches registered at one fd number;
 *  - pipe D watched through its own read end, which is kept (the plain case);
 *  - a second epoll watching pipe A again, through fd 902, closed;
 *  - pipe E watched twice, through fds 903 and 904, both closed; E is still
 *    open at its read end and at fd 905, so each watch gets an fd of its own.
 * Each watch has its own data. After restore every pipe is written to and each
 * epoll must report exactly the watched pipes with their data.
 * With argument "other-task": A's read end is kept by a child only, so the
 * epoll's watch of A cannot be made again by the task holding the epoll.
 * SIGUSR2: remove the watch of D first (FAIL). */
#include "common.h"
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>

static void watch(int ep, int fd, uint64_t data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
}

/* Every event of `ep` now, as a bit mask of the data values (1 << data). */
static unsigned events(int ep)
{
	struct epoll_event ev[8];
	unsigned seen = 0;
	int n = epoll_wait(ep, ev, 8, 0);
	for (int i = 0; i < n; i++)
		seen |= 1u << ev[i].data.u64;
	return seen;
}

int main(int argc, char **argv)
{
	int a[2], b[2], c[2], d[2], e[2], ep, ep2, corrupt;
	int other = argc > 2 && !strcmp(argv[2], "other-task");
	pid_t child = -1;

	prog_init();
	MUST(pipe(a) == 0 && pipe(b) == 0 && pipe(c) == 0 && pipe(d) == 0 && pipe(e) == 0);
	MUST((ep = epoll_create1(0)) >= 0 && (ep2 = epoll_create1(0)) >= 0);
	MUST(dup2(a[0], 900) == 900);
	watch(ep, 900, 1);
	close(900);
	MUST(dup2(b[0], 901) == 901);
	watch(ep, 901, 2);
	close(901);
	MUST(dup2(c[0], 901) == 901);
	watch(ep, 901, 3);
	watch(ep, d[0], 4);
	MUST(dup2(a[0], 902) == 902);
	watch(ep2, 902, 5);
	close(902);
	MUST(dup2(e[0], 903) == 903 && dup2(e[0], 904) == 904 && dup2(e[0], 905) == 905);
	watch(ep, 903, 6);
	watch(ep, 904, 7);
	close(903);
	close(904);
	if (other) {
		child = fork();
		MUST(child >= 0);
		if (child == 0) {
			for (;;)
				pause();
		}
		close(a[0]);
	}

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		epoll_ctl(ep, EPOLL_CTL_DEL, d[0], NULL);

	if (events(ep) || events(ep2))
		failf("events before anything was written");
	MUST(write(a[1], "a", 1) == 1 && write(b[1], "b", 1) == 1 && write(c[1], "c", 1) == 1 && write(d[1], "d", 1) == 1 && write(e[1], "e", 1) == 1);
	unsigned got = events(ep), got2 = events(ep2);
	if (got != (1u << 1 | 1u << 2 | 1u << 3 | 1u << 4 | 1u << 6 | 1u << 7))
		failf("epoll 1 reports data %#x, want 0xde (pipes A, B, C through closed and reused fds, D, E twice)", got);
	if (got2 != 1u << 5)
		failf("epoll 2 reports data %#x, want 0x20 (pipe A through a closed fd)", got2);
	struct stat sc, s901;
	if (fstat(c[0], &sc) || fstat(901, &s901) || sc.st_ino != s901.st_ino)
		failf("fd 901 no longer holds pipe C");
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	return prog_finish();
}
