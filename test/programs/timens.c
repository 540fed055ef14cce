/*
 * timens: a tree in a time namespace of its own.
 *
 * The root unshares a time namespace, sets its offsets (CLOCK_MONOTONIC ahead
 * by 10000 days, CLOCK_BOOTTIME by 20000 days) and enters it, then forks a
 * child (in it too). At READY it notes both clocks and CLOCK_REALTIME.
 * On SIGUSR1 it checks that:
 *   - it is in a time namespace other than the one it started in, and its
 *     children get the same one (time_for_children);
 *   - each clock went on from where it was: not backwards, and not by more
 *     than the real time that passed (a dump and restore stops them, as CRIU),
 *     and so still carries the offset;
 *   - the child forked before is in its time namespace, and one forked now
 *     reads the same clock.
 * SIGUSR2 first moves the root into a new time namespace without offsets.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <time.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define DAY 86400LL
#define MONO_OFF (10000 * DAY)
#define BOOT_OFF (20000 * DAY)
#define SLACK_NS 2000000000LL

static int64_t now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void link_of(const char *pid, const char *entry, char *out)
{
	char path[96];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, entry);
	n = readlink(path, out, 63);
	out[n < 0 ? 0 : n] = 0;
}

int main(void)
{
	char start[64], mine[64], kids[64], other[64], pidbuf[16];
	int64_t m0, b0, r0, m1, b1, r1, kid_m;
	int fd, status, p[2];
	pid_t child, late;

	prog_init();
	link_of("self", "time", start);
	MUST(unshare(CLONE_NEWTIME) == 0);
	fd = open("/proc/self/timens_offsets", O_WRONLY);
	MUST(fd >= 0);
	MUST(dprintf(fd, "%d %lld 0\n", CLOCK_MONOTONIC, MONO_OFF) > 0);
	MUST(dprintf(fd, "%d %lld 0\n", CLOCK_BOOTTIME, BOOT_OFF) > 0);
	close(fd);
	fd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
	MUST(fd >= 0 && setns(fd, CLONE_NEWTIME) == 0);
	close(fd);
	MUST(now(CLOCK_MONOTONIC) >= MONO_OFF * 1000000000LL);

	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		for (;;)
			pause();
	}
	m0 = now(CLOCK_MONOTONIC);
	b0 = now(CLOCK_BOOTTIME);
	r0 = now(CLOCK_REALTIME);
	prog_ready();
	if (wait_for_signal()) {
		MUST(unshare(CLONE_NEWTIME) == 0);
		fd = open("/proc/self/timens_offsets", O_WRONLY);
		MUST(fd >= 0 && dprintf(fd, "%d 0 0\n%d 0 0\n", CLOCK_MONOTONIC, CLOCK_BOOTTIME) > 0);
		close(fd);
		fd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
		MUST(fd >= 0 && setns(fd, CLONE_NEWTIME) == 0);
		close(fd);
	}
	m1 = now(CLOCK_MONOTONIC);
	b1 = now(CLOCK_BOOTTIME);
	r1 = now(CLOCK_REALTIME);

	printf("elapsed monotonic %lld boottime %lld real %lld\n", (long long)(m1 - m0), (long long)(b1 - b0), (long long)(r1 - r0));
	link_of("self", "time", mine);
	link_of("self", "time_for_children", kids);
	if (!strcmp(mine, start))
		failf("in the time namespace it started in (%s), not one of its own", mine);
	if (strcmp(mine, kids))
		failf("time_for_children is %s, time is %s", kids, mine);
	if (m1 < m0 || m1 - m0 > r1 - r0 + SLACK_NS)
		failf("CLOCK_MONOTONIC went from %lld to %lld ns while %lld ns of real time passed", (long long)m0, (long long)m1, (long long)(r1 - r0));
	if (b1 < b0 || b1 - b0 > r1 - r0 + SLACK_NS)
		failf("CLOCK_BOOTTIME went from %lld to %lld ns while %lld ns of real time passed", (long long)b0, (long long)b1, (long long)(r1 - r0));
	snprintf(pidbuf, sizeof(pidbuf), "%d", child);
	link_of(pidbuf, "time", other);
	if (strcmp(other, mine))
		failf("the child forked before is in time namespace %s, the root in %s", other, mine);

	MUST(pipe(p) == 0);
	late = fork();
	MUST(late >= 0);
	if (late == 0) {
		int64_t m = now(CLOCK_MONOTONIC);

		_exit(write(p[1], &m, sizeof(m)) == sizeof(m) ? 0 : 1);
	}
	MUST(read(p[0], &kid_m, sizeof(kid_m)) == sizeof(kid_m));
	waitpid(late, &status, 0);
	if (kid_m < m1 || kid_m - m1 > SLACK_NS)
		failf("a child forked now reads CLOCK_MONOTONIC %lld ns, the root %lld", (long long)kid_m, (long long)m1);

	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	return prog_finish();
}
