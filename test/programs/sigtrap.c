/*
 * sigtrap: SIGTRAP dispositions, which a tracer's breakpoints can disturb (the
 * kernel resets the handler of a forced SIGTRAP that is blocked or ignored).
 *
 *   root - a SIGTRAP handler, SIGTRAP unblocked;
 *   A    - a SIGTRAP handler, SIGTRAP blocked;
 *   B    - SIGTRAP ignored.
 * On SIGUSR1 each checks its disposition and mask, then raises SIGTRAP (A
 * unblocks it first): the root and A must run their handler once (also for
 * an int3 of their own), B must not die. The root collects the children.
 * With argument "pending" (after the directory): the root also leaves a
 * blocked SIGTRAP pending, which cryo refuses to dump; on SIGUSR1 it checks
 * that it is still pending and then takes it with its handler.
 * SIGUSR2: the root's handler is reset to SIG_DFL first (check fails, and
 * the root must not raise then).
 */
#include "common.h"

#include <sys/wait.h>

static volatile sig_atomic_t traps;

static void on_trap(int sig)
{
	(void)sig;
	traps++;
}

static void set_trap(void (*h)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sigemptyset(&sa.sa_mask);
	MUST(sigaction(SIGTRAP, &sa, NULL) == 0);
}

static int trap_blocked(void)
{
	sigset_t m;

	sigprocmask(SIG_SETMASK, NULL, &m);
	return sigismember(&m, SIGTRAP);
}

/* Checks the disposition, raises SIGTRAP (and an int3 for a handler): 1 if all is well. */
static int check(const char *who, void (*want)(int), int blocked)
{
	struct sigaction sa;
	sigset_t t;

	sigaction(SIGTRAP, NULL, &sa);
	if (sa.sa_handler != want) {
		failf("%s: SIGTRAP handler %p, want %p", who, (void *)sa.sa_handler, (void *)want);
		return 0;
	}
	if (trap_blocked() != blocked) {
		failf("%s: SIGTRAP %sblocked, want %sblocked", who, blocked ? "not " : "", blocked ? "" : "not ");
		return 0;
	}
	sigemptyset(&t);
	sigaddset(&t, SIGTRAP);
	sigprocmask(SIG_UNBLOCK, &t, NULL);
	traps = 0;
	raise(SIGTRAP);
	if (want == on_trap) {
		__asm__ volatile("int3");
		if (traps != 2)
			failf("%s: the handler ran %d times for raise() and int3, want 2", who, (int)traps);
	}
	return !common_fail_count;
}

int main(int argc, char **argv)
{
	int pending = argc > 2 && !strcmp(argv[2], "pending");
	pid_t a, b;
	int status;
	sigset_t t;

	prog_init();
	set_trap(on_trap);
	a = fork();
	MUST(a >= 0);
	if (a == 0) {
		sigemptyset(&t);
		sigaddset(&t, SIGTRAP);
		sigprocmask(SIG_BLOCK, &t, NULL);
		wait_for_signal();
		_exit(check("A", on_trap, 1) ? 0 : 1);
	}
	b = fork();
	MUST(b >= 0);
	if (b == 0) {
		set_trap(SIG_IGN);
		wait_for_signal();
		_exit(check("B", SIG_IGN, 0) ? 0 : 1);
	}
	if (pending) {
		sigemptyset(&t);
		sigaddset(&t, SIGTRAP);
		sigprocmask(SIG_BLOCK, &t, NULL);
		raise(SIGTRAP);
	}

	prog_ready();
	if (wait_for_signal())
		set_trap(SIG_DFL);
	kill(a, SIGUSR1);
	kill(b, SIGUSR1);
	if (pending) {
		sigpending(&t);
		if (!sigismember(&t, SIGTRAP))
			failf("root: the pending SIGTRAP is gone");
		traps = 0;
		sigemptyset(&t);
		sigaddset(&t, SIGTRAP);
		sigprocmask(SIG_UNBLOCK, &t, NULL);
		if (traps != 1)
			failf("root: the pending SIGTRAP ran the handler %d times, want 1", (int)traps);
	} else {
		struct sigaction sa;

		sigaction(SIGTRAP, NULL, &sa);
		if (sa.sa_handler == on_trap)
			check("root", on_trap, 0);
		else
			failf("root: SIGTRAP handler %p, want %p", (void *)sa.sa_handler, (void *)on_trap);
	}
	if (waitpid(a, &status, 0) != a || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("A (%d): status 0x%x, want exit 0", a, status);
	if (waitpid(b, &status, 0) != b || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("B (%d): status 0x%x, want exit 0", b, status);
	return prog_finish();
}
