/* TCP connections still being made (SYN_SENT), over IPv4 and IPv6 loopback.
 * Their listeners belong to a peer outside the dumped tree, each listening with
 * a backlog of 0 and its one place taken by a connection of the peer's own, so
 * that the kernel drops the tree's SYNs: its sockets stay in SYN_SENT across
 * dump and restore. After restore the program checks they still are, with the
 * same local ports, then signals the peer, which accepts; the SYN the kernel
 * sends again gets through, and a byte goes each way.
 * SIGUSR2: one socket is replaced by a new one, never connected. */
#include "common.h"
#include "tcpstate.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define NCONN 2

static const char *names[NCONN] = { "IPv4", "IPv6" };

static int family_of(int k)
{
	return k == 0 ? AF_INET : AF_INET6;
}

static socklen_t loopback(int k, int port, struct sockaddr_storage *a)
{
	memset(a, 0, sizeof(*a));
	if (k == 0) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)a;
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*v4);
	}
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
	v6->sin6_family = AF_INET6;
	v6->sin6_port = htons(port);
	v6->sin6_addr = in6addr_loopback;
	return sizeof(*v6);
}

static int port_of(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);
	MUST(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
	return a.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&a)->sin_port) : ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
}

/* The peer: listeners whose backlog is full until SIGUSR1, then an echo of one byte (plus one) per connection. */
static void peer(int report)
{
	int ls[NCONN], fill[NCONN], ports[NCONN];
	sigset_t none;

	alarm(300); /* never outlives a test that lost it */
	for (int k = 0; k < NCONN; k++) {
		struct sockaddr_storage a;
		socklen_t l = loopback(k, 0, &a);
		ls[k] = socket(family_of(k), SOCK_STREAM, 0);
		MUST(ls[k] >= 0 && bind(ls[k], (struct sockaddr *)&a, l) == 0 && listen(ls[k], 0) == 0);
		ports[k] = port_of(ls[k]);
		l = loopback(k, ports[k], &a);
		fill[k] = socket(family_of(k), SOCK_STREAM, 0);
		MUST(fill[k] >= 0 && connect(fill[k], (struct sockaddr *)&a, l) == 0);
	}
	char pids[64];
	snprintf(pids, sizeof(pids), "%d %d %d\n", getpid(), ports[0], ports[1]);
	MUST(write(report, pids, strlen(pids)) == (ssize_t)strlen(pids));
	close(report);
	sigemptyset(&none);
	while (!got_usr1)
		sigsuspend(&none);
	for (int k = 0; k < NCONN; k++) {
		int f = accept(ls[k], NULL, NULL);
		MUST(f >= 0);
		close(f);
		close(fill[k]);
	}
	/* Whichever comes, for as long as a test may take. */
	struct pollfd pl[NCONN] = { { ls[0], POLLIN, 0 }, { ls[1], POLLIN, 0 } };
	for (int served = 0; served < NCONN && poll(pl, NCONN, 60000) > 0;) {
		for (int k = 0; k < NCONN; k++) {
			if (!(pl[k].revents & POLLIN))
				continue;
			int c = accept(ls[k], NULL, NULL);
			MUST(c >= 0);
			char b;
			if (read(c, &b, 1) == 1) {
				b++;
				MUST(write(c, &b, 1) == 1);
			}
			close(c);
			pl[k].fd = -1;
			served++;
		}
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	int sk[NCONN], ports[NCONN], local[NCONN], p[2];
	pid_t peer_pid;

	prog_init();
	MUST(pipe(p) == 0);
	pid_t mid = fork();
	MUST(mid >= 0);
	if (mid == 0) {
		setsid();
		close(p[0]);
		if (fork() == 0)
			peer(p[1]);
		_exit(0);
	}
	close(p[1]);
	MUST(waitpid(mid, NULL, 0) == mid);
	char buf[64] = { 0 };
	ssize_t n = 0, r;
	while ((r = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(p[0]);
	MUST(sscanf(buf, "%d %d %d", &peer_pid, &ports[0], &ports[1]) == 3);
	char pidfile[4200];
	snprintf(pidfile, sizeof(pidfile), "%s/tcpsyn-peer.pid", dir);
	FILE *pf = fopen(pidfile, "w");
	MUST(pf != NULL);
	fprintf(pf, "%d\n", peer_pid);
	fclose(pf);

	for (int k = 0; k < NCONN; k++) {
		struct sockaddr_storage a;
		socklen_t l = loopback(k, ports[k], &a);
		sk[k] = socket(family_of(k), SOCK_STREAM | SOCK_NONBLOCK, 0);
		MUST(sk[k] >= 0);
		MUST(connect(sk[k], (struct sockaddr *)&a, l) < 0 && errno == EINPROGRESS);
		MUST(tcp_state(sk[k]) == TCP_SYN_SENT);
		local[k] = port_of(sk[k]);
	}
	printf("PORTS %d %d\n", local[0], local[1]);
	prog_ready();

	if (wait_for_signal()) {
		int fresh = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		MUST(fresh >= 0 && dup2(fresh, sk[0]) == sk[0]);
		close(fresh);
	}
	int good[NCONN];
	for (int k = 0; k < NCONN; k++) {
		int st = tcp_state(sk[k]);
		good[k] = 0;
		if (st != TCP_SYN_SENT)
			failf("%s: the connection is in state %d after the restore, not SYN_SENT", names[k], st);
		else if (port_of(sk[k]) != local[k])
			failf("%s: the connection's local port is %d, not %d", names[k], port_of(sk[k]), local[k]);
		else
			good[k] = 1;
	}
	/* The peer takes its own connections out of the way: the SYNs get through. */
	MUST(kill(peer_pid, SIGUSR1) == 0);
	for (int k = 0; k < NCONN; k++) {
		if (!good[k])
			continue;
		struct pollfd pfd = { sk[k], POLLOUT, 0 };
		if (poll(&pfd, 1, 60000) != 1) {
			failf("%s: the connection was not made within 60 s", names[k]);
			continue;
		}
		int err = 0;
		socklen_t el = sizeof(err);
		MUST(getsockopt(sk[k], SOL_SOCKET, SO_ERROR, &err, &el) == 0);
		char b = (char)('a' + k);
		if (err || write(sk[k], &b, 1) != 1) {
			failf("%s: the connection failed: %s", names[k], strerror(err ? err : errno));
			continue;
		}
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 30000) != 1 || read(sk[k], &b, 1) != 1 || b != (char)('a' + k + 1))
			failf("%s: no answer from the peer", names[k]);
	}
	return prog_finish();
}
