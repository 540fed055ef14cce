/* leases: file leases (F_SETLEASE) and shared flocks of separate descriptions.
 *   - a: a read lease on an O_RDONLY fd; b: a write lease on an O_WRONLY fd;
 *   - c1, c2: two opens of one file, each with a read lease; c3: a third, none;
 *   - d: a write lease (F_SETSIG SIGRTMIN+1) being broken to a read lease by an
 *     O_RDONLY open; e: a read lease (SIGIO) being broken to none by an O_WRONLY one;
 *   - f1, f2: two opens of one file, each holding flock(LOCK_SH).
 * After restore F_GETLEASE says what it said (the target type of a lease being
 * broken), d and e are still being broken, no break signal came again, and with
 * f1 closed f2's shared flock still keeps LOCK_EX out. SIGUSR2: a's lease is
 * given up first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>

static volatile sig_atomic_t breaks;
static char dir[4096];

static void on_break(int sig)
{
	(void)sig;
	breaks++;
}

static int open_in(const char *name, int flags)
{
	char p[4200];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return open(p, flags | O_CREAT, 0644);
}

static void want_lease(int fd, const char *what, int want)
{
	int got = fcntl(fd, F_GETLEASE);

	if (got != want)
		failf("%s: F_GETLEASE %d, want %d", what, got, want);
}

static void want_breaking(int fd, const char *what)
{
	char p[64], text[1024] = "";
	int f;

	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	if ((f = open(p, O_RDONLY)) >= 0) {
		read(f, text, sizeof(text) - 1);
		close(f);
	}
	if (!strstr(text, "LEASE  BREAKING"))
		failf("%s: its lease is not being broken: %s", what, text);
}

/* A new open of file `name` tries flock(LOCK_EX) in a child: 1 when it got it. */
static int exclusive_possible(const char *name)
{
	int st;
	pid_t c = fork();

	if (c == 0) {
		int fd = open_in(name, O_RDONLY);
		_exit(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
	}
	return waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
	int a, b, c1, c2, c3, d, e, f1, f2, corrupt;
	struct sigaction sa;

	prog_init();
	snprintf(dir, sizeof(dir), "%s", prog_dir(argc, argv));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_break;
	MUST(sigaction(SIGIO, &sa, NULL) == 0 && sigaction(SIGRTMIN + 1, &sa, NULL) == 0);

	MUST((a = open_in("lease-a", O_RDONLY)) >= 0 && fcntl(a, F_SETLEASE, F_RDLCK) == 0);
	MUST((b = open_in("lease-b", O_WRONLY)) >= 0 && fcntl(b, F_SETLEASE, F_WRLCK) == 0);
	MUST((c1 = open_in("lease-c", O_RDONLY)) >= 0 && (c2 = open_in("lease-c", O_RDONLY)) >= 0 && (c3 = open_in("lease-c", O_RDONLY)) >= 0);
	MUST(fcntl(c1, F_SETLEASE, F_RDLCK) == 0 && fcntl(c2, F_SETLEASE, F_RDLCK) == 0);
	MUST((d = open_in("lease-d", O_WRONLY)) >= 0 && fcntl(d, F_SETLEASE, F_WRLCK) == 0 && fcntl(d, F_SETSIG, SIGRTMIN + 1) == 0);
	MUST(open_in("lease-d", O_RDONLY | O_NONBLOCK) == -1 && errno == EWOULDBLOCK);
	MUST((e = open_in("lease-e", O_RDONLY)) >= 0 && fcntl(e, F_SETLEASE, F_RDLCK) == 0);
	MUST(open_in("lease-e", O_WRONLY | O_NONBLOCK) == -1 && errno == EWOULDBLOCK);
	MUST((f1 = open_in("flock-f", O_RDONLY)) >= 0 && (f2 = open_in("flock-f", O_RDONLY)) >= 0);
	MUST(flock(f1, LOCK_SH) == 0 && flock(f2, LOCK_SH) == 0);
	/* Both break signals are in before READY. */
	for (int i = 0; i < 1000 && breaks < 2; i++)
		usleep(1000);
	MUST(breaks == 2);

	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		fcntl(a, F_SETLEASE, F_UNLCK);
	want_lease(a, "a", F_RDLCK);
	want_lease(b, "b", F_WRLCK);
	want_lease(c1, "c1", F_RDLCK);
	want_lease(c2, "c2", F_RDLCK);
	want_lease(c3, "c3", F_UNLCK);
	want_lease(d, "d", F_RDLCK);
	want_lease(e, "e", F_UNLCK);
	want_breaking(d, "d");
	want_breaking(e, "e");
	usleep(20000);
	if (breaks != 2)
		failf("%d lease break signals, want the 2 from before the dump", (int)breaks);
	close(f1);
	if (exclusive_possible("flock-f"))
		failf("f2's shared flock is gone");
	return prog_finish();
}
