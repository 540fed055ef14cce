/* novdso: a task without a vDSO. Unmaps its [vdso], [vvar] and [vvar_vclock],
 * then forks a child (which has none either, and just waits).
 * Checks after restore: neither the task nor its child has any of them mapped
 * again, and both still run (the child answers a signal through a pipe).
 * Nothing here may use the vDSO (no clock_gettime, gettimeofday, time).
 * SIGUSR2: the child is killed first (FAIL). */
#include "common.h"
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int special(const char *line)
{
	return strstr(line, "[vdso]") || strstr(line, "[vvar]") || strstr(line, "[vvar_vclock]");
}

/* The lines of /proc/PID/maps that name a vDSO or vvar mapping, into out. */
static int specials(pid_t pid, char *out, size_t size)
{
	char path[64], line[512];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	MUST(f != NULL);
	out[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!special(line))
			continue;
		n++;
		snprintf(out + strlen(out), size - strlen(out), "%s", line);
	}
	fclose(f);
	return n;
}

static void unmap_specials(void)
{
	unsigned long start[8], end[8];
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	MUST(f != NULL);
	while (n < 8 && fgets(line, sizeof(line), f))
		if (special(line) && sscanf(line, "%lx-%lx", &start[n], &end[n]) == 2)
			n++;
	fclose(f);
	MUST(n > 0);
	for (int i = 0; i < n; i++)
		MUST(syscall(SYS_munmap, start[i], end[i] - start[i]) == 0);
}

static volatile sig_atomic_t poked;

static void on_poke(int sig)
{
	(void)sig;
	poked = 1;
}

int main(int argc, char **argv)
{
	char found[2048];
	int ping[2];
	pid_t child;
	char c;

	prog_init();
	(void)argc;
	(void)argv;
	unmap_specials();
	MUST(specials(getpid(), found, sizeof(found)) == 0);
	MUST(pipe(ping) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		sigset_t none;

		signal(SIGHUP, on_poke);
		sigemptyset(&none);
		for (;;) {
			while (!poked)
				sigsuspend(&none);
			poked = 0;
			if (write(ping[1], "p", 1) != 1)
				_exit(3);
		}
	}
	prog_ready();
	if (wait_for_signal())
		MUST(kill(child, SIGKILL) == 0 && waitpid(child, NULL, 0) == child);

	if (specials(getpid(), found, sizeof(found)))
		failf("the task has them again: %s", found);
	if (!got_usr2 && specials(child, found, sizeof(found)))
		failf("its child has them again: %s", found);
	if (kill(child, SIGHUP) || read(ping[0], &c, 1) != 1)
		failf("the child does not answer (%s)", strerror(errno));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return prog_finish();
}
