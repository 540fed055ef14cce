/*
 * timers: interval timers and POSIX timers.
 *
 *   - ITIMER_REAL, 50 ms interval: SIGALRM handler counts;
 *   - POSIX timer 1: CLOCK_MONOTONIC, SIGEV_SIGNAL with SIGRTMIN+2 and
 *     sival_int 0x7100, 30 ms interval; an SA_SIGINFO handler counts, and
 *     counts separately any signal whose si_code/sival/si_timerid is wrong;
 *   - POSIX timer 2: CLOCK_REALTIME, SIGEV_THREAD_ID aimed at the main
 *     thread with SIGRTMIN+3 and sival_int 0x7200, 40 ms interval;
 *   - POSIX timer 3: CLOCK_MONOTONIC, SIGEV_NONE, one shot 1000 s away: its
 *     remaining time must be less than before and more than 0;
 *   - POSIX timer 4: CLOCK_BOOTTIME, SIGEV_SIGNAL, disarmed (created only):
 *     it must still exist, disarmed.
 * The timer_t values (kernel timer ids) are remembered: after restore the
 * same ids must still work (timer_gettime), the intervals must be the same,
 * and every counter must keep increasing for ~300 ms after SIGUSR1.
 * SIGUSR2: timer 1 is disarmed first -> its interval is 0 and it stops.
 */
#include "common.h"

#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#define NTIMERS 4
#define SIG1 (SIGRTMIN + 2)
#define SIG2 (SIGRTMIN + 3)
#define VAL1 0x7100
#define VAL2 0x7200

static volatile sig_atomic_t n_alarm, n_t1, n_t2, bad_t1, bad_t2;
static volatile int bad_code1, bad_val1, bad_code2, bad_val2;
static timer_t tid[NTIMERS];
static int kid[NTIMERS]; /* the kernel's ids, as si_timerid reports them */
static pid_t main_tid;

static long long ns_of(const struct timespec *t)
{
	return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void on_alarm(int sig)
{
	(void)sig;
	n_alarm++;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIG1) {
		if (si->si_code != SI_TIMER || si->si_timerid != kid[0]) {
			bad_t1++;
			bad_code1 = si->si_code;
		} else if (si->si_value.sival_int != VAL1) {
			bad_t1++;
			bad_val1 = si->si_value.sival_int;
		} else {
			n_t1++;
		}
	} else {
		if (si->si_code != SI_TIMER || si->si_timerid != kid[1] || (pid_t)syscall(SYS_gettid) != main_tid) {
			bad_t2++;
			bad_code2 = si->si_code;
		} else if (si->si_value.sival_int != VAL2) {
			bad_t2++;
			bad_val2 = si->si_value.sival_int;
		} else {
			n_t2++;
		}
	}
}

/* Sleeps ms milliseconds of CLOCK_MONOTONIC time, through signal interruptions. */
static void sleep_ms(long ms)
{
	struct timespec end, now;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	do {
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (ns_of(&now) < ns_of(&end));
}

static void arm(timer_t t, long value_ms, long interval_ms)
{
	struct itimerspec its = {
		.it_value = { value_ms / 1000, (value_ms % 1000) * 1000000L },
		.it_interval = { interval_ms / 1000, (interval_ms % 1000) * 1000000L },
	};

	MUST(timer_settime(t, 0, &its, NULL) == 0);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct sigevent ev;
	struct itimerval itv;
	struct itimerspec its, t3_before;
	static const clockid_t clocks[NTIMERS] = { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_MONOTONIC,
						   CLOCK_BOOTTIME };
	static const long want_interval_ms[NTIMERS] = { 30, 40, 0, 0 };
	int corrupt;
	long before_alarm, before_t1, before_t2;

	(void)argc;
	(void)argv;
	prog_init();
	main_tid = (pid_t)syscall(SYS_gettid);

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	MUST(sigaction(SIGALRM, &sa, NULL) == 0);
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	MUST(sigaction(SIG1, &sa, NULL) == 0);
	MUST(sigaction(SIG2, &sa, NULL) == 0);

	/* 1: a plain signal with a value */
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIG1;
	ev.sigev_value.sival_int = VAL1;
	MUST(timer_create(clocks[0], &ev, &tid[0]) == 0);
	/* 2: aimed at this thread */
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIG2;
	ev.sigev_value.sival_int = VAL2;
	ev._sigev_un._tid = main_tid;
	MUST(timer_create(clocks[1], &ev, &tid[1]) == 0);
	/* 3: no notification, a long one shot */
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_NONE;
	MUST(timer_create(clocks[2], &ev, &tid[2]) == 0);
	/* 4: created, never armed */
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 4;
	MUST(timer_create(clocks[3], &ev, &tid[3]) == 0);
	/* For SIGEV_SIGNAL/THREAD_ID timers glibc's timer_t is the kernel id. */
	for (int i = 0; i < NTIMERS; i++)
		kid[i] = (int)(intptr_t)tid[i];

	arm(tid[0], 30, want_interval_ms[0]);
	arm(tid[1], 40, want_interval_ms[1]);
	arm(tid[2], 1000000, 0);
	itv.it_value.tv_sec = 0;
	itv.it_value.tv_usec = 50000;
	itv.it_interval = itv.it_value;
	MUST(setitimer(ITIMER_REAL, &itv, NULL) == 0);

	/* Everything fires at least twice before READY. */
	while (n_alarm < 2 || n_t1 < 2 || n_t2 < 2)
		sleep_ms(10);
	MUST(timer_gettime(tid[2], &t3_before) == 0);
	printf("timers: ids %d %d %d %d; t3 remaining %lld ns\n", kid[0], kid[1], kid[2], kid[3],
	       ns_of(&t3_before.it_value));
	prog_ready();

	corrupt = wait_for_signal();
	if (corrupt)
		arm(tid[0], 0, 0);

	before_alarm = n_alarm;
	before_t1 = n_t1;
	before_t2 = n_t2;
	sleep_ms(300);

	if (n_alarm < before_alarm + 2)
		failf("ITIMER_REAL (50 ms): %ld SIGALRMs in 300 ms", (long)(n_alarm - before_alarm));
	if (n_t1 < before_t1 + 2)
		failf("timer 1 (%d, 30 ms): %ld signals in 300 ms", kid[0], (long)(n_t1 - before_t1));
	if (n_t2 < before_t2 + 2)
		failf("timer 2 (%d, thread-directed, 40 ms): %ld signals in 300 ms", kid[1], (long)(n_t2 - before_t2));
	if (bad_t1)
		failf("timer 1: %d signals with a wrong si_code/timerid (last code %d) or sival (last 0x%x)", (int)bad_t1,
		      bad_code1, bad_val1);
	if (bad_t2)
		failf("timer 2: %d signals with a wrong si_code/timerid/thread (last code %d) or sival (last 0x%x)",
		      (int)bad_t2, bad_code2, bad_val2);

	MUST(getitimer(ITIMER_REAL, &itv) == 0);
	if (itv.it_interval.tv_sec != 0 || itv.it_interval.tv_usec != 50000)
		failf("ITIMER_REAL interval %ld.%06ld s, want 0.050000", (long)itv.it_interval.tv_sec,
		      (long)itv.it_interval.tv_usec);
	if (itv.it_value.tv_sec == 0 && itv.it_value.tv_usec == 0)
		failf("ITIMER_REAL is disarmed");

	for (int i = 0; i < NTIMERS; i++) {
		if (timer_gettime(tid[i], &its) != 0) {
			failf("timer %d (id %d): timer_gettime: %s", i + 1, kid[i], strerror(errno));
			continue;
		}
		if (ns_of(&its.it_interval) != want_interval_ms[i] * 1000000LL)
			failf("timer %d (id %d): interval %lld ns, want %ld ms", i + 1, kid[i], ns_of(&its.it_interval),
			      want_interval_ms[i]);
		if (i < 3 && ns_of(&its.it_value) == 0)
			failf("timer %d (id %d): disarmed", i + 1, kid[i]);
		if (i == 3 && ns_of(&its.it_value) != 0)
			failf("timer 4 (id %d): armed (%lld ns), was disarmed", kid[i], ns_of(&its.it_value));
		if (i == 2 && (ns_of(&its.it_value) >= ns_of(&t3_before.it_value) ||
			       ns_of(&its.it_value) < ns_of(&t3_before.it_value) - 120 * 1000000000LL))
			failf("timer 3 (id %d, SIGEV_NONE): %lld ns left, %lld ns before", kid[i], ns_of(&its.it_value),
			      ns_of(&t3_before.it_value));
	}
	/* Stop them all before printing the verdict. */
	itv.it_value.tv_sec = itv.it_value.tv_usec = 0;
	itv.it_interval = itv.it_value;
	setitimer(ITIMER_REAL, &itv, NULL);
	for (int i = 0; i < NTIMERS; i++)
		timer_delete(tid[i]);
	return prog_finish();
}
