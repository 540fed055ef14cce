/* A POSIX timer firing every 100 us (SIGEV_SIGNAL, SA_SIGINFO): signals arrive
 * while cryo drives the task, so some are taken by a delivery stop. Each must
 * still reach the handler as the timer's (SI_TIMER, the timer id, its value),
 * never as a plain kill(). SIGUSR2: count one wrong signal (FAIL). */
#include "common.h"
#include <time.h>

#define SIG (SIGRTMIN + 1)

static timer_t tid;
static volatile sig_atomic_t good, bad, bad_code;

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER || si->si_timerid != tid || si->si_value.sival_int != 0x5157) {
		bad++;
		bad_code = si->si_code;
	} else {
		good++;
	}
}

int main(void)
{
	struct sigaction sa;
	struct sigevent ev;
	int corrupt;

	prog_init();
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_timer;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	MUST(sigaction(SIG, &sa, NULL) == 0);
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIG;
	ev.sigev_value.sival_int = 0x5157;
	MUST(timer_create(CLOCK_MONOTONIC, &ev, &tid) == 0);
	struct itimerspec its = { { 0, 100000 }, { 0, 100000 } };
	MUST(timer_settime(tid, 0, &its, NULL) == 0);
	while (good < 100)
		usleep(1000);
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		bad++;
	sig_atomic_t before = good;
	usleep(20000);
	if (good <= before)
		failf("the timer stopped firing");
	if (bad)
		failf("%d timer signals arrived as something else (last si_code %d)", (int)bad, (int)bad_code);
	return prog_finish();
}
