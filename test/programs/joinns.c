/*
 * joinns: a tree restored into namespaces that exist already (--join-ns).
 *
 * The root listens on TCP 127.0.0.1 (a port of the kernel's choosing) and
 * forks a child. On SIGUSR1 it reads DIR/expect: a network namespace link, a
 * uts namespace link and a host name, one a line (written by the test before
 * the restore), and checks that it and its child are in those namespaces, that
 * the host name is that one, and that its listening socket takes a connection
 * made now from inside that network namespace.
 * SIGUSR2 first moves the root into a new uts namespace.
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void link_of(pid_t pid, const char *kind, char *out, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, kind);
	n = readlink(path, out, size - 1);
	out[n < 0 ? 0 : n] = 0;
}

int main(int argc, char **argv)
{
	char file[512], want_net[64], want_uts[64], want_host[80], got[64], host[80];
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int ls, c, s, status;
	pid_t child;
	FILE *f;

	prog_init();
	ls = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	MUST(ls >= 0 && bind(ls, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(ls, 4) == 0);
	MUST(getsockname(ls, (struct sockaddr *)&a, &alen) == 0);
	child = fork();
	MUST(child >= 0);
	if (child == 0) {
		for (;;)
			pause();
	}
	prog_ready();
	if (wait_for_signal())
		MUST(unshare(CLONE_NEWUTS) == 0);

	snprintf(file, sizeof(file), "%s/expect", prog_dir(argc, argv));
	f = fopen(file, "r");
	MUST(f != NULL);
	MUST(fscanf(f, "%63s %63s %79s", want_net, want_uts, want_host) == 3);
	fclose(f);
	for (int i = 0; i < 2; i++) {
		pid_t p = i ? child : getpid();
		const char *who = i ? "the child" : "the root";

		link_of(p, "net", got, sizeof(got));
		if (strcmp(got, want_net))
			failf("%s is in network namespace %s, want %s", who, got, want_net);
		link_of(p, "uts", got, sizeof(got));
		if (strcmp(got, want_uts))
			failf("%s is in uts namespace %s, want %s", who, got, want_uts);
	}
	gethostname(host, sizeof(host));
	if (strcmp(host, want_host))
		failf("host name %s, want %s", host, want_host);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0) {
		failf("cannot connect to my listening socket on port %d: %s", ntohs(a.sin_port), strerror(errno));
	} else {
		s = accept(ls, NULL, NULL);
		if (s < 0)
			failf("accept: %s", strerror(errno));
		else
			close(s);
	}
	if (c >= 0)
		close(c);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	return prog_finish();
}
