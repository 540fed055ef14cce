/*
 * nsrefuse: namespaces cryo cannot carry, which a dump must refuse.
 *
 * argv[2] says which (the directory is argv[1]):
 *   timekids - the root calls unshare(CLONE_NEWTIME): it stays in its time
 *              namespace, the children it forks from now on go to a new one
 *              (time_for_children differs, nothing else yet);
 *   uts      - a child calls unshare(CLONE_NEWUTS) and sets a host name of
 *              its own;
 *   pidkids  - the root calls unshare(CLONE_NEWPID) (pid_for_children);
 *   net      - a child calls unshare(CLONE_NEWNET) (a second network
 *              namespace in the tree, which cryo does not dump yet).
 * On SIGUSR1 the root checks that its namespace links are those it had at
 * READY (the refused dump changed nothing) and, for timekids and pidkids, that
 * a child forked now lands in the new namespace; the uts child checks its host
 * name.
 * SIGUSR2: the uts child's host name is changed first (any mode forks it).
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const char *links[] = { "time", "time_for_children", "pid", "pid_for_children", "uts", "net", "mnt" };
#define NLINKS (sizeof(links) / sizeof(links[0]))

static void read_links(pid_t pid, char out[][64])
{
	char path[96];

	for (size_t i = 0; i < NLINKS; i++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, links[i]);
		n = readlink(path, out[i], 63);
		out[i][n < 0 ? 0 : n] = 0;
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	char before[NLINKS][64], after[NLINKS][64];
	pid_t uts;
	int p[2], status;

	prog_init();
	MUST(pipe(p) == 0);
	uts = fork();
	MUST(uts >= 0);
	if (uts == 0) {
		char name[64];
		int corrupt;

		if (!strcmp(mode, "uts"))
			MUST(unshare(CLONE_NEWUTS) == 0 && sethostname("cryo-uts-test", 13) == 0);
		if (!strcmp(mode, "net"))
			MUST(unshare(CLONE_NEWNET) == 0);
		MUST(write(p[1], "x", 1) == 1);
		corrupt = wait_for_signal();
		if (corrupt && !strcmp(mode, "uts"))
			sethostname("changed", 7);
		if (!strcmp(mode, "uts")) {
			gethostname(name, sizeof(name));
			if (strcmp(name, "cryo-uts-test"))
				failf("uts child: host name %s, want cryo-uts-test", name);
		} else if (corrupt) {
			failf("uts child: asked to corrupt");
		}
		_exit(common_fail_count ? 1 : 0);
	}
	{
		char c;

		MUST(read(p[0], &c, 1) == 1);
	}
	if (!strcmp(mode, "timekids"))
		MUST(unshare(CLONE_NEWTIME) == 0);
	if (!strcmp(mode, "pidkids"))
		MUST(unshare(CLONE_NEWPID) == 0);
	read_links(getpid(), before);
	prog_ready();
	kill(uts, wait_for_signal() ? SIGUSR2 : SIGUSR1);
	read_links(getpid(), after);
	for (size_t i = 0; i < NLINKS; i++)
		if (strcmp(before[i], after[i]))
			failf("ns/%s is %s, was %s", links[i], after[i], before[i]);
	if (!strcmp(mode, "timekids") || !strcmp(mode, "pidkids")) {
		const char *kind = mode[0] == 't' ? "time" : "pid";
		char mine[NLINKS][64], kids[NLINKS][64];
		pid_t k = fork();

		MUST(k >= 0);
		if (k == 0) {
			pause();
			_exit(0);
		}
		read_links(getpid(), mine);
		read_links(k, kids);
		for (size_t i = 0; i < NLINKS; i++)
			if (!strcmp(links[i], kind) && !strcmp(kids[i], mine[i]))
				failf("a child forked now is in my %s namespace %s, want the new one", kind, mine[i]);
		kill(k, SIGKILL);
		waitpid(k, &status, 0);
	}
	if (waitpid(uts, &status, 0) != uts || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("uts child (%d): status 0x%x, want exit 0", uts, status);
	return prog_finish();
}
