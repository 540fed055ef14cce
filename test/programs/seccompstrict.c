/* seccompstrict: a thread in SECCOMP_MODE_STRICT, where only read, write,
 * _exit and sigreturn are allowed, echoing bytes from one pipe to another. Every
 * other call cryo makes that thread do (the check feature seccomp_suspend:
 * PTRACE_O_SUSPEND_SECCOMP) would kill it. After restore the thread must still
 * be in strict mode (Seccomp: 1) and still echo. SIGUSR2: look for mode 0
 * instead (FAIL). */
#include "common.h"
#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int in[2], out[2];
static volatile pid_t strict_tid;

static void *echo(void *arg)
{
	char c;

	(void)arg;
	strict_tid = (pid_t)syscall(SYS_gettid);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
		syscall(SYS_exit, 2);
	for (;;) {
		if (read(in[0], &c, 1) != 1 || write(out[1], &c, 1) != 1)
			syscall(SYS_exit, 1);
	}
	return NULL;
}

/* The Seccomp: field of a thread of ours, or -1. */
static int seccomp_mode(pid_t tid)
{
	char path[64], line[256];
	int mode = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	return mode;
}

static int round_trip(char c)
{
	char back = 0;

	return write(in[1], &c, 1) == 1 && read(out[0], &back, 1) == 1 && back == c;
}

int main(int argc, char **argv)
{
	pthread_t th;
	int want = 1;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(pipe(in) == 0 && pipe(out) == 0);
	MUST(pthread_create(&th, NULL, echo, NULL) == 0);
	MUST(round_trip('a'));
	MUST(seccomp_mode(strict_tid) == 1);
	prog_ready();

	if (wait_for_signal())
		want = 0;
	if (seccomp_mode(strict_tid) != want)
		failf("thread %d: Seccomp %d, want %d", (int)strict_tid, seccomp_mode(strict_tid), want);
	if (!round_trip('b') || !round_trip('c'))
		failf("the strict thread does not echo");
	return prog_finish();
}
