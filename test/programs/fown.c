/* fown: owners of files' signals (F_SETOWN_EX, F_SETSIG, O_ASYNC).
 *   - a pipe whose read end r has O_ASYNC, owner this process (set while the euid
 *     was 1, as F_GETOWNER_UIDS tells) and signal SIGRTMIN+2;
 *   - a file f with F_SETSIG SIGRTMIN+3 and no owner;
 *   - a pipe end w2 owned by the process group (F_OWNER_PGRP).
 * After restore each keeps its owner, uids, signal and O_ASYNC, and a write to the
 * pipe brings SIGRTMIN+2 with si_fd r. SIGUSR2: r's owner is dropped (FAIL). */
#include "common.h"
#include <fcntl.h>

#ifndef F_GETOWNER_UIDS
#define F_GETOWNER_UIDS 17
#endif

static volatile sig_atomic_t got, got_fd;

static void on_io(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	got++;
	got_fd = si->si_fd;
}

static void want_owner(int fd, const char *what, int type, pid_t pid)
{
	struct f_owner_ex o = { 0 };

	if (fcntl(fd, F_GETOWN_EX, &o) || o.type != type || o.pid != pid)
		failf("%s: owner %d/%d, want %d/%d", what, o.type, o.pid, type, pid);
}

int main(int argc, char **argv)
{
	int p[2], q[2], f, corrupt;
	char path[4096];
	struct sigaction sa;
	struct f_owner_ex me = { F_OWNER_PID, 0 }, grp = { F_OWNER_PGRP, 0 };
	unsigned uids[2] = { 9, 9 };

	prog_init();
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_io;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	MUST(sigaction(SIGRTMIN + 2, &sa, NULL) == 0);
	MUST(pipe(p) == 0 && pipe(q) == 0);
	me.pid = getpid();
	grp.pid = getpgrp();
	MUST(setresuid(-1, 1, -1) == 0);
	MUST(fcntl(p[0], F_SETOWN_EX, &me) == 0);
	MUST(setresuid(-1, 0, -1) == 0);
	MUST(fcntl(p[0], F_SETSIG, SIGRTMIN + 2) == 0 && fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC) == 0);
	snprintf(path, sizeof(path), "%s/fown.dat", prog_dir(argc, argv));
	MUST((f = open(path, O_RDWR | O_CREAT, 0600)) >= 0 && fcntl(f, F_SETSIG, SIGRTMIN + 3) == 0);
	MUST(fcntl(q[1], F_SETOWN_EX, &grp) == 0);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		fcntl(p[0], F_SETOWN, 0);
	want_owner(p[0], "r", F_OWNER_PID, getpid());
	if (fcntl(p[0], F_GETOWNER_UIDS, uids) || uids[0] != 0 || uids[1] != 1)
		failf("r: owner uids %u/%u, want 0/1", uids[0], uids[1]);
	if (fcntl(p[0], F_GETSIG) != SIGRTMIN + 2 || !(fcntl(p[0], F_GETFL) & O_ASYNC))
		failf("r: signal %d, O_ASYNC %s", fcntl(p[0], F_GETSIG), fcntl(p[0], F_GETFL) & O_ASYNC ? "set" : "clear");
	if (fcntl(f, F_GETSIG) != SIGRTMIN + 3)
		failf("f: signal %d, want %d", fcntl(f, F_GETSIG), SIGRTMIN + 3);
	struct f_owner_ex none = { 0 };
	if (fcntl(f, F_GETOWN_EX, &none) || none.pid != 0)
		failf("f: owner %d, want none", none.pid);
	want_owner(q[1], "w2", F_OWNER_PGRP, getpgrp());
	got = 0;
	if (write(p[1], "x", 1) != 1)
		failf("cannot write to the pipe");
	for (int i = 0; i < 1000 && !got; i++)
		usleep(1000);
	if (got != 1 || got_fd != p[0])
		failf("%d signals for the pipe (fd %d), want 1 for fd %d", (int)got, (int)got_fd, p[0]);
	return prog_finish();
}
