/*
 * bench threads target: one process with 1 + N threads (default N=99: 100).
 * The workers wait in turn in
 *   0  pthread_cond_wait (futex)
 *   1  a nanosleep loop (10 ms), counting its wake-ups
 *   2  sigsuspend, woken by SIGUSR2 (blocked outside sigsuspend)
 *   3  sem_wait (futex)
 * Each worker keeps a TLS value and its tid. The main thread prints
 * "READY <n> threads" once all workers are in place, then waits for SIGUSR1
 * in sigsuspend. On SIGUSR1 it checks that the sleepers still count (their
 * counters advance within 0.5 s), wakes every worker, joins them all (each
 * checks its TLS value and tid) and exits 0 with "OK ...", or 1 with "BAD ...".
 *
 * Usage: threads-target [N]      (compiled by bench/bench.mjs with -pthread)
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAXT 4096
enum { K_COND, K_SLEEP, K_SIGSUSPEND, K_SEM, NKINDS };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sem_t sem;
static volatile int stop;
static volatile int ready;
static volatile sig_atomic_t got_usr1;
static volatile unsigned long counters[MAXT];
static volatile sig_atomic_t woken[MAXT];
static pid_t tids[MAXT];
static pthread_t threads[MAXT];
static __thread long tls_index = -1;
static sigset_t waitmask2; /* the mask in a K_SIGSUSPEND worker's sigsuspend */

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	if (tls_index >= 0)
		woken[tls_index] = 1;
}

static void *worker(void *arg)
{
	long i = (long)arg;
	int kind = (int)(i % NKINDS);
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	tls_index = i;
	tids[i] = (pid_t)syscall(SYS_gettid);
	switch (kind) {
	case K_COND:
		pthread_mutex_lock(&mu);
		__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
		while (!stop)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		break;
	case K_SLEEP:
		__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
		while (!stop) {
			nanosleep(&ts, NULL);
			counters[i]++;
		}
		break;
	case K_SIGSUSPEND:
		__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
		while (!woken[i])
			sigsuspend(&waitmask2);
		break;
	case K_SEM:
		__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
		while (sem_wait(&sem) < 0 && errno == EINTR)
			;
		break;
	}
	if (tls_index != i) {
		printf("BAD thread %ld: TLS index %ld\n", i, tls_index);
		return (void *)1;
	}
	if ((pid_t)syscall(SYS_gettid) != tids[i]) {
		printf("BAD thread %ld: tid %ld, was %d\n", i, (long)syscall(SYS_gettid), tids[i]);
		return (void *)1;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 99;
	int bad = 0;

	if (n < 0 || n > MAXT) {
		fprintf(stderr, "usage: %s [N]\n", argv[0]);
		return 2;
	}
	sem_init(&sem, 0, 0);

	/* SIGUSR1 and SIGUSR2 blocked in every thread but in sigsuspend. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	waitmask2 = old;
	sigaddset(&waitmask2, SIGUSR1);
	sigdelset(&waitmask2, SIGUSR2);
	sigset_t waitmask1 = old;
	sigdelset(&waitmask1, SIGUSR1);
	sigaddset(&waitmask1, SIGUSR2);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	for (long i = 0; i < n; i++) {
		int e = pthread_create(&threads[i], &attr, worker, (void *)i);
		if (e) {
			fprintf(stderr, "pthread_create %ld: error %d\n", i, e);
			return 2;
		}
	}
	while (__atomic_load_n(&ready, __ATOMIC_SEQ_CST) < n)
		usleep(1000);
	printf("READY %d threads\n", n + 1);
	fflush(stdout);

	while (!got_usr1)
		sigsuspend(&waitmask1);

	/* The sleepers must still run: every counter moves within 0.5 s. */
	static unsigned long before[MAXT];
	for (int i = 0; i < n; i++)
		before[i] = counters[i];
	for (int tries = 0; tries < 50; tries++) {
		int still = 0;
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		for (int i = K_SLEEP; i < n; i += NKINDS)
			still += counters[i] == before[i];
		if (!still)
			break;
		nanosleep(&ts, NULL);
	}
	for (int i = K_SLEEP; i < n; i += NKINDS)
		if (counters[i] == before[i]) {
			printf("BAD thread %d (nanosleep loop) did not count on\n", i);
			bad = 1;
		}

	pthread_mutex_lock(&mu);
	stop = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = K_SEM; i < n; i += NKINDS)
		sem_post(&sem);
	for (int i = K_SIGSUSPEND; i < n; i += NKINDS)
		pthread_kill(threads[i], SIGUSR2);
	for (int i = 0; i < n; i++) {
		void *ret;
		int e = pthread_join(threads[i], &ret);

		if (e || ret) {
			printf("BAD thread %d: join error %d, result %p\n", i, e, ret);
			bad = 1;
		}
	}
	if (bad) {
		fflush(stdout);
		return 1;
	}
	printf("OK %d threads joined, all fine\n", n + 1);
	fflush(stdout);
	return 0;
}
