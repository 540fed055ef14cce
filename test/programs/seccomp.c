/* seccomp: a filter chain installed by the main thread before a second thread
 * starts (so the thread inherits it), plus one more filter on the main thread
 * only. The filters make getppid() fail with EPERM (chain 1) and
 * getpgid(0) fail with EACCES (main thread's extra filter). After restore the
 * mode and filter count of each thread (/proc/self/task/N/status) and the
 * filters' effects must be the same. SIGUSR2: check as if the extra filter were
 * gone (FAIL). */
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int install(int nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p);
}

static volatile int thread_result = -1;
static volatile int stop;

static int effects_ok(const char *who, int extra)
{
	int ok = 1;

	errno = 0;
	if (syscall(SYS_getppid) != -1 || errno != EPERM) {
		failf("%s: getppid is not blocked with EPERM", who);
		ok = 0;
	}
	errno = 0;
	long r = syscall(SYS_getpgid, 0);
	if (extra && (r != -1 || errno != EACCES)) {
		failf("%s: getpgid(0) is not blocked with EACCES", who);
		ok = 0;
	}
	if (!extra && r == -1) {
		failf("%s: getpgid(0) is blocked", who);
		ok = 0;
	}
	return ok;
}

static void *worker(void *arg)
{
	(void)arg;
	while (!stop)
		usleep(10000);
	thread_result = effects_ok("thread", 0);
	return NULL;
}

static int status_field(pid_t tid, const char *key)
{
	char path[64], line[256];
	int v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = atoi(line + strlen(key));
	fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	pthread_t th;
	pid_t main_tid = (pid_t)syscall(SYS_gettid);
	int corrupt;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	MUST(install(SYS_getppid, EPERM) == 0);
	MUST(pthread_create(&th, NULL, worker, NULL) == 0);
	MUST(install(SYS_getpgid, EACCES) == 0);
	MUST(status_field(main_tid, "Seccomp:") == 2);
	MUST(effects_ok("main (setup)", 1));
	prog_ready();
	corrupt = wait_for_signal();
	if (status_field(main_tid, "Seccomp:") != 2)
		failf("main thread: seccomp mode is no longer filter");
	if (status_field(main_tid, "Seccomp_filters:") != 2)
		failf("main thread: %d filters, want 2", status_field(main_tid, "Seccomp_filters:"));
	effects_ok("main", !corrupt);
	stop = 1;
	pthread_join(th, NULL);
	if (thread_result != 1)
		failf("the thread's filters changed");
	return prog_finish();
}
