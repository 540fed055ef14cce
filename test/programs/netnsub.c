/*
 * netnsub: network namespaces below the tree root's. The root R unshares a
 * network namespace of its own (lo up) and binds the abstract datagram name
 * @cryo-netnsub-0. Its child A unshares another one, binds @cryo-netnsub-1 and
 * listens on TCP 127.0.0.1:7001 there; A's child B joins R's namespace again
 * (setns) and keeps A's socket of @cryo-netnsub-1 open. R's second child C
 * unshares a third, binds @cryo-netnsub-2 and connects to R's stream listener
 * DIR/netnsub.sock (a path reaches across network namespaces), which R
 * accepts. Then R joins its namespace and A's by a veth pair (cryvR 10.77.0.1,
 * cryvA 10.77.0.2) and prints READY.
 *
 * On SIGUSR1 each task checks, from where it is: the names of its own
 * namespace answer and the others' do not; A reaches its listener on
 * 127.0.0.1, B (in R's) does not there but does through the veth; B's socket is still of A's namespace (SIOCGSKNS); A and C are in
 * namespaces of their own, B in R's; C and R talk over their connection
 * across namespaces, both of whose ends are of C's (unix_stream_connect makes
 * the accepted one in the connecting socket's). Each passes the signal on, reaps its child and exits by
 * its verdict; R prints PASS or FAIL.
 */
#include "common.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define PORT 7001

static socklen_t name_of(int n, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "cryo-netnsub-%d", n);
	return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a->sun_path + 1);
}

static int bind_name(int n)
{
	struct sockaddr_un a;
	socklen_t len = name_of(n, &a);
	int sk = socket(AF_UNIX, SOCK_DGRAM, 0);

	MUST(sk >= 0);
	MUST(bind(sk, (struct sockaddr *)&a, len) == 0);
	return sk;
}

/* Does the name answer here? 1 yes, 0 refused, -1 anything else. */
static int answers(int n)
{
	struct sockaddr_un a;
	socklen_t len = name_of(n, &a);
	int sk = socket(AF_UNIX, SOCK_DGRAM, 0), r;

	if (sk < 0)
		return -1;
	r = connect(sk, (struct sockaddr *)&a, len) == 0 ? 1 : errno == ECONNREFUSED ? 0 : -1;
	close(sk);
	return r;
}

static int tcp_reaches_at(const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int sk = socket(AF_INET, SOCK_STREAM, 0), r;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (sk < 0)
		return -1;
	r = connect(sk, (struct sockaddr *)&a, sizeof(a)) == 0 ? 1 : errno == ECONNREFUSED ? 0 : -1;
	close(sk);
	return r;
}

static int tcp_reaches(void)
{
	return tcp_reaches_at("127.0.0.1");
}

static ino_t netns_of(pid_t pid)
{
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
	return stat(p, &st) ? 0 : st.st_ino;
}

static void lo_up(void)
{
	MUST(system("ip link set lo up") == 0);
}

/* Only the names in `mine` (a bit per name) answer from here. */
static void check_names(const char *who, int mine)
{
	for (int n = 0; n < 3; n++) {
		int want = !!(mine & (1 << n)), got = answers(n);

		if (got != want)
			failf("%s: @cryo-netnsub-%d %s", who, n, got < 0 ? "cannot be asked" : got ? "answers, of another namespace" : "does not answer");
	}
}

static int finish_child(const char *who, pid_t child)
{
	int status;

	if (child > 0) {
		kill(child, SIGUSR1);
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
			failf("%s: its child %d failed", who, child);
	}
	return common_fail_count ? 1 : 0;
}

/* Is socket `sk` of the network namespace task `pid` is in? */
static int sock_of(int sk, pid_t pid)
{
	struct stat st;
	int ns = ioctl(sk, SIOCGSKNS), ok;

	ok = ns >= 0 && fstat(ns, &st) == 0 && st.st_ino == netns_of(pid);
	if (ns >= 0)
		close(ns);
	return ok;
}

static int b_main(int ready, pid_t r, int a_sk)
{
	int fd = open("/proc/self/ns/net", O_RDONLY), ns;
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/%d/ns/net", r);
	ns = open(p, O_RDONLY);
	MUST(fd >= 0 && ns >= 0);
	MUST(setns(ns, CLONE_NEWNET) == 0);
	close(ns);
	close(fd);
	MUST(write(ready, "b", 1) == 1);
	wait_for_signal();
	check_names("B", 1 << 0);
	if (tcp_reaches() != 0)
		failf("B: A's listener answers in R's namespace");
	if (tcp_reaches_at("10.77.0.2") != 1)
		failf("B: A's listener does not answer through the veth");
	if (netns_of(getpid()) != netns_of(r))
		failf("B: not in R's network namespace");
	ns = ioctl(a_sk, SIOCGSKNS);
	if (ns < 0 || fstat(ns, &st) || st.st_ino != netns_of(getppid()))
		failf("B: its socket of @cryo-netnsub-1 is not of A's network namespace");
	return finish_child("B", 0);
}

static int a_main(int ready, pid_t r)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int sk, l, one = 1;
	pid_t b;

	MUST(unshare(CLONE_NEWNET) == 0);
	lo_up();
	sk = bind_name(1);
	l = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	MUST(l >= 0 && setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	MUST(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 8) == 0);
	b = fork();
	MUST(b >= 0);
	if (b == 0)
		_exit(b_main(ready, r, sk));
	close(sk); /* B holds it now */
	MUST(write(ready, "a", 1) == 1);
	wait_for_signal();
	check_names("A", 1 << 1);
	if (tcp_reaches() != 1)
		failf("A: its own listener does not answer");
	if (netns_of(getpid()) == netns_of(r))
		failf("A: in R's network namespace");
	return finish_child("A", b);
}

static struct sockaddr_un path_addr;

static int c_main(int ready, pid_t r)
{
	int sk;
	char buf[4];

	MUST(unshare(CLONE_NEWNET) == 0);
	lo_up();
	bind_name(2);
	sk = socket(AF_UNIX, SOCK_STREAM, 0);
	MUST(sk >= 0 && connect(sk, (struct sockaddr *)&path_addr, sizeof(path_addr)) == 0);
	MUST(write(ready, "c", 1) == 1);
	wait_for_signal();
	check_names("C", 1 << 2);
	if (write(sk, "ping", 4) != 4 || read(sk, buf, 4) != 4 || memcmp(buf, "pong", 4))
		failf("C: no answer from R over the connection across namespaces");
	if (!sock_of(sk, getpid()))
		failf("C: its end of the connection to R is not of its own network namespace");
	if (tcp_reaches() != 0)
		failf("C: A's listener answers here");
	if (netns_of(getpid()) == netns_of(r))
		failf("C: in R's network namespace");
	return finish_child("C", 0);
}

int main(int argc, char **argv)
{
	int p[2], n = 0, l, acc;
	pid_t a, c, r = getpid();
	char ch, buf[4];

	prog_init();
	MUST(unshare(CLONE_NEWNET) == 0);
	lo_up();
	bind_name(0);
	path_addr.sun_family = AF_UNIX;
	snprintf(path_addr.sun_path, sizeof(path_addr.sun_path), "%s/netnsub.sock", prog_dir(argc, argv));
	unlink(path_addr.sun_path);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	MUST(l >= 0 && bind(l, (struct sockaddr *)&path_addr, sizeof(path_addr)) == 0 && listen(l, 1) == 0);
	MUST(pipe(p) == 0);
	a = fork();
	MUST(a >= 0);
	if (a == 0)
		_exit(a_main(p[1], r));
	c = fork();
	MUST(c >= 0);
	if (c == 0)
		_exit(c_main(p[1], r));
	close(p[1]);
	while (n < 3 && read(p[0], &ch, 1) == 1)
		n++;
	MUST(n == 3);
	acc = accept(l, NULL, NULL);
	MUST(acc >= 0);
	close(l);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "ip link add cryvR type veth peer name cryvA netns %d", a);
		MUST(system(cmd) == 0);
		MUST(system("ip addr add 10.77.0.1/24 dev cryvR && ip link set cryvR up") == 0);
		snprintf(cmd, sizeof(cmd), "nsenter -t %d -n sh -c 'ip addr add 10.77.0.2/24 dev cryvA && ip link set cryvA up'", a);
		MUST(system(cmd) == 0);
	}
	prog_ready();
	wait_for_signal();
	check_names("R", 1 << 0);
	if (netns_of(a) == netns_of(c))
		failf("R: A and C share a network namespace");
	kill(c, SIGUSR1);
	if (read(acc, buf, 4) != 4 || memcmp(buf, "ping", 4) || write(acc, "pong", 4) != 4)
		failf("R: no word from C over the connection across namespaces");
	/* The kernel makes the accepted end in the connecting socket's namespace: C's. */
	if (!sock_of(acc, c))
		failf("R: its end of the connection to C is not of C's network namespace, as the kernel made it");
	finish_child("R (A)", a);
	finish_child("R (C)", c);
	return prog_finish();
}
