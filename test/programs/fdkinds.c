/* signalfd and timerfd: a signalfd for SIGWINCH and SIGRTMIN+3 with a SIGWINCH
 * pending (blocked), a periodic timerfd (50 ms) that must keep expiring after
 * restore, and a one-shot timerfd that already expired but was never read (its
 * tick must still be there). A FIFO (named pipe) open at both ends with 300
 * bytes in it, an O_PATH fd of the program's directory, and a pidfd of a child.
 * SIGUSR2: read the pending tick first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/timerfd.h>

int main(int argc, char **argv)
{
	sigset_t m;
	int sfd, per, once, corrupt;
	uint64_t n;

	prog_init();
	sigemptyset(&m);
	sigaddset(&m, SIGWINCH);
	sigaddset(&m, SIGRTMIN + 3);
	MUST(sigprocmask(SIG_BLOCK, &m, NULL) == 0);
	MUST((sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC)) >= 0);
	MUST(kill(getpid(), SIGWINCH) == 0);
	MUST((per = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)) >= 0);
	struct itimerspec p = { { 0, 50000000 }, { 0, 50000000 } };
	MUST(timerfd_settime(per, 0, &p, NULL) == 0);
	MUST((once = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)) >= 0);
	struct itimerspec o = { { 0, 0 }, { 0, 1000000 } };
	MUST(timerfd_settime(once, 0, &o, NULL) == 0);
	char fifo_path[4096];
	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", prog_dir(argc, argv));
	MUST(mkfifo(fifo_path, 0600) == 0);
	int fr = open(fifo_path, O_RDONLY | O_NONBLOCK);
	MUST(fr >= 0);
	int fw = open(fifo_path, O_WRONLY);
	MUST(fw >= 0);
	char msg[300];
	for (int i = 0; i < 300; i++)
		msg[i] = (char)(i * 3 + 5);
	MUST(write(fw, msg, sizeof(msg)) == (ssize_t)sizeof(msg));
	int opath = open(prog_dir(argc, argv), O_PATH | O_DIRECTORY);
	MUST(opath >= 0);
	pid_t child = fork();
	MUST(child >= 0);
	if (child == 0) {
		for (;;)
			pause();
	}
	int pfd = (int)syscall(SYS_pidfd_open, child, 0);
	MUST(pfd >= 0);
	usleep(20000);
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		MUST(read(once, &n, 8) == 8);

	struct signalfd_siginfo si;
	if (read(sfd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGWINCH)
		failf("signalfd: the pending SIGWINCH is not there");
	kill(getpid(), SIGRTMIN + 3);
	if (read(sfd, &si, sizeof(si)) != sizeof(si) || (int)si.ssi_signo != SIGRTMIN + 3)
		failf("signalfd: does not read SIGRTMIN+3 (its mask changed)");
	if (read(once, &n, 8) != 8 || n != 1)
		failf("one-shot timerfd: the unread expiration is gone");
	read(per, &n, 8); /* whatever piled up */
	usleep(200000);
	if (read(per, &n, 8) != 8 || n < 2)
		failf("periodic timerfd: %llu expirations in 200 ms", (unsigned long long)n);
	struct itimerspec cur;
	if (timerfd_gettime(per, &cur) || cur.it_interval.tv_nsec != 50000000)
		failf("periodic timerfd: interval changed");
	if (!(fcntl(sfd, F_GETFL) & O_NONBLOCK))
		failf("signalfd lost O_NONBLOCK");
	char back[400];
	ssize_t got = read(fr, back, sizeof(back));
	if (got != (ssize_t)sizeof(msg) || memcmp(back, msg, sizeof(msg)))
		failf("FIFO: %zd bytes back, want %zu", got, sizeof(msg));
	if (write(fw, "x", 1) != 1 || read(fr, back, 1) != 1 || back[0] != 'x')
		failf("FIFO: its ends no longer talk");
	if (!(fcntl(opath, F_GETFL) & O_PATH))
		failf("the O_PATH fd lost O_PATH");
	struct stat st;
	if (fstatat(opath, "fifo", &st, 0) || !S_ISFIFO(st.st_mode))
		failf("the O_PATH directory fd does not find the FIFO");
	int wst;
	if (syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0) != 0)
		failf("pidfd_send_signal through the pidfd failed: %s", strerror(errno));
	if (waitpid(child, &wst, 0) != child || !WIFSIGNALED(wst) || WTERMSIG(wst) != SIGTERM)
		failf("the pidfd did not reach the child (status %#x)", wst);
	return prog_finish();
}
