/* Threads: a condition-variable waiter (futex), a sleeper (nanosleep), a spinner,
 * each with its own TLS value, name, tid and signal mask; one with a sigaltstack.
 * After restore the sleeper and spinner must keep running, and every thread must
 * find its own state intact. SIGUSR2: a thread corrupts its TLS value -> FAIL. */
#include "common.h"
#include <pthread.h>
#include <sys/syscall.h>

#define NWORKERS 3
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile int stop;
static volatile int corrupt;
static volatile unsigned long counters[NWORKERS];
static __thread unsigned long tls_value;
static pid_t tids[NWORKERS];
static char altstack[65536];

static const char *names[NWORKERS] = { "cryo-cond", "cryo-sleep", "cryo-spin" };

static void *worker(void *arg)
{
	long i = (long)arg;
	char name[16];
	sigset_t mask, now;
	stack_t ss;
	int ok = 1;

	tls_value = 0x5eed0000 + i;
	tids[i] = (pid_t)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), names[i]);
	/* Each thread blocks one more signal of its own. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGRTMIN + (int)i);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	if (i == 1) {
		ss.ss_sp = altstack;
		ss.ss_size = sizeof(altstack);
		ss.ss_flags = 0;
		sigaltstack(&ss, NULL);
	}
	if (i == 0) {
		pthread_mutex_lock(&mu);
		while (!stop)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
	} else if (i == 1) {
		while (!stop) {
			usleep(5000);
			counters[i]++;
		}
	} else {
		while (!stop)
			counters[i]++;
	}
	if (corrupt && i == 2)
		tls_value++;
	if (tls_value != 0x5eed0000UL + (unsigned long)i) {
		failf("thread %ld: TLS value 0x%lx", i, tls_value);
		ok = 0;
	}
	if ((pid_t)syscall(SYS_gettid) != tids[i]) {
		failf("thread %ld: tid changed", i);
		ok = 0;
	}
	pthread_getname_np(pthread_self(), name, sizeof(name));
	if (strcmp(name, names[i])) {
		failf("thread %ld: name is '%s'", i, name);
		ok = 0;
	}
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	if (!sigismember(&now, SIGRTMIN + (int)i) || sigismember(&now, SIGRTMIN + (int)((i + 1) % NWORKERS))) {
		failf("thread %ld: signal mask changed", i);
		ok = 0;
	}
	if (i == 1) {
		sigaltstack(NULL, &ss);
		if (ss.ss_sp != altstack || ss.ss_size != sizeof(altstack)) {
			failf("thread 1: sigaltstack changed");
			ok = 0;
		}
	}
	return (void *)(long)ok;
}

int main(int argc, char **argv)
{
	pthread_t th[NWORKERS];
	unsigned long before[NWORKERS];

	(void)argc;
	(void)argv;
	prog_init();
	for (long i = 0; i < NWORKERS; i++)
		MUST(pthread_create(&th[i], NULL, worker, (void *)i) == 0);
	while (!counters[1] || !counters[2])
		usleep(1000);
	prog_ready();
	corrupt = wait_for_signal();
	/* The sleeper and the spinner run on after restore. */
	for (int i = 1; i < NWORKERS; i++)
		before[i] = counters[i];
	usleep(200000);
	for (int i = 1; i < NWORKERS; i++)
		if (counters[i] == before[i])
			failf("thread %d (%s) does not run", i, names[i]);
	pthread_mutex_lock(&mu);
	stop = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < NWORKERS; i++) {
		void *r;
		MUST(pthread_join(th[i], &r) == 0);
	}
	return prog_finish();
}
