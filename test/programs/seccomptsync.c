/*
 * seccomptsync: threads that share one seccomp filter, as the kernel knows
 * it (a filter added later with SECCOMP_FILTER_FLAG_TSYNC needs every
 * thread's filter to be an ancestor of the caller's).
 *
 * The root installs F1 (getppid fails with EPERM) and starts two threads,
 * which inherit it. A child process does the same, but one of its threads
 * adds a filter of its own (getsid fails with ENOENT).
 * On SIGUSR1: the root adds F2 (getpgid fails with EACCES) with TSYNC, which
 * must succeed and reach both threads; in the child the same TSYNC must fail
 * and name the thread with its own filter, and change nothing.
 * Before all that, the root installs two filters on getuid, ENOENT then ESRCH:
 * the newer one's errno wins, which only holds if they come back in order.
 * SIGUSR2: a thread of the root adds a filter of its own first, so its TSYNC
 * fails.
 */
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static long install(int nr, int err, unsigned flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: threads ready; 2: own filter wanted; 3: own filter in; 4: check; 5: checked */
static int nready, nchecked;
static pid_t tids[2];
static int own_filter[2];
static int blocked[2]; /* did getpgid fail with EACCES in the thread */

static void wait_phase(int p)
{
	while (phase < p)
		pthread_cond_wait(&cv, &mu);
}

static void *thread(void *arg)
{
	int i = (int)(long)arg;

	pthread_mutex_lock(&mu);
	tids[i] = (pid_t)syscall(SYS_gettid);
	if (own_filter[i])
		MUST(install(SYS_getsid, ENOENT, 0) == 0);
	nready++;
	pthread_cond_broadcast(&cv);
	wait_phase(2);
	if (phase == 2 && i == 0 && !own_filter[0]) {
		install(SYS_getsid, ENOENT, 0);
		phase = 3;
		pthread_cond_broadcast(&cv);
	}
	wait_phase(4);
	errno = 0;
	blocked[i] = syscall(SYS_getpgid, 0) == -1 && errno == EACCES;
	nchecked++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* Installs F1 and starts the threads (which inherit it). */
static void start(pthread_t th[2])
{
	MUST(install(SYS_getppid, EPERM, 0) == 0);
	for (long i = 0; i < 2; i++)
		MUST(pthread_create(&th[i], NULL, thread, (void *)i) == 0);
	pthread_mutex_lock(&mu);
	while (nready < 2)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void check_threads(const char *who, int want_blocked, pthread_t th[2])
{
	pthread_mutex_lock(&mu);
	phase = 4;
	pthread_cond_broadcast(&cv);
	while (nchecked < 2)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		if (blocked[i] != want_blocked)
			failf("%s: thread %d (%d): getpgid %s blocked by the TSYNC filter", who, i, tids[i],
			      blocked[i] ? "is" : "is not");
	}
}

int main(int argc, char **argv)
{
	pthread_t th[2];
	pid_t child;
	int status, corrupt;
	long r;

	(void)argc;
	(void)argv;
	prog_init();
	MUST(install(SYS_getuid, ENOENT, 0) == 0);
	MUST(install(SYS_getuid, ESRCH, 0) == 0);
	errno = 0;
	MUST(syscall(SYS_getuid) == -1 && errno == ESRCH);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		own_filter[1] = 1;
		start(th);
		wait_for_signal();
		r = install(SYS_getpgid, EACCES, SECCOMP_FILTER_FLAG_TSYNC);
		if (r != tids[1])
			failf("child: TSYNC returned %ld, want %d (the thread with a filter of its own)", r, tids[1]);
		check_threads("child", 0, th);
		_exit(common_fail_count ? 1 : 0);
	}
	start(th);
	prog_ready();
	corrupt = wait_for_signal();
	kill(child, SIGUSR1);
	errno = 0;
	if (syscall(SYS_getuid) != -1 || errno != ESRCH)
		failf("root: getuid fails with %s, want ESRCH (the newer of its two filters)", strerror(errno));
	if (corrupt) {
		pthread_mutex_lock(&mu);
		phase = 2;
		pthread_cond_broadcast(&cv);
		wait_phase(3);
		pthread_mutex_unlock(&mu);
	}
	r = install(SYS_getpgid, EACCES, SECCOMP_FILTER_FLAG_TSYNC);
	if (r != 0)
		failf("root: TSYNC returned %ld (%s), want 0: the threads' filters are not shared", r,
		      r < 0 ? strerror(errno) : "a thread's tid");
	check_threads("root", r == 0, th);
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("child (%d): status 0x%x, want exit 0", child, status);
	return prog_finish();
}
