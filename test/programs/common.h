/*
 * Shared scaffolding for the e2e target programs in test/programs.
 *
 * Protocol with the harness (test/e2e/harness.ts):
 *   - argv[1], when given, is a scratch directory the program may write into
 *     (the harness passes its per-test temp dir); default ".".
 *   - the program sets up its state, then prints "READY" (flushed);
 *   - it waits for a signal: SIGUSR1 = check the state now;
 *     SIGUSR2 = deliberately corrupt one piece of the state first, then check
 *     (so the check must FAIL: used to prove the checks work and to test exit
 *     code propagation);
 *   - it prints "PASS" and exits 0, or "FAIL: what; what" and exits 1.
 * stdout and stderr are expected to be one regular file opened O_APPEND.
 */
#ifndef CRYO_TEST_COMMON_H
#define CRYO_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

/* Not every program uses every helper. */
#define HELPER static __attribute__((unused))

static volatile sig_atomic_t got_usr1;
static volatile sig_atomic_t got_usr2;
/* A static stdio buffer: no heap allocation happens at the first printf. */
static char common_stdout_buf[1 << 16];
static char common_fail_text[4096];
static int common_fail_count;

HELPER void common_on_wake(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_usr2 = 1;
}

/* Call first. Installs the SIGUSR1/SIGUSR2 handlers and blocks both, so that
 * wait_for_signal() can wait with sigsuspend() without a lost-wakeup race. */
HELPER void prog_init(void)
{
	struct sigaction sa;
	sigset_t block;

	setvbuf(stdout, common_stdout_buf, _IOLBF, sizeof(common_stdout_buf));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = common_on_wake;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &sa, NULL)) {
		perror("sigaction");
		exit(2);
	}
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
}

HELPER const char *prog_dir(int argc, char **argv)
{
	return argc > 1 ? argv[1] : ".";
}

HELPER void prog_ready(void)
{
	printf("READY\n");
	fflush(stdout);
}

/* The mask to pass to sigsuspend(): the current one with USR1/USR2 open. */
HELPER void wake_mask(sigset_t *m)
{
	sigprocmask(SIG_SETMASK, NULL, m);
	sigdelset(m, SIGUSR1);
	sigdelset(m, SIGUSR2);
}

/* Blocks in sigsuspend() until SIGUSR1 or SIGUSR2 came.
 * Returns 1 when SIGUSR2 asked for deliberate corruption. */
HELPER int wait_for_signal(void)
{
	sigset_t m;

	wake_mask(&m);
	while (!got_usr1 && !got_usr2)
		sigsuspend(&m);
	return got_usr2 != 0;
}

/* Records one failed check; details go to stderr at once. */
__attribute__((format(printf, 1, 2)))
HELPER void failf(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t used = strlen(common_fail_text);

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "check failed: %s\n", line);
	if (used + strlen(line) + 3 < sizeof(common_fail_text))
		snprintf(common_fail_text + used, sizeof(common_fail_text) - used, "%s%s",
			 common_fail_count ? "; " : "", line);
	common_fail_count++;
}

/* Prints the verdict; returns the exit code. */
HELPER int prog_finish(void)
{
	if (common_fail_count) {
		printf("FAIL: %s\n", common_fail_text);
		fflush(stdout);
		return 1;
	}
	printf("PASS\n");
	fflush(stdout);
	return 0;
}

/* A setup step that must not fail (before READY): abort with a message. */
#define MUST(cond)                                                                   \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "setup failed at %s:%d: %s: %s\n", __FILE__, \
				__LINE__, #cond, strerror(errno));                   \
			exit(2);                                                     \
		}                                                                    \
	} while (0)

/*
 * A launcher's part once it has cloned `root` (pid 1 of new namespaces, waiting
 * on the pipe `sync_w` writes to): with `userns`, its maps written from here
 * (uid 0 100000 65536, gid 0 200000 65536); "child N" printed, the root let go,
 * and waited for until it ends (dumped and killed; restored, it is cryo's).
 */
HELPER int launch_root(pid_t root, int sync_w, int userns)
{
	char path[64], c = 'x';
	int st, fd;

	for (int i = 0; userns && i < 2; i++) {
		const char *map = i ? "0 200000 65536" : "0 100000 65536";

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)root, i ? "gid_map" : "uid_map");
		fd = open(path, O_WRONLY);
		MUST(fd >= 0 && write(fd, map, strlen(map)) == (ssize_t)strlen(map));
		close(fd);
	}
	printf("child %d\n", (int)root);
	fflush(stdout);
	MUST(write(sync_w, &c, 1) == 1);
	close(sync_w);
	while (waitpid(root, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

/* A deterministic 64-bit pattern: word i of the block named seed. */
static inline uint64_t pattern64(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed + 1) * 0xD1B54A32D192ED03ull ^ (i * 0x9E3779B97F4A7C15ull);

	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return x;
}

#endif
