/*
 * binfmt: binfmt_misc entries of a tree (CRIU's binfmt-misc.img).
 *
 * The program is a launcher. It makes a root file system DIR/root (busybox as
 * /bin/sh, a script /t.cryorun holding "exit 3", /bin/cryo7, a script that
 * exits 7, and an empty /bf), then clones
 * the tree's root, pid 1 of new mount, pid and net namespaces, by default in
 * a user namespace of its own too (maps written from outside: uid 0 100000
 * 65536, gid 0 200000 65536), prints "child N" (the root's pid here) and
 * waits for it. The root pivots into DIR/root (its mounts: that root and
 * /bf, which a restore in a user namespace can make), mounts binfmt_misc on
 * /bf, a new instance (its user namespace's), and registers there:
 *   - cryo_magic: a magic with a mask at offset 9, flags POC, then disabled;
 *   - cryo_bytes: an extension of bytes that are not UTF-8 (zdtm binfmt_misc's kind);
 *   - cryo_run: extension "cryorun", interpreter /bin/cryo7, so that exec of
 *     /t.cryorun exits 7 (3 if a shell runs it itself, as it does when exec
 *     fails with ENOEXEC);
 *   - cryo_fix: extension "cryofix", flag F (the kernel opens the interpreter
 *     when it is registered).
 * It copies the text of every entry to /expect/NAME, checks that exec of
 * /t.cryorun exits 7, prints READY and becomes the checker, busybox sh
 * writing to /log in its root (nothing outside the root stays open: its
 * executable and files are all in there). On SIGUSR1 the checker compares
 * the entries of /bf with /expect (names and texts) and runs /t.cryorun
 * (exit 7): PASS or FAIL into /log. SIGUSR2: cryo_run is removed first.
 * argv[2] (the directory is argv[1]):
 *   userns   - (default) as above;
 *   host     - no user namespace of its own: the instance is the host's, where
 *              only cryo_host_N (N the launcher's pid; as cryo_run) is
 *              registered; the root removes it again when it ends;
 *   hostbind - the launcher mounts the host's instance on DIR/root/bf in a
 *              mount namespace of its own, then clones the root in a user
 *              namespace of its own, which keeps that mount and registers
 *              nothing: a new mount there would be another instance (refused
 *              at dump); the checker does not run the script.
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char stack[256 * 1024] __attribute__((aligned(16)));
static int sync_pipe[2];
static const char *mode = "userns";
static char dir[512], root_dir[600], host_name[64];

/* The checker: entries of /bf against /expect, then the script through binfmt_misc. */
static const char checker[] =
	"trap 'sig=1' USR1; trap 'sig=2' USR2; sig=;"
	"while [ -z \"$sig\" ]; do sleep 0.05; done;"
	"[ $sig = 2 ] && echo -1 > /bf/cryo_run;"
	"bad=;"
	"have=$(ls /bf | grep -v -x -e register -e status | tr '\\n' ' ');"
	"want=$(ls /expect | tr '\\n' ' ');"
	"[ \"$have\" = \"$want\" ] || bad=\"$bad; entries $have, want $want\";"
	"for n in $want; do cmp -s /bf/$n /expect/$n || bad=\"$bad; entry $n differs\"; done;"
	"if [ -z \"$NORUN\" ]; then /t.cryorun; st=$?; [ $st = 7 ] || bad=\"$bad; exec of /t.cryorun exits $st, want 7\"; fi;"
	"[ -n \"$HOSTENTRY\" ] && [ -e /bf/$HOSTENTRY ] && echo -1 > /bf/$HOSTENTRY;"
	"if [ -z \"$bad\" ]; then echo PASS; else echo \"FAIL:${bad#;}\"; exit 1; fi";

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	MUST(fd >= 0);
	MUST(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static void reg(const char *rule, size_t len)
{
	write_file("/bf/register", rule, len);
}

/* Each entry's text into /expect/NAME. */
static void record(void)
{
	DIR *d = opendir("/bf");
	struct dirent *de;
	char from[300], to[300], text[1024];

	MUST(d && mkdir("/expect", 0755) == 0);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "register") || !strcmp(de->d_name, "status"))
			continue;
		snprintf(from, sizeof(from), "/bf/%.200s", de->d_name);
		snprintf(to, sizeof(to), "/expect/%.200s", de->d_name);
		int fd = open(from, O_RDONLY);
		MUST(fd >= 0);
		ssize_t n = read(fd, text, sizeof(text));
		MUST(n > 0);
		close(fd);
		write_file(to, text, n);
	}
	closedir(d);
}

/* The exit status of exec(path), or -1. */
static int run(const char *path)
{
	int st;
	pid_t p = fork();

	if (p == 0) {
		char *argv[] = { (char *)path, NULL }, *envp[] = { NULL };
		execve(path, argv, envp);
		_exit(127);
	}
	if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void register_all(void)
{
	/* Not UTF-8, no ':', '/', '\n' or NUL: e3 46 7c c2 54 f8 1b e8 e7 8d 76 5a 2e 63 33 9f. */
	static const char bytes[] = ":cryo_bytes:E::\xe3" "F|\xc2T\xf8\x1b\xe8\xe7\x8dvZ.c3\x9f::/bin/bash:";
	static const char magic[] = ":cryo_magic:M:9:\\x73\\x51\\xff:\\xff\\x0f\\xff:/bin/interpreter:OCP";

	reg(magic, strlen(magic));
	reg(bytes, sizeof(bytes) - 1);
	reg(":cryo_run:E::cryorun::/bin/cryo7:", 33);
	reg(":cryo_fix:E::cryofix::/bin/sh:F", 31);
	write_file("/bf/cryo_magic", "0", 1);
}

/* Into DIR/root, with what is mounted under it; the old root goes. */
static void pivot(void)
{
	MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	MUST(mount(root_dir, root_dir, NULL, MS_BIND | MS_REC, NULL) == 0);
	MUST(chdir(root_dir) == 0);
	MUST(syscall(SYS_pivot_root, ".", ".") == 0);
	MUST(umount2(".", MNT_DETACH) == 0);
	MUST(chdir("/") == 0);
}

static int root_main(void *arg)
{
	char c, rule[128], env[128];
	int log;

	(void)arg;
	close(sync_pipe[1]);
	MUST(read(sync_pipe[0], &c, 1) == 1); /* the maps are written */
	close(sync_pipe[0]);
	/* Nothing of the caller's stays open but stdout and stderr, until /log takes them. */
	MUST(syscall(SYS_close_range, 3, ~0U, 0) == 0);
	if (strcmp(mode, "host")) {
		MUST(setresgid(0, 0, 0) == 0);
		MUST(setresuid(0, 0, 0) == 0);
	}
	pivot();
	if (strcmp(mode, "hostbind"))
		MUST(mount("cryo-bf", "/bf", "binfmt_misc", 0, NULL) == 0);
	if (!strcmp(mode, "userns")) {
		register_all();
	} else if (!strcmp(mode, "host")) {
		snprintf(rule, sizeof(rule), ":%s:E::cryorun::/bin/cryo7:", host_name);
		reg(rule, strlen(rule));
	}
	record();
	if (strcmp(mode, "hostbind") && run("/t.cryorun") != 7)
		failf("before the dump, exec of /t.cryorun does not exit 7");
	if (common_fail_count)
		return prog_finish();
	prog_ready();
	log = open("/log", O_WRONLY | O_CREAT | O_APPEND, 0644);
	MUST(log >= 0 && dup2(log, 0) == 0 && dup2(log, 1) == 1 && dup2(log, 2) == 2);
	close(log);
	snprintf(env, sizeof(env), "HOSTENTRY=%s", strcmp(mode, "host") ? "" : host_name);
	char *argv[] = { "sh", "-c", (char *)checker, NULL };
	char *envp[] = { env, "PATH=/bin", strcmp(mode, "hostbind") ? NULL : "NORUN=1", NULL };
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve("/bin/sh", argv, envp);
	_exit(126);
}

static void put(const char *rel, const char *data, mode_t m)
{
	char path[700];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root_dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, m);
	MUST(fd >= 0 && write(fd, data, strlen(data)) == (ssize_t)strlen(data));
	close(fd);
}

/* DIR/root: /bin/busybox (/bin/sh and the tools), /t.cryorun, /bf; its root writes /expect and /log there. */
static void make_root(void)
{
	char path[1400];
	const char *dirs[] = { "", "/bin", "/bf" };

	MUST(chmod(dir, 0755) == 0);
	for (unsigned i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", root_dir, dirs[i]);
		MUST(mkdir(path, 0755) == 0);
	}
	snprintf(path, sizeof(path), "cp /bin/busybox %s/bin/ && for a in sh ls grep tr cmp sleep; do ln -s busybox %s/bin/$a; done", root_dir, root_dir);
	MUST(system(path) == 0);
	put("t.cryorun", "exit 3\n", 0755);
	put("bin/cryo7", "#!/bin/sh\nexit 7\n", 0755);
	if (strcmp(mode, "host"))
		MUST(chown(root_dir, 100000, 200000) == 0);
}

int main(int argc, char **argv)
{
	char path[700];
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | SIGCHLD;
	pid_t root;

	prog_init();
	if (argc > 2)
		mode = argv[2];
	snprintf(dir, sizeof(dir), "%s", prog_dir(argc, argv));
	snprintf(root_dir, sizeof(root_dir), "%s/root", dir);
	snprintf(host_name, sizeof(host_name), "cryo_host_%d", (int)getpid());
	make_root();
	if (strcmp(mode, "host"))
		flags |= CLONE_NEWUSER;
	if (!strcmp(mode, "hostbind")) {
		MUST(unshare(CLONE_NEWNS) == 0);
		MUST(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
		snprintf(path, sizeof(path), "%s/bf", root_dir);
		MUST(mount("cryo-bf", path, "binfmt_misc", 0, NULL) == 0);
	}
	MUST(pipe(sync_pipe) == 0);
	root = clone(root_main, stack + sizeof(stack), flags, NULL);
	MUST(root > 0);
	close(sync_pipe[0]);
	return launch_root(root, sync_pipe[1], (flags & CLONE_NEWUSER) != 0);
}
