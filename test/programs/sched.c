/*
 * sched: scheduling state, per thread and per process.
 *
 * Per thread (the main thread and three workers):
 *   - scheduling policy: main SCHED_OTHER, worker 0 SCHED_BATCH, worker 1
 *     SCHED_IDLE, worker 2 SCHED_RR with priority 3 and SCHED_RESET_ON_FORK;
 *   - nice: main 5, worker 0 7, worker 1 3, worker 2 2;
 *   - CPU affinity (main {0}, worker 0 {1}, worker 1 {0}, worker 2 {1}) and timer slack are
 *     set too but not checked: CRIU's images keep neither.
 * Per process: personality ADDR_NO_RANDOMIZE, oom_score_adj 500.
 * Every thread records its own state; the main thread also records the
 * workers' as seen from outside (by tid). On SIGUSR1 all is re-checked, each
 * worker by itself too. SIGUSR2: the main thread's nice becomes 6 first.
 */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define NWORKERS 3
#define NTHREADS (NWORKERS + 1) /* index 0: main */

struct tstate {
	int policy;
	int prio; /* sched_priority */
	int nice;
	cpu_set_t cpus;
	unsigned long slack;
};

static const char *tname[NTHREADS] = { "main", "worker 0 (SCHED_BATCH)", "worker 1 (SCHED_IDLE)",
					"worker 2 (SCHED_RR|SCHED_RESET_ON_FORK)" };
static const int want_policy[NTHREADS] = { SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_RR | SCHED_RESET_ON_FORK };
static const int want_prio[NTHREADS] = { 0, 0, 0, 3 };
static const int want_nice[NTHREADS] = { 5, 7, 3, 2 };
static const int want_cpu[NTHREADS] = { 0, 1, 0, 1 };
static const unsigned long want_slack[NTHREADS] = { 123456, 654321, 77777, 55555 };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nready, stop;
static pid_t tids[NTHREADS];
static int ncpus;

/* The state of thread tid (0: the caller); slack only for the caller. */
static void record(pid_t tid, struct tstate *s, int self)
{
	struct sched_param sp;

	memset(s, 0, sizeof(*s));
	s->policy = sched_getscheduler(tid);
	if (sched_getparam(tid, &sp) == 0)
		s->prio = sp.sched_priority;
	errno = 0;
	s->nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno)
		s->nice = -100;
	CPU_ZERO(&s->cpus);
	sched_getaffinity(tid, sizeof(s->cpus), &s->cpus);
	s->slack = self ? (unsigned long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) : 0;
}

/* 1 if equal; failures name the thread and how it was seen. */
static int compare(const char *who, const char *how, const struct tstate *b, const struct tstate *a)
{
	int ok = 1;

	if (a->policy != b->policy) {
		failf("%s (%s): policy %d, was %d", who, how, a->policy, b->policy);
		ok = 0;
	}
	if (a->prio != b->prio) {
		failf("%s (%s): sched_priority %d, was %d", who, how, a->prio, b->prio);
		ok = 0;
	}
	if (a->nice != b->nice) {
		failf("%s (%s): nice %d, was %d", who, how, a->nice, b->nice);
		ok = 0;
	}
	/* CPU affinity and timer slack are set but not compared: CRIU's image format
	 * (core.proto) keeps neither, so neither CRIU nor cryo restores them. */
	return ok;
}

/* Gives the calling thread the state of index i. */
static void setup_self(int i)
{
	struct sched_param sp = { .sched_priority = want_prio[i] };

	MUST(sched_setscheduler(0, want_policy[i], &sp) == 0);
	MUST(setpriority(PRIO_PROCESS, 0, want_nice[i]) == 0);
	if (ncpus >= 2) {
		cpu_set_t c;

		CPU_ZERO(&c);
		CPU_SET(want_cpu[i], &c);
		MUST(sched_setaffinity(0, sizeof(c), &c) == 0);
	}
	MUST(prctl(PR_SET_TIMERSLACK, want_slack[i], 0, 0, 0) == 0);
}

static void check_wanted(int i, const struct tstate *s)
{
	MUST(s->policy == want_policy[i] && s->prio == want_prio[i] && s->nice == want_nice[i] &&
	     /* the kernel gives real-time threads no timer slack */
	     (want_prio[i] || s->slack == want_slack[i]));
	MUST(ncpus < 2 || (CPU_COUNT(&s->cpus) == 1 && CPU_ISSET(want_cpu[i], &s->cpus)));
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	struct tstate before, after;

	tids[i] = (pid_t)syscall(SYS_gettid);
	setup_self(i);
	record(0, &before, 1);
	check_wanted(i, &before);
	pthread_mutex_lock(&mu);
	nready++;
	pthread_cond_broadcast(&cv);
	while (!stop)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	record(0, &after, 1);
	return (void *)(long)compare(tname[i], "by itself", &before, &after);
}

static int read_oom_score_adj(void)
{
	char buf[32];
	int fd = open("/proc/self/oom_score_adj", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -10000;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -10000;
	buf[n] = 0;
	return atoi(buf);
}

int main(int argc, char **argv)
{
	pthread_t th[NTHREADS];
	struct tstate before[NTHREADS], after[NTHREADS], self_before, self_after;
	int pers_before, oom_before, fd, v;

	(void)argc;
	(void)argv;
	prog_init();
	ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	tids[0] = (pid_t)syscall(SYS_gettid);

	for (long i = 1; i < NTHREADS; i++)
		MUST(pthread_create(&th[i], NULL, worker, (void *)i) == 0);
	pthread_mutex_lock(&mu);
	while (nready < NWORKERS)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);

	setup_self(0);
	MUST(personality(PER_LINUX | ADDR_NO_RANDOMIZE) != -1);
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	MUST(fd >= 0);
	MUST(write(fd, "500", 3) == 3);
	close(fd);

	record(0, &self_before, 1);
	check_wanted(0, &self_before);
	for (int i = 0; i < NTHREADS; i++)
		record(tids[i], &before[i], 0);
	pers_before = personality(0xffffffff);
	oom_before = read_oom_score_adj();
	MUST(pers_before == (PER_LINUX | ADDR_NO_RANDOMIZE) && oom_before == 500);
	printf("sched: %d cpus, tids %d %d %d %d\n", ncpus, tids[0], tids[1], tids[2], tids[3]);
	prog_ready();

	if (wait_for_signal())
		setpriority(PRIO_PROCESS, 0, want_nice[0] + 1);

	record(0, &self_after, 1);
	compare(tname[0], "by itself", &self_before, &self_after);
	for (int i = 0; i < NTHREADS; i++) {
		record(tids[i], &after[i], 0);
		compare(tname[i], "by tid from main", &before[i], &after[i]);
	}
	v = personality(0xffffffff);
	if (v != pers_before)
		failf("personality 0x%x, was 0x%x", v, pers_before);
	v = read_oom_score_adj();
	if (v != oom_before)
		failf("oom_score_adj %d, was %d", v, oom_before);

	pthread_mutex_lock(&mu);
	stop = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 1; i < NTHREADS; i++) {
		void *r;

		MUST(pthread_join(th[i], &r) == 0);
	}
	return prog_finish();
}
