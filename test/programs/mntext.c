/*
 * mntext: external mounts of a tree whose sources are shared outside it.
 *
 * The program (L) unshares a mount namespace of its own, which stands for the
 * host: cryo is run in it (nsenter). There it mounts a tmpfs on DIR/src, made
 * shared (peer group N, written to DIR/group), with DIR/src/a and DIR/src/b.
 * Its child T (the tree to dump) unshares a mount namespace (its copy of
 * DIR/src is a peer of L's), binds DIR/src/a on DIR/dst and makes it a slave
 * (of group N: a master outside the tree, as zdtm mnt_ext_multiple), binds
 * DIR/src/b on DIR/dst2 and makes it private, then unmounts its DIR/src. Both
 * binds are dumped as external mounts (--external mnt[DIR/dst]:A ...).
 * On SIGUSR1 T checks its mountinfo: DIR/dst a slave of group N again (master:N),
 * DIR/dst2 private (no peer of L's DIR/src, so nothing T mounts there reaches
 * the "host"), and a file of DIR/src/a seen through DIR/dst. SIGUSR2: dst2 is
 * made shared first (FAIL).
 * L prints "child PID" and stays (its namespace is the host's for the test).
 * argv[2], when given: all of it in DIR/argv[2] instead.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char dir[1024];

static void path(char *out, size_t len, const char *rel)
{
	snprintf(out, len, "%s/%s", dir, rel);
}

/* The optional fields (shared:, master:) of the mount at `mp` in this namespace's mountinfo. */
static void tags_of(const char *mp, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];

	snprintf(out, len, "(not mounted)");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *fields[64];
		int n = 0;

		for (char *t = strtok(line, " \n"); t && n < 64; t = strtok(NULL, " \n"))
			fields[n++] = t;
		if (n < 7 || strcmp(fields[4], mp))
			continue;
		out[0] = 0;
		for (int i = 6; i < n && strcmp(fields[i], "-"); i++) {
			strncat(out, fields[i], len - strlen(out) - 2);
			strcat(out, " ");
		}
	}
	fclose(f);
}

static void tree(const char *group)
{
	char p[1200], q[1200], tags[256], want[64];
	int f;

	MUST(unshare(CLONE_NEWNS) == 0);
	umount2("/dev/shm", MNT_DETACH); /* the host's second one, over the first */
	umount2("/dev/pts", MNT_DETACH);
	path(p, sizeof(p), "src/a");
	path(q, sizeof(q), "dst");
	MUST(mount(p, q, NULL, MS_BIND, NULL) == 0);
	MUST(mount(NULL, q, NULL, MS_SLAVE, NULL) == 0);
	path(p, sizeof(p), "src/b");
	path(q, sizeof(q), "dst2");
	MUST(mount(p, q, NULL, MS_BIND, NULL) == 0);
	MUST(mount(NULL, q, NULL, MS_PRIVATE, NULL) == 0);
	path(p, sizeof(p), "src");
	MUST(umount2(p, MNT_DETACH) == 0);
	prog_ready();

	if (wait_for_signal()) {
		path(q, sizeof(q), "dst2");
		MUST(mount(NULL, q, NULL, MS_SHARED, NULL) == 0);
	}
	snprintf(want, sizeof(want), "master:%s ", group);
	path(q, sizeof(q), "dst");
	tags_of(q, tags, sizeof(tags));
	if (strcmp(tags, want))
		failf("dst: \"%s\", want \"%s\"", tags, want);
	path(q, sizeof(q), "dst2");
	tags_of(q, tags, sizeof(tags));
	if (strcmp(tags, ""))
		failf("dst2: \"%s\", want private", tags);
	char buf[16] = { 0 };
	path(p, sizeof(p), "dst/file");
	f = open(p, O_RDONLY);
	if (f < 0 || read(f, buf, sizeof(buf) - 1) != 2 || strcmp(buf, "a\n"))
		failf("dst/file: \"%s\"", buf);
	if (f >= 0)
		close(f);
	exit(prog_finish());
}

int main(int argc, char **argv)
{
	char p[1200], tags[256], group[32];
	pid_t kid;
	int f;

	prog_init();
	snprintf(dir, sizeof(dir), "%s", prog_dir(argc, argv));
	if (argc > 2) { /* another run beside: in DIR/NAME */
		snprintf(dir, sizeof(dir), "%s/%s", prog_dir(argc, argv), argv[2]);
		MUST(mkdir(dir, 0755) == 0);
	}
	MUST(unshare(CLONE_NEWNS) == 0);
	MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	for (const char *d = "src\0dst\0dst2\0"; *d; d += strlen(d) + 1) {
		path(p, sizeof(p), d);
		MUST(mkdir(p, 0755) == 0);
	}
	path(p, sizeof(p), "src");
	MUST(mount("cryo-ext", p, "tmpfs", 0, "size=64k") == 0);
	MUST(mount(NULL, p, NULL, MS_SHARED, NULL) == 0);
	tags_of(p, tags, sizeof(tags));
	MUST(sscanf(tags, "shared:%31[0-9]", group) == 1);
	path(p, sizeof(p), "group");
	MUST((f = open(p, O_CREAT | O_WRONLY, 0644)) >= 0 && write(f, group, strlen(group)) == (ssize_t)strlen(group) && close(f) == 0);
	for (const char *d = "src/a\0src/b\0"; *d; d += strlen(d) + 1) {
		path(p, sizeof(p), d);
		MUST(mkdir(p, 0755) == 0);
	}
	path(p, sizeof(p), "src/a/file");
	MUST((f = open(p, O_CREAT | O_WRONLY, 0644)) >= 0 && write(f, "a\n", 2) == 2 && close(f) == 0);
	kid = fork();
	MUST(kid >= 0);
	if (kid == 0)
		tree(group);
	printf("child %d\n", kid);
	fflush(stdout);
	while (waitpid(kid, NULL, 0) < 0 && errno == EINTR)
		;
	for (;;)
		pause();
}
