/*
 * ptymnt: pseudo-terminals of a tree's own devpts, in its own mount namespace.
 *
 * The program unshares CLONE_NEWNS|CLONE_NEWPID and forks R, pid 1 of the new
 * pid namespace (the tree to dump). R makes every mount private, takes the
 * host's devpts and /dev/shm mounts off, and mounts a devpts of its own on
 * /dev/pts (newinstance, ptmxmode=0666, mode=620, gid=5). On it:
 *   - X through /dev/pts/ptmx (index 0), closed again once A and B are open,
 *     so the tree holds 1 and 2 with 0 free;
 *   - A through /dev/ptmx (the devtmpfs node: the kernel finds the devpts
 *     mounted on "pts" beside it), index 1: packet mode, no echo, no output
 *     processing, VINTR ^G, window size 33x77 (500x600 pixels); the
 *     controlling terminal of C, a child of R that is a session leader;
 *   - B through /dev/pts/ptmx, index 2: R holds its slave too (raw), "early\n"
 *     is queued on it from the master, and the master is locked again;
 *   - D through /dev/pts/ptmx, index 3: R holds its slave, hung up by the
 *     close of its master (so /dev/pts/3 is gone).
 * C blocks in read() on A's slave. Prints "child PID" (R's host pid, from the
 * parent), "ptys 1 2", then READY (from R).
 *
 * After SIGUSR1 R checks: the indices (TIOCGPTN, ptsname), that /dev/pts holds
 * exactly ptmx, 1 and 2 (so the pairs were made in this devpts, not another),
 * that each master's pty is of the devpts on /dev/pts (its peer, opened O_PATH
 * with TIOCGPTPEER) and /dev/pts/N is the slave R holds, the devpts's mount
 * options and ptmx mode, A's parameters and its session and foreground group,
 * B's lock and queued data, D's slave still hung up and of this devpts; then
 * B both ways, and A: "check\n" to A's master,
 * which C reads on its slave; C checks its session, controlling terminal
 * (tty_nr, ttyname /dev/pts/1, the same node as its fd) and answers on
 * /dev/tty; R reads "C ok" on A's master. SIGUSR2 changes A's window size first,
 * so the check must FAIL.
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

static int tty_nr_of_self(void)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY), n, nr = -1;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %d", &nr) != 1)
		return -1;
	return nr;
}

static void addbad(char *bad, size_t sz, const char *what)
{
	size_t used = strlen(bad);

	snprintf(bad + used, sz - used, "%s%s", used ? ", " : "", what);
}

/* C: session leader, A's slave its controlling terminal. */
static int run_c(int ready_w)
{
	char buf[64], bad[512] = "", line[600], name[64];
	struct stat st, node;
	int s, t, n;

	MUST(setsid() == getpid());
	MUST((s = open("/dev/pts/1", O_RDWR)) >= 0); /* no O_NOCTTY: the controlling terminal */
	MUST(write(ready_w, "c", 1) == 1);
	close(ready_w);
	n = read(s, buf, sizeof(buf) - 1);
	if (n <= 0 || strncmp(buf, "check\n", 6))
		addbad(bad, sizeof(bad), "did not read \"check\" on the slave");
	if (getsid(0) != getpid() || tcgetsid(s) != getpid())
		addbad(bad, sizeof(bad), "session");
	if (fstat(s, &st) || tty_nr_of_self() != (int)st.st_rdev || st.st_rdev != makedev(136, 1))
		addbad(bad, sizeof(bad), "controlling terminal (stat tty_nr)");
	if (ttyname_r(s, name, sizeof(name)) || strcmp(name, "/dev/pts/1"))
		addbad(bad, sizeof(bad), "ttyname is not /dev/pts/1");
	if (stat("/dev/pts/1", &node) || node.st_rdev != st.st_rdev || node.st_dev != st.st_dev || node.st_ino != st.st_ino)
		addbad(bad, sizeof(bad), "/dev/pts/1 is not the node of the slave fd");
	t = open("/dev/tty", O_RDWR);
	if (t < 0) {
		addbad(bad, sizeof(bad), "cannot open /dev/tty");
		t = s;
	}
	n = snprintf(line, sizeof(line), "C %s%s\n", bad[0] ? "bad: " : "ok", bad);
	if (write(t, line, n) != n)
		return 3;
	return 0;
}

/* The devpts of a master's pty: its peer, opened O_PATH (no open of the terminal). */
static int peer_stat(int m, struct stat *st)
{
	int p = ioctl(m, TIOCGPTPEER, O_PATH | O_CLOEXEC), r;

	if (p < 0)
		return -1;
	r = fstat(p, st);
	close(p);
	return r;
}

/* The entries of /dev/pts, sorted, space-separated. */
static void pts_entries(char *out, size_t sz)
{
	struct dirent **names;
	int n = scandir("/dev/pts", &names, NULL, alphasort), i;
	size_t used = 0;

	out[0] = 0;
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.')
			used += snprintf(out + used, sz - used, "%s%s", used ? " " : "", names[i]->d_name);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

/* The super block options of the mount on /dev/pts. */
static void pts_options(char *out, size_t sz)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];

	out[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char mp[512], fstype[64], src[256], opts[512];
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*d %*d %*s %*s %511s", mp) != 1 || strcmp(mp, "/dev/pts"))
			continue;
		if (sscanf(sep + 3, "%63s %255s %511s", fstype, src, opts) == 3)
			snprintf(out, sz, "%s %s %s", fstype, src, opts);
	}
	if (f)
		fclose(f);
}

/* Reads A's master (packet mode: a status byte or TIOCPKT_DATA first) until a line of C's came, or 5 s. */
static void read_answer(int m, char *out, size_t sz)
{
	size_t used = 0;
	struct pollfd pfd = { .fd = m, .events = POLLIN };

	out[0] = 0;
	while (!strchr(out, '\n')) {
		char buf[512];
		int n;

		if (poll(&pfd, 1, 5000) <= 0)
			return;
		n = read(m, buf, sizeof(buf));
		if (n <= 0)
			return;
		if (buf[0] != 0)
			continue;
		if (used + n > sz - 1)
			return;
		memcpy(out + used, buf + 1, n - 1);
		used += n - 1;
		out[used] = 0;
	}
}

static int read_some(int fd, char *buf, size_t sz)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n;

	memset(buf, 0, sz);
	if (poll(&pfd, 1, 5000) <= 0)
		return -1;
	n = read(fd, buf, sz - 1);
	return n;
}

int main(int argc, char **argv)
{
	int x, ma, mb, sb, md, hs, one = 1, v, ready[2], status;
	struct termios tio;
	struct winsize ws = { .ws_row = 33, .ws_col = 77, .ws_xpixel = 500, .ws_ypixel = 600 };
	char opts_before[700], opts_now[700], ents[256], buf[256];
	pid_t kid, c;

	(void)argc;
	(void)argv;
	prog_init();
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
	/* The host's devpts (and tmpfs on /dev/shm), each maybe more than once. */
	while (umount2("/dev/pts", MNT_DETACH) == 0)
		;
	while (umount2("/dev/shm", MNT_DETACH) == 0)
		;
	MUST(mount("ptymnt", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620,gid=5") == 0);
	MUST((x = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY)) >= 0);
	MUST(ioctl(x, TIOCGPTN, &v) == 0 && v == 0);
	MUST((ma = open("/dev/ptmx", O_RDWR | O_NOCTTY)) >= 0);
	MUST(ioctl(ma, TIOCGPTN, &v) == 0 && v == 1);
	MUST((mb = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY)) >= 0);
	MUST(ioctl(mb, TIOCGPTN, &v) == 0 && v == 2);
	MUST((md = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY)) >= 0);
	MUST(ioctl(md, TIOCGPTN, &v) == 0 && v == 3);
	close(x);

	MUST(unlockpt(ma) == 0);
	MUST(ioctl(ma, TIOCPKT, &one) == 0);
	MUST(ioctl(ma, TIOCSWINSZ, &ws) == 0);
	MUST(pipe(ready) == 0);
	c = fork();
	MUST(c >= 0);
	if (c == 0) {
		close(ready[0]);
		close(ma);
		close(mb);
		close(md);
		exit(run_c(ready[1]));
	}
	close(ready[1]);
	MUST(read(ready[0], buf, 1) == 1);
	close(ready[0]);
	{
		int s = open("/dev/pts/1", O_RDWR | O_NOCTTY);
		MUST(s >= 0 && tcgetattr(s, &tio) == 0);
		tio.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);
		tio.c_oflag &= ~OPOST;
		tio.c_cc[VINTR] = 0x07;
		MUST(tcsetattr(s, TCSANOW, &tio) == 0);
		close(s);
	}

	MUST(unlockpt(mb) == 0);
	MUST((sb = open("/dev/pts/2", O_RDWR | O_NOCTTY)) >= 0);
	MUST(tcgetattr(sb, &tio) == 0);
	cfmakeraw(&tio);
	MUST(tcsetattr(sb, TCSANOW, &tio) == 0);
	MUST(write(mb, "early\n", 6) == 6);
	v = 1;
	MUST(ioctl(mb, TIOCSPTLCK, &v) == 0);
	MUST(unlockpt(md) == 0);
	MUST((hs = open("/dev/pts/3", O_RDWR | O_NOCTTY)) >= 0);
	close(md);
	pts_options(opts_before, sizeof(opts_before));
	printf("ptys 1 2\n");
	prog_ready();

	if (wait_for_signal()) {
		struct winsize w1 = { .ws_row = 1, .ws_col = 1 };
		ioctl(ma, TIOCSWINSZ, &w1);
	}

	struct stat pts, pa, pb, na, nb, fsb, ptmx;
	struct winsize w;
	char *name;
	if (ioctl(ma, TIOCGPTN, &v) || v != 1 || !(name = ptsname(ma)) || strcmp(name, "/dev/pts/1"))
		failf("master A is pty %d now, not 1", v);
	if (ioctl(mb, TIOCGPTN, &v) || v != 2 || !(name = ptsname(mb)) || strcmp(name, "/dev/pts/2"))
		failf("master B is pty %d now, not 2", v);
	pts_entries(ents, sizeof(ents));
	if (strcmp(ents, "1 2 ptmx"))
		failf("/dev/pts holds \"%s\", not \"1 2 ptmx\"", ents);
	if (stat("/dev/pts", &pts) || peer_stat(ma, &pa) || peer_stat(mb, &pb) || pa.st_dev != pts.st_dev || pb.st_dev != pts.st_dev)
		failf("the ptys are not of the devpts on /dev/pts");
	if (stat("/dev/pts/1", &na) || na.st_rdev != makedev(136, 1) || na.st_ino != pa.st_ino)
		failf("/dev/pts/1 is not A's slave");
	if (stat("/dev/pts/2", &nb) || fstat(sb, &fsb) || nb.st_rdev != makedev(136, 2) || nb.st_ino != fsb.st_ino || fsb.st_dev != pts.st_dev)
		failf("/dev/pts/2 is not the slave B R holds");
	if (stat("/dev/pts/ptmx", &ptmx) || (ptmx.st_mode & 07777) != 0666)
		failf("/dev/pts/ptmx: mode %o, not 666", ptmx.st_mode & 07777);
	pts_options(opts_now, sizeof(opts_now));
	if (strcmp(opts_now, opts_before) || !strstr(opts_now, "ptmxmode=666") || !strstr(opts_now, "mode=620"))
		failf("the devpts on /dev/pts: \"%s\", was \"%s\"", opts_now, opts_before);
	if (ioctl(ma, TIOCGPKT, &v) || v != 1)
		failf("A: packet mode is off");
	if (ioctl(ma, TIOCGPTLCK, &v) || v != 0)
		failf("A: locked");
	if (ioctl(ma, TIOCGWINSZ, &w) || w.ws_row != 33 || w.ws_col != 77 || w.ws_xpixel != 500 || w.ws_ypixel != 600)
		failf("A: window size %dx%d (%dx%d pixels)", w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel);
	if (tcgetattr(ma, &tio) || (tio.c_lflag & ECHO) || (tio.c_oflag & OPOST) || tio.c_cc[VINTR] != 0x07 || !(tio.c_lflag & ICANON))
		failf("A: termios lflag %#x oflag %#x VINTR %#x", tio.c_lflag, tio.c_oflag, tio.c_cc[VINTR]);
	if (ioctl(ma, TIOCGSID, &v) || v != c)
		failf("A: its session is %d, want %d", v, (int)c);
	if (ioctl(ma, TIOCGPGRP, &v) || v != c)
		failf("A: its foreground group is %d, want %d", v, (int)c);
	if (ioctl(mb, TIOCGPTLCK, &v) || v != 1)
		failf("B: not locked");
	{
		struct stat hst;
		char link[64], want[] = "/dev/pts/3 (deleted)";
		ssize_t n;

		snprintf(buf, sizeof(buf), "/proc/self/fd/%d", hs);
		n = readlink(buf, link, sizeof(link) - 1);
		link[n < 0 ? 0 : n] = 0;
		if (fstat(hs, &hst) || hst.st_rdev != makedev(136, 3) || hst.st_dev != pts.st_dev || strcmp(link, want))
			failf("D: the hung slave is %s, device %d:%d, not of the devpts on /dev/pts", link, major(hst.st_rdev), minor(hst.st_rdev));
		if (read(hs, buf, sizeof(buf)) != 0 || write(hs, "x", 1) != -1 || errno != EIO)
			failf("D: the slave is not hung up");
	}
	/* B: the queued line, then both ways. */
	if (read_some(sb, buf, sizeof(buf)) != 6 || strcmp(buf, "early\n"))
		failf("B: the slave read \"%s\", not the queued \"early\"", buf);
	if (write(sb, "up", 2) != 2 || read_some(mb, buf, sizeof(buf)) != 2 || strcmp(buf, "up"))
		failf("B: the master read \"%s\", not \"up\"", buf);
	if (write(mb, "down", 4) != 4 || read_some(sb, buf, sizeof(buf)) != 4 || strcmp(buf, "down"))
		failf("B: the slave read \"%s\", not \"down\"", buf);
	/* A: C's check. */
	if (write(ma, "check\n", 6) != 6)
		failf("A: cannot write to the master: %s", strerror(errno));
	read_answer(ma, buf, sizeof(buf));
	if (strcmp(buf, "C ok\n"))
		failf("A: C answered \"%s\"", buf);
	if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failf("C did not exit 0");
	return prog_finish();
}
