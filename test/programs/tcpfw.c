/* Half-closed TCP connections behind the tree's own firewall (zdtm's
 * socket-tcp-closed-last-ack, over IPv4 and IPv6): in a network namespace of
 * its own, the client shut down for writing, the server got that FIN, then a
 * rule of the namespace began dropping what comes to the server's port (an
 * iptables rule for IPv4, a table "inet cryofw" of nft for IPv6) and the
 * server shut down: its FIN is never acknowledged (LAST_ACK), the client's end
 * is CLOSE. After restore the rules are there, the server still reads the end
 * of the stream and is in LAST_ACK, both ends refuse to send; with the rules
 * taken out, the server's FIN goes through and its end closes.
 * SIGUSR2: the rules stay in (FAIL: the server never closes). */
#include "netsetup.h"
#include "tcpstate.h"
#include <arpa/inet.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

struct conn {
	const char *name;
	int c, s, port;
};

static int wait_state(int fd, int want, int ms)
{
	for (int i = 0; i < ms / 10 && tcp_state(fd) != want; i++)
		usleep(10000);
	return tcp_state(fd) == want;
}

static void rule(const struct conn *k, int add)
{
	char cmd[512];
	if (!strcmp(k->name, "IPv4"))
		snprintf(cmd, sizeof(cmd), "iptables -w -t filter %s INPUT -p tcp --dport %d -j DROP", add ? "-A" : "-D", k->port);
	else if (add)
		snprintf(cmd, sizeof(cmd), "nft add table inet cryofw && nft add chain inet cryofw input '{ type filter hook input priority 0; }'"
			 " && nft add rule inet cryofw input tcp dport %d drop", k->port);
	else
		snprintf(cmd, sizeof(cmd), "nft delete table inet cryofw");
	sh(cmd);
}

static void make(struct conn *k, int family, const char *name)
{
	struct sockaddr_storage a = { 0 };
	socklen_t l = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int ls = socket(family, SOCK_STREAM, 0);
	MUST(ls >= 0);
	k->name = name;
	a.ss_family = family;
	if (family == AF_INET)
		inet_pton(AF_INET, "127.0.0.1", &((struct sockaddr_in *)&a)->sin_addr);
	else
		inet_pton(AF_INET6, "::1", &((struct sockaddr_in6 *)&a)->sin6_addr);
	MUST(bind(ls, (struct sockaddr *)&a, l) == 0 && listen(ls, 1) == 0);
	MUST(getsockname(ls, (struct sockaddr *)&a, &l) == 0);
	k->port = ntohs(((struct sockaddr_in *)&a)->sin_port); /* sin6_port is at the same place */
	k->c = socket(family, SOCK_STREAM, 0);
	MUST(k->c >= 0 && connect(k->c, (struct sockaddr *)&a, l) == 0);
	k->s = accept(ls, NULL, NULL);
	MUST(k->s >= 0);
	close(ls);
	MUST(shutdown(k->c, SHUT_WR) == 0);
	MUST(wait_state(k->s, TCP_CLOSE_WAIT, 5000));
	rule(k, 1);
	MUST(shutdown(k->s, SHUT_WR) == 0);
	/* The client gets the FIN (its connection goes on in TIME_WAIT), its ACK is dropped. */
	MUST(wait_state(k->c, TCP_CLOSE, 5000) && tcp_state(k->s) == TCP_LAST_ACK);
}

static void check_ends(const struct conn *k)
{
	char b[4];
	ssize_t r;
	if (tcp_state(k->s) != TCP_LAST_ACK)
		failf("%s: the server is in state %d, not LAST_ACK", k->name, tcp_state(k->s));
	r = recv(k->s, b, sizeof(b), MSG_DONTWAIT);
	if (r != 0)
		failf("%s: the server's recv gave %zd (%s), not the end of the stream", k->name, r, r < 0 ? strerror(errno) : "data");
	for (int i = 0; i < 2; i++) {
		int fd = i ? k->c : k->s;
		errno = 0;
		if (send(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != -1 || errno != EPIPE)
			failf("%s: the %s's send did not fail with EPIPE (%s)", k->name, i ? "client" : "server", strerror(errno));
	}
}

int main(int argc, char **argv)
{
	struct conn k[2];
	char want[64];
	int spoil;

	prog_init();
	(void)prog_dir(argc, argv);
	MUST(unshare(CLONE_NEWNET) == 0);
	sh("ip link set lo up");
	make(&k[0], AF_INET, "IPv4");
	make(&k[1], AF_INET6, "IPv6");
	for (int i = 0; i < 2; i++)
		check_ends(&k[i]);
	MUST(common_fail_count == 0);
	prog_ready();

	spoil = wait_for_signal();
	snprintf(want, sizeof(want), "--dport %d -j DROP", k[0].port);
	expect_cmd("iptables -w -S INPUT", want);
	snprintf(want, sizeof(want), "tcp dport %d drop", k[1].port);
	expect_cmd("nft list table inet cryofw", want);
	for (int i = 0; i < 2; i++)
		check_ends(&k[i]);
	for (int i = 0; i < 2; i++) {
		if (!spoil)
			rule(&k[i], 0);
	}
	/* Nothing acknowledges the FIN now: the peer's port answers its next try with a reset. */
	for (int i = 0; i < 2; i++) {
		if (!wait_state(k[i].s, TCP_CLOSE, 4000))
			failf("%s: the server is still in state %d, not CLOSE, with its rule %s", k[i].name, tcp_state(k[i].s), spoil ? "in" : "out");
	}
	return prog_finish();
}
