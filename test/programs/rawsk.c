/* Raw inet sockets and ICMP "ping" sockets, in a network namespace of the
 * task's own (unshare(CLONE_NEWNET), lo up, net.ipv4.ping_group_range "0 0"):
 *  - a raw IPv4 ICMP socket bound to 127.0.0.1 whose ICMP_FILTER lets only
 *    echo replies through;
 *  - a raw ICMPv6 socket whose ICMP6_FILTER lets only echo replies through;
 *  - a raw IPv4 UDP socket with IP_HDRINCL, IP_NODEFRAG and IP_TTL 99,
 *    connected to 127.0.0.3;
 *  - a ping socket bound to 127.0.0.1 with echo identifier 4242;
 *  - an ICMPv6 ping socket that pinged ::1 once (the kernel gave it an
 *    identifier), its reply read;
 *  - shut down: a raw ICMP socket with IP_HDRINCL for writing, a ping socket
 *    bound to 4343 and connected to 127.0.0.1 for writing, an unbound one
 *    bound to the device lo for writing (shutdown says ENOTCONN but sets the
 *    bit; only a send shows it), an ICMPv6 ping socket bound to 4444 for
 *    reading.
 * After restore: the options, addresses and identifiers are as they were; a
 * ping through each raw ICMP socket gets the reply and not the request (the
 * filters work), and each ping socket gets its echo reply with its identifier;
 * the sockets shut down for writing refuse to send (EPIPE), the unbound one is
 * still unbound and bound to lo, the one shut down for reading reads the end.
 * argv[2] "queued": a reply is left unread in the ICMPv6 ping socket;
 * "checksum": a raw IPv6 UDP socket with IPV6_CHECKSUM 6 (both refused).
 * SIGUSR2: the IPv4 ICMP filter is cleared (FAIL). */
#include "common.h"
#include <arpa/inet.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#ifndef IP_NODEFRAG
#define IP_NODEFRAG 22
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

static struct sockaddr_in in4(const char *a, int port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

static struct sockaddr_in6 in6(const char *a)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, a, &s.sin6_addr);
	return s;
}

/* An echo request (ICMP and ICMPv6 share the header layout). */
static int ping(int fd, int v6, int type, int id, int seq)
{
	unsigned char pkt[16] = { 0 };
	struct icmphdr *h = (struct icmphdr *)pkt;
	struct sockaddr_in a4 = in4("127.0.0.1", 0);
	struct sockaddr_in6 a6 = in6("::1");
	unsigned sum = 0;
	int i;

	h->type = type;
	h->un.echo.id = htons(id);
	h->un.echo.sequence = htons(seq);
	memcpy(pkt + 8, "cryoping", 8);
	if (!v6) { /* the kernel checksums ICMPv6 and ping sockets, not raw ICMP */
		for (i = 0; i < 16; i += 2)
			sum += pkt[i] << 8 | pkt[i + 1];
		sum = (sum & 0xffff) + (sum >> 16);
		h->checksum = htons(~sum & 0xffff);
	}
	return v6 ? sendto(fd, pkt, 16, 0, (struct sockaddr *)&a6, sizeof(a6))
		  : sendto(fd, pkt, 16, 0, (struct sockaddr *)&a4, sizeof(a4));
}

/* The ICMP message the socket receives next (past the IP header of a raw IPv4 one), or NULL. */
static struct icmphdr *next_icmp(int fd, int skip_ip, unsigned char *buf, int size)
{
	int n;
	usleep(20000);
	n = recv(fd, buf, size, MSG_DONTWAIT);
	if (n < 8)
		return NULL;
	if (skip_ip)
		return (struct icmphdr *)(buf + (buf[0] & 0xf) * 4);
	return (struct icmphdr *)buf;
}

static int port_of(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l))
		return -1;
	return ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port : ((struct sockaddr_in6 *)&a)->sin6_port);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	struct icmp_filter f4 = { .data = ~(1U << ICMP_ECHOREPLY) }, g4;
	struct icmp6_filter f6, g6;
	struct sockaddr_in a;
	struct ifreq ifr = { 0 };
	unsigned char buf[256];
	struct icmphdr *h;
	socklen_t l;
	int r4, r6, rudp, p4, p6, s, id6, rs, ps, pu, pr;
	char dev[16] = "";
	FILE *f;

	prog_init();
	signal(SIGPIPE, SIG_IGN);
	MUST(unshare(CLONE_NEWNET) == 0);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	strcpy(ifr.ifr_name, "lo");
	ifr.ifr_flags = IFF_UP | IFF_RUNNING;
	MUST(ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
	close(s);
	MUST((f = fopen("/proc/sys/net/ipv4/ping_group_range", "w")) && fputs("0 0", f) >= 0 && fclose(f) == 0);
	usleep(100000); /* ::1 settles */

	MUST((r4 = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)) >= 0);
	a = in4("127.0.0.1", 0);
	MUST(bind(r4, (struct sockaddr *)&a, sizeof(a)) == 0);
	MUST(setsockopt(r4, SOL_RAW, ICMP_FILTER, &f4, sizeof(f4)) == 0);

	MUST((rudp = socket(AF_INET, SOCK_RAW, IPPROTO_UDP)) >= 0);
	setopt(rudp, IPPROTO_IP, IP_HDRINCL, 1);
	setopt(rudp, IPPROTO_IP, IP_NODEFRAG, 1);
	setopt(rudp, IPPROTO_IP, IP_TTL, 99);
	a = in4("127.0.0.3", 0);
	MUST(connect(rudp, (struct sockaddr *)&a, sizeof(a)) == 0);

	MUST((p4 = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)) >= 0);
	a = in4("127.0.0.1", 4242);
	MUST(bind(p4, (struct sockaddr *)&a, sizeof(a)) == 0);

	MUST((p6 = socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)) >= 0);
	MUST(ping(p6, 1, ICMPV6_ECHO_REQUEST, 0, 1) == 16);
	MUST((h = next_icmp(p6, 0, buf, sizeof(buf))) && h->type == ICMPV6_ECHO_REPLY);
	id6 = port_of(p6);
	MUST(id6 > 0);
	if (!strcmp(mode, "queued")) {
		MUST(ping(p6, 1, ICMPV6_ECHO_REQUEST, 0, 9) == 16);
		usleep(20000);
	}

	/* After that ping: a raw ICMPv6 socket gets a copy of every reply. */
	MUST((r6 = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)) >= 0);
	memset(&f6, 0xff, sizeof(f6));
	f6.data[ICMPV6_ECHO_REPLY >> 5] &= ~(1U << (ICMPV6_ECHO_REPLY & 31));
	MUST(setsockopt(r6, SOL_ICMPV6, ICMPV6_FILTER, &f6, sizeof(f6)) == 0);

	MUST((rs = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)) >= 0);
	setopt(rs, IPPROTO_IP, IP_HDRINCL, 1);
	MUST(shutdown(rs, SHUT_WR) == -1 && errno == ENOTCONN);
	MUST((ps = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)) >= 0);
	a = in4("127.0.0.1", 4343);
	MUST(bind(ps, (struct sockaddr *)&a, sizeof(a)) == 0);
	MUST(connect(ps, (struct sockaddr *)&a, sizeof(a)) == 0);
	MUST(shutdown(ps, SHUT_WR) == 0);
	MUST((pu = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)) >= 0);
	MUST(setsockopt(pu, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) == 0);
	MUST(shutdown(pu, SHUT_WR) == -1 && errno == ENOTCONN);
	MUST((pr = socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)) >= 0);
	{
		struct sockaddr_in6 b = in6("::1");
		b.sin6_port = htons(4444);
		MUST(bind(pr, (struct sockaddr *)&b, sizeof(b)) == 0);
	}
	MUST(shutdown(pr, SHUT_RD) == -1 && errno == ENOTCONN);

	if (!strcmp(mode, "checksum")) {
		int c;
		MUST((c = socket(AF_INET6, SOCK_RAW, IPPROTO_UDP)) >= 0);
		setopt(c, IPPROTO_IPV6, IPV6_CHECKSUM, 6);
	}
	prog_ready();

	if (wait_for_signal()) {
		struct icmp_filter none = { 0 };
		MUST(setsockopt(r4, SOL_RAW, ICMP_FILTER, &none, sizeof(none)) == 0);
	}

	l = sizeof(g4);
	if (getsockopt(r4, SOL_RAW, ICMP_FILTER, &g4, &l) || g4.data != f4.data)
		failf("raw ICMP: ICMP_FILTER %#x, want %#x", g4.data, f4.data);
	if (ping(r4, 0, ICMP_ECHO, 77, 1) != 16)
		failf("raw ICMP: cannot send: %s", strerror(errno));
	else if (!(h = next_icmp(r4, 1, buf, sizeof(buf))) || h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != 77)
		failf("raw ICMP: the first message is not the echo reply (type %d)", h ? h->type : -1);
	l = sizeof(a);
	if (getsockname(r4, (struct sockaddr *)&a, &l) || a.sin_addr.s_addr != htonl(0x7f000001))
		failf("raw ICMP: not bound to 127.0.0.1 any more");

	l = sizeof(g6);
	if (getsockopt(r6, SOL_ICMPV6, ICMPV6_FILTER, &g6, &l) || memcmp(&g6, &f6, sizeof(f6)))
		failf("raw ICMPv6: ICMP6_FILTER differs");
	if (ping(r6, 1, ICMPV6_ECHO_REQUEST, 78, 1) != 16)
		failf("raw ICMPv6: cannot send: %s", strerror(errno));
	else if (!(h = next_icmp(r6, 0, buf, sizeof(buf))) || h->type != ICMPV6_ECHO_REPLY || ntohs(h->un.echo.id) != 78)
		failf("raw ICMPv6: the first message is not the echo reply (type %d)", h ? h->type : -1);

	if (opt(rudp, IPPROTO_IP, IP_HDRINCL) != 1 || opt(rudp, IPPROTO_IP, IP_NODEFRAG) != 1 || opt(rudp, IPPROTO_IP, IP_TTL) != 99)
		failf("raw UDP: hdrincl %d nodefrag %d ttl %d", opt(rudp, IPPROTO_IP, IP_HDRINCL), opt(rudp, IPPROTO_IP, IP_NODEFRAG), opt(rudp, IPPROTO_IP, IP_TTL));
	{
		/* Raw sockets have no getpeername: a send without an address works only connected. */
		unsigned char pkt[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0, 0, 0, 0, 0, 127, 0, 0, 3, 0, 1, 0, 9, 0, 8 };
		if (send(rudp, pkt, sizeof(pkt), 0) != sizeof(pkt))
			failf("raw UDP: not connected any more (send: %s)", strerror(errno));
	}

	if (port_of(p4) != 4242)
		failf("ping: identifier %d, want 4242", port_of(p4));
	if (ping(p4, 0, ICMP_ECHO, 0, 2) != 16)
		failf("ping: cannot send: %s", strerror(errno));
	else if (!(h = next_icmp(p4, 0, buf, sizeof(buf))) || h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != 4242)
		failf("ping: no echo reply with identifier 4242");

	if (port_of(p6) != id6)
		failf("ping6: identifier %d, want %d", port_of(p6), id6);
	if (ping(p6, 1, ICMPV6_ECHO_REQUEST, 0, 2) != 16)
		failf("ping6: cannot send: %s", strerror(errno));
	else if (!(h = next_icmp(p6, 0, buf, sizeof(buf))) || h->type != ICMPV6_ECHO_REPLY || ntohs(h->un.echo.id) != id6)
		failf("ping6: no echo reply with identifier %d", id6);

	{
		unsigned char pkt[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, IPPROTO_ICMP, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1, ICMP_ECHO };
		a = in4("127.0.0.1", 0);
		if (sendto(rs, pkt, sizeof(pkt), MSG_NOSIGNAL, (struct sockaddr *)&a, sizeof(a)) != -1 || errno != EPIPE)
			failf("raw ICMP shut down for writing: a send says %s, want EPIPE", strerror(errno));
	}
	if (port_of(ps) != 4343)
		failf("ping shut down: identifier %d, want 4343", port_of(ps));
	if (send(ps, "\x08\0\0\0\0\0\0\0", 8, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		failf("ping shut down for writing: a send says %s, want EPIPE", strerror(errno));
	if (port_of(pu) != 0)
		failf("unbound ping: bound to identifier %d", port_of(pu));
	l = sizeof(dev);
	if (getsockopt(pu, SOL_SOCKET, SO_BINDTODEVICE, dev, &l) || strcmp(dev, "lo"))
		failf("unbound ping: bound to device \"%s\", want lo", dev);
	if (ping(pu, 0, ICMP_ECHO, 0, 3) != -1 || errno != EPIPE)
		failf("unbound ping shut down for writing: a send says %s, want EPIPE", strerror(errno));
	if (port_of(pr) != 4444)
		failf("ping6 shut down: identifier %d, want 4444", port_of(pr));
	{
		/* Shut down for reading, it polls as the end; a (blocking) read returns it at once. */
		struct pollfd pf = { .fd = pr, .events = POLLIN | POLLRDHUP };
		if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLRDHUP))
			failf("ping6 shut down for reading: poll says %#x, want POLLRDHUP", pf.revents);
		else if ((s = recv(pr, buf, sizeof(buf), 0)) != 0)
			failf("ping6 shut down for reading: recv says %d (%s), want 0", s, s < 0 ? strerror(errno) : "");
	}
	return prog_finish();
}
