/*
 * misc: per-task kernel state that is neither memory, registers nor files.
 *
 * Signal dispositions (SA_SIGINFO, SA_RESTART, SA_NODEFER|SA_RESETHAND,
 * SA_ONSTACK, sa_mask, SIG_IGN, flags on SIG_DFL), the sigaltstack, the
 * blocked mask, pending signals (a thread-directed SIGWINCH and two queued
 * process-wide SIGRTMIN+5 with values), task name, cwd, umask, rseq
 * registration, robust futex list head, clear_child_tid address,
 * personality, no_new_privs, rlimits, session and process group, and the
 * exe link, cmdline, environ and auxv of the mm.
 */
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NSIG_MAX 64
#define RT(n) (SIGRTMIN + (n))

struct state {
	int sa_ret[NSIG_MAX + 1];
	struct sigaction sa[NSIG_MAX + 1];
	stack_t altstack;
	sigset_t blocked, pending;
	char name[17];
	char cwd[1024];
	ino_t cwd_ino;
	mode_t umask;
	void *robust_head;
	size_t robust_len;
	void *tid_addr;
	int personality;
	int nnp;
	struct rlimit rlim[RLIM_NLIMITS];
	pid_t sid, pgid;
	char exe[1024];
	char cmdline[4096], environ[65536], auxv[4096];
	ssize_t cmdline_len, environ_len, auxv_len;
	int rseq_probe;
};

static struct state before, after;
static char altstack_mem[64 * 1024];
static unsigned rseq_len_ok; /* the rseq length the kernel accepted */

static void h_plain(int sig)
{
	(void)sig;
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
}

static void set_action(int sig, void *handler, int flags, int mask1, int mask2)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = (void (*)(int, siginfo_t *, void *))handler;
	else
		sa.sa_handler = (void (*)(int))handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (mask1)
		sigaddset(&sa.sa_mask, mask1);
	if (mask2)
		sigaddset(&sa.sa_mask, mask2);
	MUST(sigaction(sig, &sa, NULL) == 0);
}

static ssize_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len = 0, r;

	if (fd < 0)
		return -1;
	while ((r = read(fd, buf + len, size - len)) > 0)
		len += r;
	close(fd);
	return len;
}

/* Asks the kernel to register glibc's rseq area again. EBUSY means it is
 * registered already, with this very area, length and signature. */
static int rseq_probe(void)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	unsigned lens[2] = { __rseq_size, 32 };

	for (int i = 0; i < 2; i++) {
		if (rseq_len_ok && lens[i] != rseq_len_ok)
			continue;
		if (syscall(SYS_rseq, area, lens[i], 0, RSEQ_SIG) == 0) {
			syscall(SYS_rseq, area, lens[i], RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
			return 0;
		}
		if (errno == EBUSY) {
			rseq_len_ok = lens[i];
			return EBUSY;
		}
		if (errno != EINVAL)
			return errno;
	}
	return EINVAL;
}

static void snapshot(struct state *s)
{
	memset(s, 0, sizeof(*s));
	for (int sig = 1; sig <= NSIG_MAX; sig++)
		s->sa_ret[sig] = sigaction(sig, NULL, &s->sa[sig]);
	sigaltstack(NULL, &s->altstack);
	sigprocmask(SIG_BLOCK, NULL, &s->blocked);
	sigpending(&s->pending);
	prctl(PR_GET_NAME, s->name);
	MUST(getcwd(s->cwd, sizeof(s->cwd)));
	{
		struct stat st;

		MUST(stat(".", &st) == 0);
		s->cwd_ino = st.st_ino;
	}
	s->umask = umask(0);
	umask(s->umask);
	syscall(SYS_get_robust_list, 0, &s->robust_head, &s->robust_len);
	prctl(PR_GET_TID_ADDRESS, &s->tid_addr);
	s->personality = personality(0xffffffff);
	s->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	for (int r = 0; r < RLIM_NLIMITS; r++)
		getrlimit(r, &s->rlim[r]);
	s->sid = getsid(0);
	s->pgid = getpgrp();
	MUST(readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1) > 0);
	s->cmdline_len = slurp("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	s->environ_len = slurp("/proc/self/environ", s->environ, sizeof(s->environ));
	s->auxv_len = slurp("/proc/self/auxv", s->auxv, sizeof(s->auxv));
	s->rseq_probe = __rseq_size ? rseq_probe() : -1;
}

static int same_set(const sigset_t *a, const sigset_t *b, char *diff, size_t size)
{
	int same = 1;

	diff[0] = 0;
	for (int sig = 1; sig <= NSIG_MAX; sig++)
		if (sigismember(a, sig) != sigismember(b, sig)) {
			size_t used = strlen(diff);

			snprintf(diff + used, size - used, " %c%d", sigismember(b, sig) ? '+' : '-', sig);
			same = 0;
		}
	return same;
}

static void compare(void)
{
	char diff[512];

	for (int sig = 1; sig <= NSIG_MAX; sig++) {
		const struct sigaction *a = &before.sa[sig], *b = &after.sa[sig];

		if (before.sa_ret[sig] != after.sa_ret[sig]) {
			failf("sigaction(%d) returned %d, was %d", sig, after.sa_ret[sig], before.sa_ret[sig]);
			continue;
		}
		if (before.sa_ret[sig])
			continue;
		if (a->sa_handler != b->sa_handler)
			failf("signal %d handler is %p, was %p", sig, (void *)b->sa_handler,
			      (void *)a->sa_handler);
		if (a->sa_flags != b->sa_flags)
			failf("signal %d sa_flags are %#x, were %#x", sig, b->sa_flags, a->sa_flags);
		if (a->sa_restorer != b->sa_restorer)
			failf("signal %d sa_restorer is %p, was %p", sig, (void *)b->sa_restorer,
			      (void *)a->sa_restorer);
		if (!same_set(&a->sa_mask, &b->sa_mask, diff, sizeof(diff)))
			failf("signal %d sa_mask differs:%s", sig, diff);
	}
	if (before.altstack.ss_sp != after.altstack.ss_sp ||
	    before.altstack.ss_size != after.altstack.ss_size ||
	    before.altstack.ss_flags != after.altstack.ss_flags)
		failf("sigaltstack is %p/%zu/%#x, was %p/%zu/%#x", after.altstack.ss_sp,
		      after.altstack.ss_size, after.altstack.ss_flags, before.altstack.ss_sp,
		      before.altstack.ss_size, before.altstack.ss_flags);
	if (!same_set(&before.blocked, &after.blocked, diff, sizeof(diff)))
		failf("blocked mask differs:%s", diff);
	if (!same_set(&before.pending, &after.pending, diff, sizeof(diff)))
		failf("pending set differs:%s", diff);
	if (strcmp(before.name, after.name))
		failf("task name is \"%s\", was \"%s\"", after.name, before.name);
	if (strcmp(before.cwd, after.cwd) || before.cwd_ino != after.cwd_ino)
		failf("cwd is %s, was %s", after.cwd, before.cwd);
	if (before.umask != after.umask)
		failf("umask is %#o, was %#o", after.umask, before.umask);
	if (before.robust_head != after.robust_head || before.robust_len != after.robust_len)
		failf("robust list is %p/%zu, was %p/%zu", after.robust_head, after.robust_len,
		      before.robust_head, before.robust_len);
	if (before.tid_addr != after.tid_addr)
		failf("clear_child_tid is %p, was %p", after.tid_addr, before.tid_addr);
	if (before.personality != after.personality)
		failf("personality is %#x, was %#x", after.personality, before.personality);
	if (before.nnp != after.nnp)
		failf("no_new_privs is %d, was %d", after.nnp, before.nnp);
	for (int r = 0; r < RLIM_NLIMITS; r++)
		if (before.rlim[r].rlim_cur != after.rlim[r].rlim_cur ||
		    before.rlim[r].rlim_max != after.rlim[r].rlim_max)
			failf("rlimit %d is %llu/%llu, was %llu/%llu", r,
			      (unsigned long long)after.rlim[r].rlim_cur,
			      (unsigned long long)after.rlim[r].rlim_max,
			      (unsigned long long)before.rlim[r].rlim_cur,
			      (unsigned long long)before.rlim[r].rlim_max);
	if (before.sid != after.sid || before.pgid != after.pgid)
		failf("sid/pgid are %d/%d, were %d/%d", after.sid, after.pgid, before.sid, before.pgid);
	if (strcmp(before.exe, after.exe))
		failf("exe is %s, was %s", after.exe, before.exe);
	if (before.cmdline_len != after.cmdline_len ||
	    memcmp(before.cmdline, after.cmdline, before.cmdline_len))
		failf("/proc/self/cmdline differs (%zd bytes, was %zd)", after.cmdline_len,
		      before.cmdline_len);
	if (before.environ_len != after.environ_len ||
	    memcmp(before.environ, after.environ, before.environ_len))
		failf("/proc/self/environ differs (%zd bytes, was %zd)", after.environ_len,
		      before.environ_len);
	if (before.auxv_len != after.auxv_len || memcmp(before.auxv, after.auxv, before.auxv_len))
		failf("/proc/self/auxv differs (%zd bytes, was %zd)", after.auxv_len, before.auxv_len);
	if (before.rseq_probe == EBUSY && after.rseq_probe != EBUSY)
		failf("rseq is no longer registered (re-registration gave %s)",
		      after.rseq_probe ? strerror(after.rseq_probe) : "success");
}

/* Takes the pending signals one by one: they must be the ones sent. */
static void check_pending(void)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;
	siginfo_t si;
	int want_val[2] = { 4242, 4343 };

	sigemptyset(&set);
	sigaddset(&set, RT(5));
	for (int i = 0; i < 2; i++) {
		memset(&si, 0, sizeof(si));
		if (sigtimedwait(&set, &si, &zero) != RT(5)) {
			failf("queued SIGRTMIN+5 #%d is gone", i + 1);
			return;
		}
		if (si.si_code != SI_QUEUE || si.si_value.sival_int != want_val[i] ||
		    si.si_pid != getpid())
			failf("queued SIGRTMIN+5 #%d has code %d value %d pid %d, want %d %d %d", i + 1,
			      si.si_code, si.si_value.sival_int, si.si_pid, SI_QUEUE, want_val[i],
			      getpid());
	}
	if (sigtimedwait(&set, &si, &zero) != -1)
		failf("a third SIGRTMIN+5 was pending");
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	if (sigtimedwait(&set, &si, &zero) != SIGWINCH)
		failf("pending SIGWINCH is gone");
	else if (si.si_pid != getpid())
		failf("pending SIGWINCH has si_pid %d, want %d", si.si_pid, getpid());
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char sub[1024];
	stack_t ss;
	sigset_t block;
	struct rlimit rl;
	union sigval v;
	void *rseq_area;

	prog_init();

	set_action(SIGHUP, SIG_IGN, 0, 0, 0);
	set_action(SIGPIPE, SIG_IGN, 0, 0, 0);
	set_action(SIGINT, h_info, SA_SIGINFO | SA_RESTART, SIGTERM, SIGQUIT);
	set_action(SIGALRM, h_plain, SA_NODEFER | SA_RESETHAND, 0, 0);
	set_action(SIGTERM, h_plain, SA_ONSTACK, RT(1), 0);
	set_action(RT(2), h_info, SA_SIGINFO | SA_RESTART | SA_ONSTACK, SIGUSR2, RT(7));
	set_action(SIGCHLD, SIG_DFL, SA_NOCLDSTOP, 0, 0);

	memset(&ss, 0, sizeof(ss));
	ss.ss_sp = altstack_mem;
	ss.ss_size = sizeof(altstack_mem);
	MUST(sigaltstack(&ss, NULL) == 0);

	sigemptyset(&block);
	sigaddset(&block, SIGWINCH);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, RT(5));
	MUST(sigprocmask(SIG_BLOCK, &block, NULL) == 0);
	/* Thread-directed (tgkill), unlike the process-wide sigqueue ones. */
	MUST(syscall(SYS_tgkill, getpid(), gettid(), SIGWINCH) == 0);
	v.sival_int = 4242;
	MUST(sigqueue(getpid(), RT(5), v) == 0);
	v.sival_int = 4343;
	MUST(sigqueue(getpid(), RT(5), v) == 0);

	MUST(prctl(PR_SET_NAME, "cryo-misc-name") == 0);
	snprintf(sub, sizeof(sub), "%s/cwd sub", dir);
	MUST(mkdir(sub, 0755) == 0 || errno == EEXIST);
	MUST(chdir(sub) == 0);
	umask(027);
	MUST(personality(personality(0xffffffff) | ADDR_NO_RANDOMIZE) != -1);
	MUST(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	MUST(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 777) {
		rl.rlim_cur = 777;
		MUST(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}

	snapshot(&before);
	if (before.rseq_probe != EBUSY)
		printf("SKIP rseq: glibc did not register rseq (probe: %d)\n", before.rseq_probe);
	prog_ready();

	if (wait_for_signal()) {
		umask(0);
		signal(SIGHUP, SIG_DFL);
	}

	snapshot(&after);
	compare();
	check_pending();
	if (before.rseq_probe == EBUSY) {
		rseq_area = (char *)__builtin_thread_pointer() + __rseq_offset;
		sched_yield();
		if ((int)((struct rseq *)rseq_area)->cpu_id < 0)
			failf("rseq cpu_id is %d", (int)((struct rseq *)rseq_area)->cpu_id);
	}

	return prog_finish();
}
