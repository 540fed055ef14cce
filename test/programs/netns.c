/*
 * netns: a task in a network namespace of its own (unshare(CLONE_NEWNET)),
 * with only its loopback, set up as a container's would be, and sockets in it.
 *
 * argv[2] (the directory is argv[1]):
 *   own   - (default) unshare(CLONE_NEWNET) and set everything up;
 *   given - the same in the namespace it was started in (`unshare -n`).
 * The state (made with ip(8), nft(8) and /proc/sys, all inside the namespace):
 *   - lo up, its MTU 9000;
 *   - addresses 127.5.5.5/32 and fd00:c7e0::1/128 on lo;
 *   - a route 203.0.113.0/24 dev lo metric 42 (main table), a route in table
 *     100 and a rule "from 127.5.5.5 lookup 100 pref 1000";
 *   - sysctls net.ipv4.conf.all.forwarding=1, net.ipv4.conf.lo.rp_filter=2,
 *     net.ipv6.conf.lo.hop_limit=33, net.ipv4.conf.default.accept_local=1,
 *     net.unix.max_dgram_qlen=77, net.ipv4.ping_group_range "0 0",
 *     net.core.somaxconn=777 (cryo's own field: CRIU keeps none of net.core);
 *   - an nft table "inet cryotest" with a rule dropping TCP port 9 and one
 *     matching conntrack state (so the connection below is tracked), and a
 *     legacy iptables rule (iptables-legacy) dropping TCP port 10;
 *   - a TCP listener on 127.5.5.5:7070, a connection to it accepted (both
 *     ends in this task), "hello" sent by the client and not yet read;
 *   - a UDP socket bound to [fd00:c7e0::1]:7071 (IPv6);
 *   - a unix listener on the abstract name "cryo-netns" (abstract names are
 *     per network namespace).
 * On SIGUSR1 it checks all of that, talks over the connection both ways,
 * connects to the listener and to the abstract name again, sends itself a
 * datagram, and PASSes. SIGUSR2: lo's MTU is changed first.
 */
#define _GNU_SOURCE
#include "common.h"
#include "netsetup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/un.h>

static void put(const char *path, const char *v)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(v, f) < 0 || fclose(f)) {
		perror(path);
		exit(2);
	}
}

static void expect_file(const char *path, const char *want)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	if (!f) {
		failf("%s: cannot open: %s", path, strerror(errno));
		return;
	}
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	for (char *p = buf; *p; p++)
		if (*p == '\t')
			*p = ' ';
	if (strcmp(buf, want))
		failf("%s is \"%s\", want \"%s\"", path, buf, want);
}

/* The output of a command run in the namespace must contain `want`. */
static struct sockaddr_in v4(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static struct sockaddr_in6 v6(const char *ip, int port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	inet_pton(AF_INET6, ip, &a.sin6_addr);
	return a;
}

static socklen_t abstract(struct sockaddr_un *a)
{
	static const char name[] = "cryo-netns";
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path + 1, name, sizeof(name) - 1);
	return offsetof(struct sockaddr_un, sun_path) + 1 + sizeof(name) - 1;
}

static int lo_mtu(int set)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0), r;
	strcpy(ifr.ifr_name, "lo");
	if (set) {
		ifr.ifr_mtu = set;
		r = ioctl(s, SIOCSIFMTU, &ifr);
	} else {
		r = ioctl(s, SIOCGIFMTU, &ifr);
	}
	close(s);
	return r ? -1 : ifr.ifr_mtu;
}

static int lo_flags(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0), r;
	strcpy(ifr.ifr_name, "lo");
	r = ioctl(s, SIOCGIFFLAGS, &ifr);
	close(s);
	return r ? -1 : ifr.ifr_flags;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "own";
	int one = 1, lst, cli, srv, udp, ul;
	struct sockaddr_in la = v4("127.5.5.5", 7070);
	struct sockaddr_in6 ua = v6("fd00:c7e0::1", 7071);
	struct sockaddr_un un;
	socklen_t unlen = abstract(&un);
	char buf[64];

	prog_init();
	if (!strcmp(mode, "own") && unshare(CLONE_NEWNET)) {
		perror("unshare");
		return 2;
	}
	sh("ip link set lo up mtu 9000");
	sh("ip addr add 127.5.5.5/32 dev lo");
	sh("ip -6 addr add fd00:c7e0::1/128 dev lo nodad");
	sh("ip route add 203.0.113.0/24 dev lo metric 42");
	sh("ip route add 198.51.100.0/24 dev lo table 100");
	sh("ip rule add from 127.5.5.5 lookup 100 pref 1000");
	sh("nft add table inet cryotest && nft add chain inet cryotest input '{ type filter hook input priority 0; }'"
	   " && nft add rule inet cryotest input tcp dport 9 counter drop"
	   " && nft add rule inet cryotest input ct state established counter accept");
	sh("iptables-legacy -w -A INPUT -p tcp --dport 10 -j DROP");
	put("/proc/sys/net/ipv4/conf/all/forwarding", "1");
	put("/proc/sys/net/ipv4/conf/lo/rp_filter", "2");
	put("/proc/sys/net/ipv6/conf/lo/hop_limit", "33");
	put("/proc/sys/net/ipv4/conf/default/accept_local", "1");
	put("/proc/sys/net/unix/max_dgram_qlen", "77");
	put("/proc/sys/net/core/somaxconn", "777");
	put("/proc/sys/net/ipv4/ping_group_range", "0 0");

	lst = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lst, (struct sockaddr *)&la, sizeof(la)) || listen(lst, 8)) {
		perror("listen");
		return 2;
	}
	cli = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(cli, (struct sockaddr *)&la, sizeof(la))) {
		perror("connect");
		return 2;
	}
	srv = accept(lst, NULL, NULL);
	if (srv < 0 || write(cli, "hello", 5) != 5) {
		perror("accept/write");
		return 2;
	}
	udp = socket(AF_INET6, SOCK_DGRAM, 0);
	if (bind(udp, (struct sockaddr *)&ua, sizeof(ua))) {
		perror("bind udp6");
		return 2;
	}
	ul = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(ul, (struct sockaddr *)&un, unlen) || listen(ul, 4)) {
		perror("bind abstract");
		return 2;
	}
	/* Let the queued bytes arrive before the dump reads them. */
	usleep(100000);
	prog_ready();

	if (wait_for_signal())
		lo_mtu(1500);

	if (lo_mtu(0) != 9000)
		failf("lo's MTU is %d, want 9000", lo_mtu(0));
	if ((lo_flags() & (IFF_UP | IFF_LOOPBACK)) != (IFF_UP | IFF_LOOPBACK))
		failf("lo's flags are 0x%x, not up", lo_flags());
	expect_cmd("ip -4 addr show dev lo", "inet 127.5.5.5/32");
	expect_cmd("ip -6 addr show dev lo", "inet6 fd00:c7e0::1/128");
	expect_cmd("ip route show 203.0.113.0/24", "203.0.113.0/24 dev lo scope link metric 42");
	expect_cmd("ip route show table 100", "198.51.100.0/24 dev lo");
	expect_cmd("ip rule show", "1000:\tfrom 127.5.5.5 lookup 100");
	expect_cmd("nft list table inet cryotest", "tcp dport 9 counter");
	expect_cmd("iptables-legacy-save", "-A INPUT -p tcp -m tcp --dport 10 -j DROP");
	expect_file("/proc/sys/net/ipv4/conf/all/forwarding", "1");
	expect_file("/proc/sys/net/ipv4/conf/lo/rp_filter", "2");
	expect_file("/proc/sys/net/ipv6/conf/lo/hop_limit", "33");
	expect_file("/proc/sys/net/ipv4/conf/default/accept_local", "1");
	expect_file("/proc/sys/net/unix/max_dgram_qlen", "77");
	expect_file("/proc/sys/net/core/somaxconn", "777");
	expect_file("/proc/sys/net/ipv4/ping_group_range", "0 0");

	/* The connection: the queued bytes, then both ways. */
	memset(buf, 0, sizeof(buf));
	if (read(srv, buf, 5) != 5 || memcmp(buf, "hello", 5))
		failf("the server read \"%s\", want hello", buf);
	if (write(srv, "world", 5) != 5 || read(cli, buf, 5) != 5 || memcmp(buf, "world", 5))
		failf("the client did not read world back");
	/* The listener takes new connections on its address. */
	{
		int c = socket(AF_INET, SOCK_STREAM, 0), a;
		if (connect(c, (struct sockaddr *)&la, sizeof(la)))
			failf("connect to 127.5.5.5:7070 again: %s", strerror(errno));
		else if ((a = accept(lst, NULL, NULL)) < 0)
			failf("accept: %s", strerror(errno));
		else
			close(a);
		close(c);
	}
	/* The UDP socket still owns its v6 address. */
	{
		int c = socket(AF_INET6, SOCK_DGRAM, 0);
		if (sendto(c, "dgram", 5, 0, (struct sockaddr *)&ua, sizeof(ua)) != 5)
			failf("sendto [fd00:c7e0::1]:7071: %s", strerror(errno));
		else if (recv(udp, buf, sizeof(buf), MSG_DONTWAIT) != 5)
			failf("the UDP socket got nothing: %s", strerror(errno));
		close(c);
	}
	/* The abstract name is in this namespace. */
	{
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&un, unlen))
			failf("connect to @cryo-netns: %s", strerror(errno));
		close(c);
	}
	return prog_finish();
}
