/*
 * jobstop: children stopped by job control, each by another stop signal.
 *
 * The root (a session leader) forks four children, each in a process group of
 * its own (so the groups are not orphaned: their parent, the root, is in
 * another group of the same session, and SIGTSTP/SIGTTIN/SIGTTOU can stop
 * them), and each blocked in read() on a pipe of its own:
 *   S0 - stopped by SIGSTOP;
 *   S1 - stopped by SIGSTOP, then sent SIGSTOP again (kill and tkill) while
 *        stopped: those stay pending;
 *   S2 - stopped by SIGTSTP;
 *   S3 - stopped by SIGTTIN.
 * Once each is stopped (waitid WSTOPPED|WNOWAIT), a byte is written into each
 * pipe: a child that runs reads it and exits 0 at once.
 * On SIGUSR1 the root checks that every child is still stopped (state T),
 * that waitid(WSTOPPED) reports it stopped by its own signal, and that none has
 * exited; then it sends SIGCONT to all and checks that each exits 0.
 * SIGUSR2: S0 is continued first, so it runs, reads its byte and exits.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define N 4
static const int stop_sig[N] = { SIGSTOP, SIGSTOP, SIGTSTP, SIGTTIN };

static char state_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

/* Waits (up to a second) for the child to be in a job-control stop. */
static int await_stop(pid_t pid)
{
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < 1000; i++) {
		if (state_of(pid) == 'T')
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	pid_t kid[N];
	int pipes[N][2], status;
	siginfo_t si;

	(void)argc;
	(void)argv;
	prog_init();
	for (int i = 0; i < N; i++) {
		MUST(pipe(pipes[i]) == 0);
		kid[i] = fork();
		MUST(kid[i] >= 0);
		if (kid[i] == 0) {
			char c;

			close(pipes[i][1]);
			_exit(read(pipes[i][0], &c, 1) == 1 && c == 'x' ? 0 : 3);
		}
		close(pipes[i][0]);
		MUST(setpgid(kid[i], kid[i]) == 0 || errno == EACCES);
		MUST(kill(kid[i], stop_sig[i]) == 0);
		MUST(waitid(P_PID, kid[i], &si, WSTOPPED | WNOWAIT) == 0);
		MUST(si.si_code == CLD_STOPPED && si.si_status == stop_sig[i]);
	}
	MUST(kill(kid[1], SIGSTOP) == 0);
	MUST(syscall(SYS_tkill, kid[1], SIGSTOP) == 0);
	for (int i = 0; i < N; i++) {
		MUST(write(pipes[i][1], "x", 1) == 1);
		close(pipes[i][1]);
	}

	prog_ready();
	if (wait_for_signal())
		kill(kid[0], SIGCONT);

	for (int i = 0; i < N; i++) {
		if (!await_stop(kid[i])) {
			failf("S%d (%d): state %c, not stopped", i, kid[i], state_of(kid[i]));
			continue;
		}
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, kid[i], &si, WSTOPPED | WEXITED | WNOWAIT | WNOHANG) != 0)
			failf("S%d (%d): waitid: %s", i, kid[i], strerror(errno));
		else if (si.si_code != CLD_STOPPED || si.si_status != stop_sig[i])
			failf("S%d (%d): waitid reports code %d status %d, want stopped by %d", i, kid[i], si.si_code,
			      si.si_status, stop_sig[i]);
	}
	for (int i = 0; i < N; i++)
		kill(kid[i], SIGCONT);
	for (int i = 0; i < N; i++) {
		if (waitpid(kid[i], &status, 0) != kid[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failf("S%d (%d): status 0x%x, want exit 0 after SIGCONT", i, kid[i], status);
	}
	return prog_finish();
}
