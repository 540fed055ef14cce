/* leasebroken: a write lease being broken, whose holder is now only a child.
 * The task opens DIR/leased read-write, takes a write lease with F_SETSIG
 * SIGIO, breaks it with a non-blocking O_WRONLY open (EWOULDBLOCK; the task
 * gets one SIGIO, si_fd = the fd), forks a child, and closes its own fd: the
 * child holds the lease's file. The task counts every signal of the file.
 * Checks after restore: the task got no second break signal; the child's fd
 * shows the lease still being broken to F_UNLCK, owned (F_GETOWN_EX) by the
 * task as before, with F_SETSIG SIGIO; the child got no signal either.
 * SIGUSR2: the child changes the file's owner to itself first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/wait.h>

static volatile sig_atomic_t signals, bad_fd;
static int expect_fd = -1;

static void on_io(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	signals++;
	if (si->si_fd != expect_fd)
		bad_fd = si->si_fd;
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char path[4096];
	struct sigaction sa;
	int fd, pfd[2], st;
	pid_t child;
	char verdict[256];
	ssize_t n;

	prog_init();
	snprintf(path, sizeof(path), "%s/leased", dir);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_io;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	MUST(sigaction(SIGIO, &sa, NULL) == 0);
	MUST((fd = open(path, O_RDWR | O_CREAT, 0644)) >= 0);
	expect_fd = fd;
	MUST(fcntl(fd, F_SETLEASE, F_WRLCK) == 0);
	MUST(fcntl(fd, F_SETSIG, SIGIO) == 0);
	MUST(open(path, O_WRONLY | O_NONBLOCK) < 0 && errno == EWOULDBLOCK);
	while (signals == 0)
		usleep(1000);
	MUST(signals == 1 && bad_fd == 0);
	MUST(pipe(pfd) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		struct f_owner_ex ex;

		close(pfd[0]);
		signals = 0;
		expect_fd = -2;
		if (wait_for_signal())
			MUST(fcntl(fd, F_SETOWN, getpid()) == 0);
		verdict[0] = 0;
		if (fcntl(fd, F_GETLEASE) != F_UNLCK)
			snprintf(verdict, sizeof(verdict), "lease %d, want F_UNLCK (breaking) ", fcntl(fd, F_GETLEASE));
		MUST(fcntl(fd, F_GETOWN_EX, &ex) == 0);
		if (ex.type != F_OWNER_PID || ex.pid != getppid())
			snprintf(verdict + strlen(verdict), sizeof(verdict) - strlen(verdict),
				 "owner %d (type %d), want the parent %d ", ex.pid, ex.type, getppid());
		if (fcntl(fd, F_GETSIG) != SIGIO)
			snprintf(verdict + strlen(verdict), sizeof(verdict) - strlen(verdict), "signal %d, want SIGIO ",
				 fcntl(fd, F_GETSIG));
		if (signals)
			snprintf(verdict + strlen(verdict), sizeof(verdict) - strlen(verdict), "the child got %d signal(s) ",
				 (int)signals);
		if (write(pfd[1], verdict, strlen(verdict) + 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(pfd[1]);
	MUST(close(fd) == 0);
	prog_ready();
	kill(child, wait_for_signal() ? SIGUSR2 : SIGUSR1);
	n = read(pfd[0], verdict, sizeof(verdict) - 1);
	MUST(n > 0);
	verdict[n] = 0;
	MUST(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (verdict[0])
		failf("the child's fd: %s", verdict);
	if (signals != 1)
		failf("the task got %d break signals, want the one before the dump", (int)signals);
	if (bad_fd)
		failf("a signal named fd %d", (int)bad_fd);
	unlink(path);
	return prog_finish();
}
