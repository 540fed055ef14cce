/*
 * pidnest: pid namespaces nested two levels below the tree's.
 *
 * The root R forks M; M does unshare(CLONE_NEWPID) and forks N1, pid 1 of
 * namespace B; N1 forks N2 (pid 2 of B, a group of its own); N2 does
 * unshare(CLONE_NEWPID) and forks P1, pid 1 of namespace C; P1 forks P2
 * (setsid: a session of its own). Every task records getpid(), getppid(),
 * getsid(0), getpgrp() and its NSpid line (but its first pid, that of the
 * namespace /proc is of: a restore may give it another), then writes a byte
 * to a pipe; R prints READY once all five did. On SIGUSR1 R checks itself and
 * sends SIGUSR1 to M; each task checks its ids, passes the signal to its
 * child, reaps it and exits 0 or 1 by both verdicts; R prints PASS or FAIL.
 * M and N2, which unshared, then fork a probe, which must be born in the
 * namespace of their child (one level deeper, not its pid 1): their
 * pid_for_children is theirs again. P1 has a second thread, which must have
 * its thread id of namespace C again.
 * N1 leads a session of its own and has two more children whose leaders are
 * gone (a restore makes a helper of namespace B in each one's stead): D, whose
 * parent S (pid 2 of B) called setsid() and exited, and E, whose parent G
 * (pid 4 of B) made a process group of its own and exited.
 */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct ids {
	pid_t pid, ppid, sid, pgid;
	char nspid[128];
};

static void read_nspid(char *out, size_t len)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/status", "r");

	out[0] = 0;
	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		char *p = buf + 6;

		if (strncmp(buf, "NSpid:", 6))
			continue;
		p += strspn(p, " \t");
		p += strcspn(p, " \t\n");
		snprintf(out, len, "%s", p);
	}
	fclose(f);
}

/* How many levels the NSpid line has. */
static int nslevels(void)
{
	char buf[128];
	int n = 1;

	read_nspid(buf, sizeof(buf));
	for (char *p = buf; *p; p++)
		if ((*p == ' ' || *p == '\t') && p[1] >= '0' && p[1] <= '9')
			n++;
	return n;
}

/* A child forked now is one pid namespace deeper than the caller, and not its init. */
static void probe_children_ns(const char *who)
{
	int mine = nslevels(), status;
	pid_t p = fork();

	MUST(p >= 0);
	if (p == 0)
		_exit(nslevels() == mine + 1 && getpid() > 2 ? 0 : 1);
	if (waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("%s: a child forked now is not born in the namespace it made for its children", who);
}

static void record(struct ids *s)
{
	s->pid = getpid();
	s->ppid = getppid();
	s->sid = getsid(0);
	s->pgid = getpgrp();
	read_nspid(s->nspid, sizeof(s->nspid));
}

static void check_ids(const char *who, const struct ids *b)
{
	struct ids a;

	record(&a);
	if (a.pid != b->pid || a.ppid != b->ppid || a.sid != b->sid || a.pgid != b->pgid)
		failf("%s: pid/ppid/sid/pgid %d/%d/%d/%d, were %d/%d/%d/%d", who, a.pid, a.ppid, a.sid, a.pgid, b->pid,
		      b->ppid, b->sid, b->pgid);
	if (strcmp(a.nspid, b->nspid))
		failf("%s: NSpid %s, was %s", who, a.nspid, b->nspid);
}

/* N1's children whose parents are gone (D and E), checked after its own. */
static pid_t orphans[2];

/* Reports ready, waits for SIGUSR1, checks itself, then its child (0: none). */
static int run(const char *who, int ready_fd, pid_t child, const struct ids *mine)
{
	int status;

	if (write(ready_fd, "x", 1) != 1)
		failf("%s: write to the ready pipe", who);
	wait_for_signal();
	check_ids(who, mine);
	if (!strcmp(who, "M") || !strcmp(who, "N2"))
		probe_children_ns(who);
	if (child > 0) {
		kill(child, SIGUSR1);
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
			failf("%s: its child %d failed", who, child);
	}
	for (int i = 0; i < 2 && !strcmp(who, "N1"); i++) {
		kill(orphans[i], SIGUSR1);
		if (waitpid(orphans[i], &status, 0) != orphans[i] || !WIFEXITED(status) || WEXITSTATUS(status))
			failf("%s: its orphan %d failed", who, orphans[i]);
	}
	return common_fail_count ? 1 : 0;
}

/* Forks a task that runs body(); in the parent returns its pid. */
static pid_t spawn(int (*body)(int), int ready_fd)
{
	pid_t p = fork();

	MUST(p >= 0);
	if (p == 0)
		_exit(body(ready_fd));
	return p;
}

static int p2(int fd)
{
	struct ids me;

	MUST(setsid() == getpid());
	record(&me);
	if (me.pid != 2)
		failf("P2: pid %d in namespace C, not 2", me.pid);
	return run("P2", fd, 0, &me);
}

static volatile pid_t p1_thread_tid;

static void *p1_thread(void *arg)
{
	(void)arg;
	p1_thread_tid = syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

static int p1(int fd)
{
	struct ids me;
	pthread_t th;
	pid_t child;
	int ret;

	record(&me);
	if (me.pid != 1)
		failf("P1: pid %d, not 1 of namespace C", me.pid);
	child = spawn(p2, fd); /* pid 2 of C, the thread 3 */
	MUST(pthread_create(&th, NULL, p1_thread, NULL) == 0);
	while (!p1_thread_tid)
		usleep(1000);
	ret = run("P1", fd, child, &me);
	/* Its thread, by the id it had in namespace C. */
	if (syscall(SYS_tgkill, getpid(), p1_thread_tid, 0))
		failf("P1: no thread %d of its own in namespace C: %m", p1_thread_tid);
	return ret || common_fail_count ? 1 : 0;
}

static int n2(int fd)
{
	struct ids me;

	MUST(setpgid(0, 0) == 0);
	record(&me);
	MUST(unshare(CLONE_NEWPID) == 0);
	return run("N2", fd, spawn(p1, fd), &me);
}

/* D and E: reparented to N1 once their parent exits, in the session or group it led. */
static int orphan(const char *who, int fd, int own_session)
{
	struct ids me;
	pid_t leader = own_session ? getsid(0) : getpgrp();

	/* Gone once N1 reaped it. */
	while (getppid() != 1 || kill(leader, 0) == 0)
		usleep(1000);
	record(&me);
	if (leader == me.pid || me.pgid != leader || me.sid != (own_session ? leader : 1))
		failf("%s: sid/pgid %d/%d: its parent %d led neither", who, me.sid, me.pgid, leader);
	return run(who, fd, 0, &me);
}

static int d(int fd)
{
	return orphan("D", fd, 1);
}

static int e(int fd)
{
	return orphan("E", fd, 0);
}

/* S or G: a session (or group) of its own, a child in it, then gone; its child's pid to `out`. */
static void gone_leader(int (*body)(int), int fd, int session, int out)
{
	pid_t p = fork(), c;

	MUST(p >= 0);
	if (p == 0) {
		MUST(session ? setsid() == getpid() : setpgid(0, 0) == 0);
		c = spawn(body, fd);
		MUST(write(out, &c, sizeof(c)) == sizeof(c));
		_exit(0);
	}
	MUST(waitpid(p, NULL, 0) == p);
}

static int n1(int fd)
{
	struct ids me;
	int pp[2];
	pid_t child;

	MUST(setsid() == 1);
	MUST(pipe(pp) == 0);
	gone_leader(d, fd, 1, pp[1]);
	gone_leader(e, fd, 0, pp[1]);
	MUST(read(pp[0], &orphans[0], sizeof(pid_t)) == sizeof(pid_t) && read(pp[0], &orphans[1], sizeof(pid_t)) == sizeof(pid_t));
	close(pp[0]);
	close(pp[1]);
	child = spawn(n2, fd);
	record(&me);
	if (me.pid != 1)
		failf("N1: pid %d, not 1 of namespace B", me.pid);
	return run("N1", fd, child, &me);
}

static int m(int fd)
{
	struct ids me;

	record(&me);
	MUST(unshare(CLONE_NEWPID) == 0);
	return run("M", fd, spawn(n1, fd), &me);
}

int main(void)
{
	struct ids me;
	int pfd[2], status, n = 0;
	char c;
	pid_t mp;

	prog_init();
	MUST(pipe(pfd) == 0);
	record(&me);
	mp = spawn(m, pfd[1]);
	close(pfd[1]);
	while (n < 7 && read(pfd[0], &c, 1) == 1)
		n++;
	MUST(n == 7);
	prog_ready();
	wait_for_signal();
	check_ids("R", &me);
	kill(mp, SIGUSR1);
	if (waitpid(mp, &status, 0) != mp || !WIFEXITED(status) || WEXITSTATUS(status))
		failf("R: M failed");
	return prog_finish();
}
