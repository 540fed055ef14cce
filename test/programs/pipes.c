/* pipes, eventfd, epoll: a pipe with 5000 bytes queued (both ends here, the write
 * end O_NONBLOCK), a pipe shared with a child that writes into it after restore,
 * an eventfd with counter 7 (another in semaphore mode), and an epoll watching the
 * first pipe's read end and the eventfd with its own data values. After restore
 * every byte and count must be there and epoll must report both, with the data.
 * SIGUSR2: drain a byte first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#define QUEUED 5000

int main(int argc, char **argv)
{
	int p[2], q[2], efd, sfd, ep, corrupt;
	char buf[QUEUED + 16];
	struct epoll_event ev;
	pid_t child;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(pipe(p) == 0);
	MUST(fcntl(p[1], F_SETFL, O_NONBLOCK) == 0);
	for (int i = 0; i < QUEUED; i++)
		buf[i] = (char)(i * 7 + 1);
	MUST(write(p[1], buf, QUEUED) == QUEUED);
	MUST(pipe(q) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		close(q[0]);
		wait_for_signal();
		return write(q[1], "child", 5) == 5 ? 0 : 1;
	}
	close(q[1]);
	MUST((efd = eventfd(7, EFD_NONBLOCK)) >= 0);
	MUST((sfd = eventfd(3, EFD_SEMAPHORE)) >= 0);
	MUST((ep = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	ev.events = EPOLLIN;
	ev.data.u64 = 0x1111222233334444ULL;
	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x5555;
	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);
	/* A second fd of the same epoll, which is also non-blocking. */
	int ep2 = dup(ep);
	MUST(ep2 >= 0 && fcntl(ep, F_SETFL, O_NONBLOCK) == 0);
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		MUST(read(p[0], buf, 1) == 1);

	struct epoll_event got[4];
	int n = epoll_wait(ep, got, 4, 1000), seen = 0;
	for (int i = 0; i < n; i++) {
		if (got[i].data.u64 == 0x1111222233334444ULL && (got[i].events & EPOLLIN))
			seen |= 1;
		else if (got[i].data.u64 == 0x5555 && (got[i].events & EPOLLIN))
			seen |= 2;
	}
	if (seen != 3)
		failf("epoll_wait reported %d events, pipe %s, eventfd %s", n, seen & 1 ? "yes" : "no", seen & 2 ? "yes" : "no");
	if ((fcntl(p[1], F_GETFL) & O_NONBLOCK) == 0)
		failf("the pipe's write end lost O_NONBLOCK");
	/* The pipe is still readable (level-triggered): the dup reports it too. */
	n = epoll_wait(ep2, got, 4, 1000);
	if (n < 1 || got[0].data.u64 != 0x1111222233334444ULL)
		failf("the dup of the epoll fd does not see the same watches");
	if ((fcntl(ep2, F_GETFL) & O_NONBLOCK) == 0)
		failf("the epoll lost O_NONBLOCK");
	char in[QUEUED + 16];
	int got_bytes = 0, r;

	fcntl(p[0], F_SETFL, O_NONBLOCK); /* a short pipe must not hang the check */
	while ((r = read(p[0], in + got_bytes, sizeof(in) - got_bytes)) > 0) {
		got_bytes += r;
		if (got_bytes >= QUEUED)
			break;
	}
	if (got_bytes != QUEUED || memcmp(in, buf, QUEUED))
		failf("pipe: %d bytes back (want %d) or different bytes", got_bytes, QUEUED);
	uint64_t c = 0;
	if (read(efd, &c, 8) != 8 || c != 7)
		failf("eventfd counter %llu, want 7", (unsigned long long)c);
	if (read(sfd, &c, 8) != 8 || c != 1)
		failf("semaphore eventfd gave %llu, want 1", (unsigned long long)c);
	kill(child, SIGUSR1);
	char word[8] = { 0 };
	if (read(q[0], word, 5) != 5 || strcmp(word, "child"))
		failf("the child's write through the shared pipe did not arrive (\"%s\")", word);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		failf("child ended with %#x", st);
	return prog_finish();
}
