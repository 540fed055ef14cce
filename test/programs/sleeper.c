/*
 * sleeper: the main loop sleeps 100 ms per iteration and prints "tick N".
 * Odd iterations use a relative nanosleep() (restarted through
 * restart_syscall), even ones an absolute clock_nanosleep(CLOCK_MONOTONIC,
 * TIMER_ABSTIME) (restarted as the same call), so a checkpoint lands in one
 * of the two. After a restore the loop must go on ticking at the same pace:
 * no crash, no error from the sleep, no busy loop. On SIGUSR1 it checks that
 * it ticked at least 3 times and that no iteration returned early without a
 * signal, and prints PASS. (The harness checks that the ticks went on after
 * the restore and are consecutive.)
 */
#include "common.h"

#include <time.h>

#define STEP_NS 100000000L

static long ns_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

int main(int argc, char **argv)
{
	sigset_t open_usr;
	struct timespec start, deadline, req;
	long ticks = 0, early = 0, errors = 0, last_err = 0;
	int r;

	(void)argc;
	(void)argv;
	prog_init();
	/* Here the signals must interrupt the sleep: unblock them. The flag is
	 * checked after every sleep, so a signal is never lost for long. */
	sigemptyset(&open_usr);
	sigaddset(&open_usr, SIGUSR1);
	sigaddset(&open_usr, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &open_usr, NULL);

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	while (!got_usr1 && !got_usr2) {
		ticks++;
		printf("tick %ld\n", ticks);
		fflush(stdout);
		if (ticks == 1)
			prog_ready();

		clock_gettime(CLOCK_MONOTONIC, &start);
		if (ticks % 2) {
			req.tv_sec = 0;
			req.tv_nsec = STEP_NS;
			while ((r = nanosleep(&req, &req)) == -1 && errno == EINTR && !got_usr1 &&
			       !got_usr2)
				;
			if (r)
				r = errno;
		} else {
			deadline = start;
			deadline.tv_nsec += STEP_NS;
			if (deadline.tv_nsec >= 1000000000L) {
				deadline.tv_sec++;
				deadline.tv_nsec -= 1000000000L;
			}
			while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL)) ==
				       EINTR &&
			       !got_usr1 && !got_usr2)
				;
		}
		if (got_usr1 || got_usr2)
			break;
		if (r) {
			errors++;
			last_err = r;
		}
		if (ns_since(&start) < STEP_NS * 9 / 10)
			early++;
	}

	if (got_usr2)
		early += 1000;
	if (ticks < 3)
		failf("only %ld ticks", ticks);
	if (errors)
		failf("%ld sleeps failed, last with %s", errors, strerror(last_err));
	if (early)
		failf("%ld of %ld sleeps returned early without a signal", early, ticks);
	return prog_finish();
}
