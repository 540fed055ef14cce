/* Inet sockets that hold no connection:
 *  - a TCP listener on 127.0.0.1 (backlog 7, O_NONBLOCK, SO_REUSEADDR, TCP_NODELAY,
 *    SO_KEEPALIVE with TCP_KEEPIDLE 77, TCP_USER_TIMEOUT 4321 ms: cryo's own field);
 *  - a TCP listener on [::1] with IPV6_V6ONLY, and a dual-stack one on [::];
 *  - an unbound TCP socket, and one bound but not listening;
 *  - two listeners sharing one port by SO_REUSEPORT, the first cleared it after;
 *  - a UDP socket bound to 127.0.0.1 with IP_TTL 33 and IP_TOS 0x10, a UDP socket
 *    connected to it (SO_NO_CHECK), one connected and shut down for writing, a UDP
 *    socket on [::1], a UDP-Lite socket, an unconnected one shut down for reading;
 *  - a UDP socket bound with IP_FREEBIND to an address this host does not have,
 *    then IP_FREEBIND cleared; an IPv6 one bound to 2001:db8::77 with IPV6_FREEBIND kept.
 * After restore each has its address, state and options, and works: a client
 * connects to each listener and is accepted, datagrams go both ways.
 * SIGUSR2: close the first listener first (FAIL). */
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

static int opt(int fd, int level, int o)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, o, &v, &l))
		return -1;
	return v;
}

static void setopt(int fd, int level, int o, int v)
{
	MUST(setsockopt(fd, level, o, &v, sizeof(v)) == 0);
}

static int port_of(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l))
		return -1;
	return ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port : ((struct sockaddr_in6 *)&a)->sin6_port);
}

static int bound(int family, int type, int proto, const char *addr)
{
	int fd = socket(family, type, proto);
	MUST(fd >= 0);
	if (family == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		MUST(inet_pton(AF_INET, addr, &a.sin_addr) == 1);
		MUST(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
		MUST(inet_pton(AF_INET6, addr, &a.sin6_addr) == 1);
		MUST(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	return fd;
}

/* Connect a new client to the listener at addr:port and accept it. */
static void check_accepts(int l, int family, const char *addr, int port, const char *what)
{
	int c = socket(family, SOCK_STREAM, 0), s = -1;
	int ok;
	if (family == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
		inet_pton(AF_INET, addr, &a.sin_addr);
		ok = connect(c, (struct sockaddr *)&a, sizeof(a)) == 0;
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
		inet_pton(AF_INET6, addr, &a.sin6_addr);
		ok = connect(c, (struct sockaddr *)&a, sizeof(a)) == 0;
	}
	if (!ok) {
		failf("%s: connect to %s port %d: %s", what, addr, port, strerror(errno));
	} else {
		for (int i = 0; i < 200 && s < 0; i++) {
			s = accept(l, NULL, NULL);
			if (s < 0)
				usleep(5000);
		}
		if (s < 0)
			failf("%s: accept: %s", what, strerror(errno));
		else if (write(c, "x", 1) != 1 || read(s, (char[1]){0}, 1) != 1)
			failf("%s: no data over the accepted connection", what);
	}
	close(c);
	if (s >= 0)
		close(s);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	prog_init();
	int l4 = bound(AF_INET, SOCK_STREAM, 0, "127.0.0.1");
	setopt(l4, SOL_SOCKET, SO_REUSEADDR, 1);
	setopt(l4, IPPROTO_TCP, TCP_NODELAY, 1);
	setopt(l4, SOL_SOCKET, SO_KEEPALIVE, 1);
	setopt(l4, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	setopt(l4, IPPROTO_TCP, TCP_USER_TIMEOUT, 4321);
	MUST(listen(l4, 7) == 0);
	MUST(fcntl(l4, F_SETFL, O_NONBLOCK) == 0);
	int l6 = socket(AF_INET6, SOCK_STREAM, 0);
	setopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	{
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		MUST(bind(l6, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	MUST(listen(l6, 3) == 0);
	int ld = socket(AF_INET6, SOCK_STREAM, 0);
	setopt(ld, IPPROTO_IPV6, IPV6_V6ONLY, 0);
	{
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
		MUST(bind(ld, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	MUST(listen(ld, 5) == 0);
	int rp1 = socket(AF_INET, SOCK_STREAM, 0), rp2 = socket(AF_INET, SOCK_STREAM, 0);
	setopt(rp1, SOL_SOCKET, SO_REUSEPORT, 1);
	setopt(rp2, SOL_SOCKET, SO_REUSEPORT, 1);
	{
		struct sockaddr_in a = { .sin_family = AF_INET };
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		MUST(bind(rp1, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(rp1, 2) == 0);
		a.sin_port = htons(port_of(rp1));
		MUST(bind(rp2, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(rp2, 2) == 0);
	}
	setopt(rp1, SOL_SOCKET, SO_REUSEPORT, 0);
	int unb = socket(AF_INET, SOCK_STREAM, 0);
	int tb = bound(AF_INET, SOCK_STREAM, 0, "127.0.0.1");
	int u1 = bound(AF_INET, SOCK_DGRAM, 0, "127.0.0.1");
	setopt(u1, IPPROTO_IP, IP_TTL, 33);
	setopt(u1, IPPROTO_IP, IP_TOS, 0x10);
	int u2 = socket(AF_INET, SOCK_DGRAM, 0);
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port_of(u1)) };
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		MUST(connect(u2, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	setopt(u2, SOL_SOCKET, SO_NO_CHECK, 1);
	int u3 = socket(AF_INET, SOCK_DGRAM, 0);
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port_of(u1)) };
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		MUST(connect(u3, (struct sockaddr *)&a, sizeof(a)) == 0);
		MUST(shutdown(u3, SHUT_WR) == 0);
	}
	/* Not connected: the kernel sets the shutdown bits and says ENOTCONN. */
	int u4 = bound(AF_INET, SOCK_DGRAM, 0, "127.0.0.1");
	MUST(shutdown(u4, SHUT_RD) == -1 && errno == ENOTCONN);
	int u4port = port_of(u4);
	int fb = socket(AF_INET, SOCK_DGRAM, 0);
	setopt(fb, IPPROTO_IP, IP_FREEBIND, 1);
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(40404) };
		inet_pton(AF_INET, "192.0.2.77", &a.sin_addr);
		MUST(bind(fb, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	setopt(fb, IPPROTO_IP, IP_FREEBIND, 0);
	int fb6 = socket(AF_INET6, SOCK_DGRAM, 0);
	setopt(fb6, IPPROTO_IPV6, IPV6_FREEBIND, 1);
	{
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(40406) };
		inet_pton(AF_INET6, "2001:db8::77", &a.sin6_addr);
		MUST(bind(fb6, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	int u6 = bound(AF_INET6, SOCK_DGRAM, 0, "::1");
	int ul = bound(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE, "127.0.0.1");
	int ports[] = { port_of(l4), port_of(l6), port_of(ld), port_of(tb), port_of(u1), port_of(u2), port_of(u6), port_of(ul) };

	prog_ready();
	if (wait_for_signal())
		close(l4);

	const char *names[] = { "TCP listener", "IPv6 listener", "dual-stack listener", "bound TCP socket", "bound UDP socket", "connected UDP socket", "IPv6 UDP socket", "UDP-Lite socket" };
	int fds[] = { l4, l6, ld, tb, u1, u2, u6, ul };
	for (int i = 0; i < 8; i++)
		if (port_of(fds[i]) != ports[i])
			failf("%s: port %d, want %d", names[i], port_of(fds[i]), ports[i]);
	if (opt(l4, SOL_SOCKET, SO_ACCEPTCONN) != 1 || opt(l6, SOL_SOCKET, SO_ACCEPTCONN) != 1 || opt(ld, SOL_SOCKET, SO_ACCEPTCONN) != 1)
		failf("a listener does not listen");
	if (port_of(rp1) != port_of(rp2) || port_of(rp1) <= 0 || opt(rp1, SOL_SOCKET, SO_REUSEPORT) != 0 || opt(rp2, SOL_SOCKET, SO_REUSEPORT) != 1 || opt(rp2, SOL_SOCKET, SO_ACCEPTCONN) != 1)
		failf("SO_REUSEPORT listeners: ports %d and %d, reuseport %d and %d", port_of(rp1), port_of(rp2), opt(rp1, SOL_SOCKET, SO_REUSEPORT), opt(rp2, SOL_SOCKET, SO_REUSEPORT));
	if (opt(tb, SOL_SOCKET, SO_ACCEPTCONN) != 0 || port_of(unb) != 0)
		failf("the bound or the unbound TCP socket changed");
	{
		struct tcp_info ti;
		socklen_t l = sizeof(ti);
		if (getsockopt(l4, IPPROTO_TCP, TCP_INFO, &ti, &l) || ti.tcpi_sacked != 7)
			failf("TCP listener: backlog %u, want 7", ti.tcpi_sacked);
	}
	if (!(fcntl(l4, F_GETFL) & O_NONBLOCK))
		failf("TCP listener: O_NONBLOCK lost");
	if (opt(l4, SOL_SOCKET, SO_REUSEADDR) != 1 || opt(l4, IPPROTO_TCP, TCP_NODELAY) != 1 || opt(l4, SOL_SOCKET, SO_KEEPALIVE) != 1 || opt(l4, IPPROTO_TCP, TCP_KEEPIDLE) != 77)
		failf("TCP listener: options lost (reuseaddr %d nodelay %d keepalive %d keepidle %d)", opt(l4, SOL_SOCKET, SO_REUSEADDR), opt(l4, IPPROTO_TCP, TCP_NODELAY), opt(l4, SOL_SOCKET, SO_KEEPALIVE), opt(l4, IPPROTO_TCP, TCP_KEEPIDLE));
	if (opt(l4, IPPROTO_TCP, TCP_USER_TIMEOUT) != 4321)
		failf("TCP listener: TCP_USER_TIMEOUT %d, not 4321", opt(l4, IPPROTO_TCP, TCP_USER_TIMEOUT));
	if (opt(l6, IPPROTO_IPV6, IPV6_V6ONLY) != 1 || opt(ld, IPPROTO_IPV6, IPV6_V6ONLY) != 0)
		failf("IPV6_V6ONLY: %d and %d, want 1 and 0", opt(l6, IPPROTO_IPV6, IPV6_V6ONLY), opt(ld, IPPROTO_IPV6, IPV6_V6ONLY));
	if (opt(u1, IPPROTO_IP, IP_TTL) != 33 || opt(u1, IPPROTO_IP, IP_TOS) != 0x10)
		failf("bound UDP socket: TTL %d TOS %d, want 33 and 16", opt(u1, IPPROTO_IP, IP_TTL), opt(u1, IPPROTO_IP, IP_TOS));
	if (opt(u2, SOL_SOCKET, SO_NO_CHECK) != 1)
		failf("connected UDP socket: SO_NO_CHECK %d, want 1", opt(u2, SOL_SOCKET, SO_NO_CHECK));
	if (port_of(u4) != u4port)
		failf("unconnected UDP socket shut down for reading: port %d, want %d", port_of(u4), u4port);
	if (send(u3, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		failf("UDP socket shut down for writing: send did not fail with EPIPE");
	{
		struct sockaddr_in a;
		socklen_t l = sizeof(a);
		char txt[32] = "";
		getsockname(fb, (struct sockaddr *)&a, &l);
		inet_ntop(AF_INET, &a.sin_addr, txt, sizeof(txt));
		if (strcmp(txt, "192.0.2.77") || ntohs(a.sin_port) != 40404 || opt(fb, IPPROTO_IP, IP_FREEBIND) != 0)
			failf("freebind socket: %s:%d freebind %d, want 192.0.2.77:40404 and 0", txt, ntohs(a.sin_port), opt(fb, IPPROTO_IP, IP_FREEBIND));
	}
	{
		struct sockaddr_in6 a;
		socklen_t l = sizeof(a);
		char txt[64] = "";
		getsockname(fb6, (struct sockaddr *)&a, &l);
		inet_ntop(AF_INET6, &a.sin6_addr, txt, sizeof(txt));
		if (strcmp(txt, "2001:db8::77") || ntohs(a.sin6_port) != 40406 || opt(fb6, IPPROTO_IPV6, IPV6_FREEBIND) != 1)
			failf("IPv6 freebind socket: [%s]:%d freebind %d, want [2001:db8::77]:40406 and 1", txt, ntohs(a.sin6_port), opt(fb6, IPPROTO_IPV6, IPV6_FREEBIND));
	}
	if (opt(ul, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_UDPLITE)
		failf("UDP-Lite socket: protocol %d", opt(ul, SOL_SOCKET, SO_PROTOCOL));
	check_accepts(l4, AF_INET, "127.0.0.1", ports[0], names[0]);
	check_accepts(l6, AF_INET6, "::1", ports[1], names[1]);
	check_accepts(ld, AF_INET, "127.0.0.1", ports[2], "dual-stack listener (over IPv4)");
	{
		char b[16];
		if (send(u2, "ping", 4, 0) != 4)
			failf("connected UDP socket: send: %s", strerror(errno));
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = -1;
		for (int i = 0; i < 200 && n < 0; i++) {
			n = recvfrom(u1, b, sizeof(b), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
			if (n < 0)
				usleep(5000);
		}
		if (n != 4 || memcmp(b, "ping", 4) || ntohs(from.sin_port) != ports[5])
			failf("bound UDP socket: did not get the datagram of the connected one");
		else if (sendto(u1, "pong", 4, 0, (struct sockaddr *)&from, fl) != 4 || recv(u2, b, sizeof(b), 0) != 4)
			failf("connected UDP socket: no answer");
	}
	return prog_finish();
}
