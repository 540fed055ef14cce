/*
 * mntnest: a tree in three mount namespaces (and a pid namespace of its own).
 *
 * The program unshares CLONE_NEWNS|CLONE_NEWPID and forks R, pid 1 of the new
 * pid namespace and the root of the tree to dump. Under DIR (argv[1]):
 *   - R, in mount namespace A (all private): DIR/a, a tmpfs holding "fa", open;
 *     DIR/p, a proc of the pid namespace (the other namespaces have copies).
 *   - C, R's child, unshares namespace B and makes it private: DIR/b, a tmpfs
 *     of its own with "sub/fb", DIR/bb a bind of DIR/b/sub, "fb" open through
 *     the bind; DIR/c and DIR/d, tmpfs mounts made shared.
 *   - G, C's child, unshares namespace C2 from B: its DIR/c is a peer of B's
 *     (one peer group across the namespaces), its DIR/d made a slave of B's;
 *     DIR/g, a tmpfs of its own with "fg", open, and "fc" open on DIR/c.
 * Each task records its mounts under DIR as it sees them (mount point, type,
 * options, source, propagation kind), G the peer and master ids of its DIR/c and
 * DIR/d against C's (read through DIR/p), R that the three namespaces differ.
 * SIGUSR1 to R: R checks its mounts, its file (content, and that its fd is on
 * the mount at DIR/a), the three namespaces still distinct, and signals C; C
 * checks its own, then mounts DIR/c/new and DIR/d/new and signals G; G checks
 * its own, sees both new mounts propagated into its namespace, and mounts
 * DIR/d/gnew, which C must not see (a slave sends nothing back). R's DIR/a
 * never shows any of them. R prints PASS or FAIL for all (the children's
 * failures come on stderr, and as their exit status). SIGUSR2: fa is changed first.
 * The parent waits for R; R prints "child PID" (its host pid) and READY.
 * argv[2] "hostns": R also has a child H back in the host's mount namespace
 * (setns), which cryo refuses to dump (as CRIU cannot restore it).
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char dir[1024];

static void path(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", dir, rel);
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One mount of a mountinfo file: its id, shared and master groups, by mount point under dir ("/a"). */
struct mnt {
	int id, shared, master;
};

static int find_mount(const char *mountinfo, const char *rel, struct mnt *out)
{
	FILE *f = fopen(mountinfo, "r");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char mp[1024], rest[2048], *sep, *p;
		int id;

		if (sscanf(line, "%d %*d %*s %*s %1023s %*s %2047[^\n]", &id, mp, rest) != 3)
			continue;
		if (strncmp(mp, dir, strlen(dir)) || strcmp(mp + strlen(dir), rel))
			continue;
		sep = strstr(rest, "- ");
		out->id = id;
		out->shared = out->master = 0;
		p = strstr(rest, "shared:");
		if (p && p < sep)
			out->shared = atoi(p + 7);
		p = strstr(rest, "master:");
		if (p && p < sep)
			out->master = atoi(p + 7);
		found = 1; /* the last one on that point: the top */
	}
	fclose(f);
	return found;
}

/* Lines of /proc/self/mountinfo under dir, without ids and devices, sorted; new mounts of the check left out. */
static void mounts_under(char *out, size_t len)
{
	char lines[32][1600], *sorted[32];
	int nlines = 0, i;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	size_t used = 0;

	out[0] = 0;
	if (!f) {
		snprintf(out, len, "no mountinfo: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char mp[1024], opts[512], rest[2048], fstype[64], src[256], sbopts[512];
		char *sep, *sh, *ma;

		if (sscanf(line, "%*d %*d %*s %*s %1023s %511s %2047[^\n]", mp, opts, rest) != 3)
			continue;
		if (strncmp(mp, dir, strlen(dir)) != 0 || mp[strlen(dir)] != '/' || strstr(mp, "new"))
			continue;
		sep = strstr(rest, "- ");
		if (!sep || sscanf(sep + 2, "%63s %255s %511s", fstype, src, sbopts) != 3)
			continue;
		sh = strstr(rest, "shared:");
		ma = strstr(rest, "master:");
		if (nlines < 32)
			snprintf(lines[nlines++], sizeof(lines[0]), "%s %s %s %s %s%s%s\n", mp + strlen(dir), opts, fstype, src,
				 sh && sh < sep ? "shared" : "", ma && ma < sep ? "master" : "",
				 (sh && sh < sep) || (ma && ma < sep) ? "" : "private");
	}
	fclose(f);
	for (i = 0; i < nlines; i++)
		sorted[i] = lines[i];
	qsort(sorted, nlines, sizeof(sorted[0]), cmp_lines);
	for (i = 0; i < nlines; i++)
		used += snprintf(out + used, len - used, "%s", sorted[i]);
}

static int fd_mnt_id(int fd)
{
	char p[64], line[256];
	FILE *f;
	int id = -1;

	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "mnt_id: %d", &id) == 1)
			break;
	fclose(f);
	return id;
}

static void make_tmpfs(const char *rel, const char *src, int shared)
{
	char p[1200];

	path(p, sizeof(p), rel);
	mkdir(p, 0755);
	MUST(mount(src, p, "tmpfs", MS_NOSUID, "size=256k") == 0);
	if (shared)
		MUST(mount(NULL, p, NULL, MS_SHARED, NULL) == 0);
}

static int make_file(const char *rel, const char *text)
{
	char p[1200];
	int f;

	path(p, sizeof(p), rel);
	MUST((f = open(p, O_CREAT | O_RDWR, 0644)) >= 0);
	MUST(write(f, text, strlen(text)) == (ssize_t)strlen(text));
	return f;
}

/* The file behind fd holds text, and fd is on the mount at rel as this task sees it. */
static void check_file(const char *who, int fd, const char *text, const char *rel)
{
	char buf[128] = { 0 };
	struct mnt m;

	if (pread(fd, buf, sizeof(buf) - 1, 0) < 0 || strcmp(buf, text))
		failf("%s: its file on %s holds \"%s\", not \"%s\"", who, rel, buf, text);
	if (!find_mount("/proc/self/mountinfo", rel, &m))
		failf("%s: no mount at %s", who, rel);
	else if (fd_mnt_id(fd) != m.id)
		failf("%s: its fd is on mount %d, not on %d at %s", who, fd_mnt_id(fd), m.id, rel);
}

static void check_mounts(const char *who, const char *expect)
{
	static char now[16384];

	mounts_under(now, sizeof(now));
	if (strcmp(now, expect))
		failf("%s: mounts differ:\n--- before\n%s--- after\n%s", who, expect, now);
}

static int is_mount(const char *rel)
{
	struct mnt m;

	return find_mount("/proc/self/mountinfo", rel, &m);
}

static void mount_new(const char *who, const char *rel)
{
	char p[1200];

	path(p, sizeof(p), rel);
	if (mount("new", p, "tmpfs", 0, "size=16k"))
		failf("%s: cannot mount a tmpfs on %s: %s", who, rel, strerror(errno));
}

static char expect_r[16384], expect_c[16384], expect_g[16384];
static char g_relation[256];

/* G's DIR/c is a peer of C's, its DIR/d a slave of C's (C's mountinfo through the pid namespace's proc). */
static void relation(char *out, size_t len, pid_t c)
{
	char p[1200];
	struct mnt mc, md, oc, od;

	snprintf(p, sizeof(p), "%s/p/%d/mountinfo", dir, c);
	if (!find_mount("/proc/self/mountinfo", "/c", &mc) || !find_mount("/proc/self/mountinfo", "/d", &md) ||
	    !find_mount(p, "/c", &oc) || !find_mount(p, "/d", &od)) {
		snprintf(out, len, "mounts missing");
		return;
	}
	snprintf(out, len, "c %s, d %s", mc.shared && mc.shared == oc.shared ? "peers" : "not peers",
		 md.master && md.master == od.shared && !md.shared ? "slave" : "not slave");
}

static void grandchild(int ready, pid_t c)
{
	int fg, fc;
	char p[1200];

	MUST(unshare(CLONE_NEWNS) == 0);
	path(p, sizeof(p), "d");
	MUST(mount(NULL, p, NULL, MS_SLAVE, NULL) == 0);
	make_tmpfs("g", "nest-g", 0);
	fg = make_file("g/fg", "in g\n");
	fc = make_file("c/fc", "in c\n");
	mounts_under(expect_g, sizeof(expect_g));
	relation(g_relation, sizeof(g_relation), c);
	MUST(write(ready, "g", 1) == 1);
	wait_for_signal();
	{
		char now[256];

		check_mounts("G", expect_g);
		check_file("G", fg, "in g\n", "/g");
		check_file("G", fc, "in c\n", "/c");
		relation(now, sizeof(now), c);
		if (strcmp(now, g_relation) || strcmp(now, "c peers, d slave"))
			failf("G: propagation is \"%s\", not \"%s\"", now, g_relation);
		if (!is_mount("/c/new"))
			failf("G: C's mount on DIR/c/new did not propagate to its peer");
		if (!is_mount("/d/new"))
			failf("G: C's mount on DIR/d/new did not propagate to its slave");
		mount_new("G", "d/gnew");
	}
	exit(common_fail_count ? 1 : 0);
}

static void child(int ready)
{
	int fb, pipefd[2], st;
	pid_t g;
	char p[1200], q[1200], c;

	MUST(unshare(CLONE_NEWNS) == 0);
	MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	make_tmpfs("b", "nest-b", 0);
	path(p, sizeof(p), "b/sub");
	MUST(mkdir(p, 0755) == 0);
	path(q, sizeof(q), "bb");
	mkdir(q, 0755);
	MUST(mount(p, q, NULL, MS_BIND, NULL) == 0);
	fb = make_file("bb/fb", "in b\n");
	make_tmpfs("c", "nest-c", 1);
	make_tmpfs("d", "nest-d", 1);
	path(p, sizeof(p), "c/new");
	MUST(mkdir(p, 0755) == 0);
	path(p, sizeof(p), "d/new");
	MUST(mkdir(p, 0755) == 0);
	path(p, sizeof(p), "d/gnew");
	MUST(mkdir(p, 0755) == 0);
	mounts_under(expect_c, sizeof(expect_c));
	MUST(pipe(pipefd) == 0);
	g = fork();
	MUST(g >= 0);
	if (g == 0)
		grandchild(pipefd[1], getppid());
	MUST(read(pipefd[0], &c, 1) == 1);
	MUST(write(ready, "c", 1) == 1);
	wait_for_signal();
	check_mounts("C", expect_c);
	check_file("C", fb, "in b\n", "/bb");
	mount_new("C", "c/new");
	mount_new("C", "d/new");
	kill(g, SIGUSR1);
	while (waitpid(g, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		failf("C: G failed (status 0x%x)", st);
	if (is_mount("/d/gnew"))
		failf("C: G's mount on its slave DIR/d/gnew came back to C's DIR/d");
	exit(common_fail_count ? 1 : 0);
}

/* R, C and G in three different mount namespaces. */
static void distinct(char *out, size_t len, pid_t c, pid_t g)
{
	char p[1200], l[3][256] = { { 0 } };

	if (readlink("/proc/self/ns/mnt", l[0], sizeof(l[0]) - 1) < 0)
		strcpy(l[0], "?r");
	snprintf(p, sizeof(p), "%s/p/%d/ns/mnt", dir, c);
	if (readlink(p, l[1], sizeof(l[1]) - 1) < 0)
		strcpy(l[1], "?c");
	snprintf(p, sizeof(p), "%s/p/%d/ns/mnt", dir, g);
	if (readlink(p, l[2], sizeof(l[2]) - 1) < 0)
		strcpy(l[2], "?g");
	snprintf(out, len, "%s", strcmp(l[0], l[1]) && strcmp(l[1], l[2]) && strcmp(l[0], l[2]) && l[0][0] != '?' && l[1][0] != '?' && l[2][0] != '?' ? "distinct" : "not distinct");
}

int main(int argc, char **argv)
{
	pid_t kid, c, g = 0, h = 0;
	int status, fa, ready[2], corrupt, st, host;
	char p[1200], buf[4], ns_before[64], ns_now[64];

	prog_init();
	snprintf(dir, sizeof(dir), "%s", prog_dir(argc, argv));
	MUST((host = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) >= 0);
	MUST(unshare(CLONE_NEWNS | CLONE_NEWPID) == 0);
	kid = fork();
	MUST(kid >= 0);
	if (kid) {
		printf("child %d\n", kid);
		fflush(stdout);
		while (waitpid(kid, &status, 0) < 0 && errno == EINTR)
			;
		return 0;
	}
	MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	umount2("/dev/shm", MNT_DETACH); /* the host's second one, over the first */
	umount2("/dev/pts", MNT_DETACH);
	make_tmpfs("a", "nest-a", 0);
	fa = make_file("a/fa", "in a\n");
	path(p, sizeof(p), "p");
	mkdir(p, 0755);
	MUST(mount("proc", p, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) == 0);
	path(p, sizeof(p), "a/new");
	MUST(mkdir(p, 0755) == 0);
	mounts_under(expect_r, sizeof(expect_r));
	if (argc > 2 && !strcmp(argv[2], "hostns")) {
		h = fork();
		MUST(h >= 0);
		if (h == 0) {
			MUST(setns(host, CLONE_NEWNS) == 0);
			for (;;)
				pause();
		}
	}
	close(host);
	MUST(pipe(ready) == 0);
	c = fork();
	MUST(c >= 0);
	if (c == 0)
		child(ready[1]);
	MUST(read(ready[0], buf, 1) == 1);
	/* G is C's only child: its pid from C's children list. */
	{
		FILE *f;

		snprintf(p, sizeof(p), "%s/p/%d/task/%d/children", dir, c, c);
		f = fopen(p, "r");
		MUST(f && fscanf(f, "%d", &g) == 1);
		fclose(f);
	}
	distinct(ns_before, sizeof(ns_before), c, g);
	MUST(!strcmp(ns_before, "distinct"));
	prog_ready();
	corrupt = wait_for_signal();
	if (corrupt)
		MUST(pwrite(fa, "IN", 2, 0) == 2);
	check_mounts("R", expect_r);
	check_file("R", fa, "in a\n", "/a");
	distinct(ns_now, sizeof(ns_now), c, g);
	if (strcmp(ns_now, ns_before))
		failf("R: the three mount namespaces are %s now", ns_now);
	kill(c, SIGUSR1);
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		failf("R: C failed (status 0x%x)", st);
	if (is_mount("/c/new") || is_mount("/d/new") || is_mount("/a/new"))
		failf("R: a mount of C's namespace shows in R's");
	if (h > 0) {
		kill(h, SIGKILL);
		waitpid(h, NULL, 0);
	}
	return prog_finish();
}
