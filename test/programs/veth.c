/*
 * veth: a task in a network namespace of its own joined to the namespace it
 * was started in (the test's "host") by a veth pair, as a container's, with a
 * second veth pair whose both ends are inside, and a TCP echo server.
 *
 * Started in the host namespace; argv[1] is the directory. The state:
 *   - in the host namespace: cryo-h0, 10.77.0.1/24, up (the host's end);
 *     bridge cryo-hbr (10.44.0.1/24, up), the lower link of macvlan cryo-mv0
 *     (mode bridge), which is inside: MTU 1400, MAC 02:c7:00:00:00:4d, up,
 *     10.44.0.2/24;
 *   - inside: eth0 (the pair's other end), MTU 1400, MAC 02:c7:00:00:00:02,
 *     up, 10.77.0.2/24 and fd00:77::2/64; a route 198.51.100.0/24 via
 *     10.77.0.1 metric 7; net.ipv4.conf.eth0.rp_filter=2 and
 *     net.ipv6.conf.default.stable_secret;
 *   - inside: cryo-a (up, 10.88.0.1/24) paired with cryo-b (down, MTU 1300,
 *     MAC 02:c7:00:00:00:0b), a port of bridge cryo-br (up, MAC
 *     02:c7:00:00:00:99, 10.99.0.1/24);
 *   - an nft table "inet cryoveth" dropping TCP port 9 on eth0;
 *   - a TCP echo server on 10.77.0.2:7080 (each line comes back), served
 *     while it waits for the signal.
 * On SIGUSR1 it checks the links (their indexes as they were, each pair's
 * ends, MTU, MAC, flags), addresses, route, sysctl and nft rule, and PASSes.
 * SIGUSR2: eth0's MTU is changed first.
 */
#define _GNU_SOURCE
#include "common.h"
#include "netsetup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define MAXC 16

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
	if (strcmp(buf, want))
		failf("%s is \"%s\", want \"%s\"", path, buf, want);
}

/* The output of a command run in the namespace must contain `want`. */
/* MTU, flags and MAC by ioctl: /sys/class/net shows the namespace sysfs was mounted in, not this one. */
static void expect_link(const char *name, int mtu, const char *mac, int up)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	unsigned char *m = (unsigned char *)ifr.ifr_hwaddr.sa_data;
	char got[32];

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFMTU, &ifr))
		failf("%s: no such link (%s)", name, strerror(errno));
	else if (ifr.ifr_mtu != mtu)
		failf("%s's MTU is %d, want %d", name, ifr.ifr_mtu, mtu);
	if (!ioctl(s, SIOCGIFHWADDR, &ifr)) {
		snprintf(got, sizeof(got), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
		if (strcmp(got, mac))
			failf("%s's MAC is %s, want %s", name, got, mac);
	}
	if (!ioctl(s, SIOCGIFFLAGS, &ifr) && !!(ifr.ifr_flags & IFF_UP) != up)
		failf("%s is %s, want %s", name, up ? "down" : "up", up ? "up" : "down");
	close(s);
}

static void setns_or_die(int fd)
{
	if (setns(fd, CLONE_NEWNET)) {
		perror("setns");
		exit(2);
	}
}

/* Serves the echo connections until a signal came. */
static void serve(int lst)
{
	struct pollfd p[MAXC + 1];
	int n = 1;
	sigset_t m;
	char buf[512];

	wake_mask(&m);
	p[0].fd = lst;
	p[0].events = POLLIN;
	while (!got_usr1 && !got_usr2) {
		if (ppoll(p, n, NULL, &m) < 0)
			continue;
		if ((p[0].revents & POLLIN) && n <= MAXC) {
			int c = accept(lst, NULL, NULL);
			if (c >= 0) {
				p[n].fd = c;
				p[n].events = POLLIN;
				p[n].revents = 0;
				n++;
			}
		}
		for (int i = 1; i < n; i++) {
			ssize_t r;
			if (!p[i].revents)
				continue;
			r = read(p[i].fd, buf, sizeof(buf));
			if (r <= 0 || write(p[i].fd, buf, r) != r) {
				close(p[i].fd);
				p[i--] = p[--n];
			}
		}
	}
}

int main(int argc, char **argv)
{
	int host, inner, lst, one = 1, eth0, a, b, mv;
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons(7080) };
	char cmd[256], want[128];

	prog_init();
	host = open("/proc/self/ns/net", O_RDONLY);
	if (host < 0 || unshare(CLONE_NEWNET)) {
		perror("unshare");
		return 2;
	}
	inner = open("/proc/self/ns/net", O_RDONLY);
	/* The pair is made from the host's side, its other end put in here. */
	setns_or_die(host);
	snprintf(cmd, sizeof(cmd), "ip link add cryo-h0 type veth peer name eth0 netns /proc/%d/fd/%d", getpid(), inner);
	sh(cmd);
	sh("ip addr add 10.77.0.1/24 dev cryo-h0 && ip link set cryo-h0 up");
	sh("ip link add cryo-hbr type bridge && ip addr add 10.44.0.1/24 dev cryo-hbr && ip link set cryo-hbr up");
	snprintf(cmd, sizeof(cmd), "ip link add cryo-mv0 link cryo-hbr type macvlan mode bridge && ip link set cryo-mv0 netns /proc/%d/fd/%d", getpid(), inner);
	sh(cmd);
	setns_or_die(inner);
	close(host);
	close(inner);

	sh("ip link set lo up");
	sh("ip link set eth0 mtu 1400 address 02:c7:00:00:00:02 up");
	sh("ip addr add 10.77.0.2/24 dev eth0");
	sh("ip -6 addr add fd00:77::2/64 dev eth0 nodad");
	sh("ip route add 198.51.100.0/24 via 10.77.0.1 dev eth0 metric 7");
	sh("ip link set cryo-mv0 address 02:c7:00:00:00:4d mtu 1400 up && ip addr add 10.44.0.2/24 dev cryo-mv0");
	sh("ip link add cryo-a type veth peer name cryo-b");
	sh("ip link set cryo-b mtu 1300 address 02:c7:00:00:00:0b");
	sh("ip link set cryo-a up && ip addr add 10.88.0.1/24 dev cryo-a");
	sh("ip link add cryo-br type bridge && ip link set cryo-br address 02:c7:00:00:00:99 up");
	sh("ip addr add 10.99.0.1/24 dev cryo-br && ip link set cryo-b master cryo-br");
	sh("nft add table inet cryoveth && nft add chain inet cryoveth input '{ type filter hook input priority 0; }'"
	   " && nft add rule inet cryoveth input iifname eth0 tcp dport 9 counter drop");
	put("/proc/sys/net/ipv4/conf/eth0/rp_filter", "2");
	/* Reads EIO until set: a restore must still write it. */
	put("/proc/sys/net/ipv6/conf/default/stable_secret", "fd00::c7:1");
	eth0 = if_nametoindex("eth0");
	mv = if_nametoindex("cryo-mv0");
	a = if_nametoindex("cryo-a");
	b = if_nametoindex("cryo-b");
	sh("ip link set cryo-a address 02:c7:00:00:00:0a");

	lst = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, "10.77.0.2", &la.sin_addr);
	if (bind(lst, (struct sockaddr *)&la, sizeof(la)) || listen(lst, 8)) {
		perror("listen");
		return 2;
	}
	prog_ready();
	serve(lst);
	if (got_usr2)
		sh("ip link set eth0 mtu 1500");

	if (if_nametoindex("eth0") != (unsigned)eth0 || if_nametoindex("cryo-a") != (unsigned)a || if_nametoindex("cryo-b") != (unsigned)b)
		failf("link indexes eth0 %u cryo-a %u cryo-b %u, want %d %d %d", if_nametoindex("eth0"),
		      if_nametoindex("cryo-a"), if_nametoindex("cryo-b"), eth0, a, b);
	expect_link("eth0", 1400, "02:c7:00:00:00:02", 1);
	if (if_nametoindex("cryo-mv0") != (unsigned)mv)
		failf("cryo-mv0's index is %u, want %d", if_nametoindex("cryo-mv0"), mv);
	expect_link("cryo-mv0", 1400, "02:c7:00:00:00:4d", 1);
	expect_cmd("ip -d link show cryo-mv0", "macvlan mode bridge");
	expect_cmd("ip -d link show cryo-mv0", "link-netnsid");
	expect_cmd("ip addr show cryo-mv0", "inet 10.44.0.2/24");
	expect_link("cryo-b", 1300, "02:c7:00:00:00:0b", 0);
	expect_file("/proc/sys/net/ipv4/conf/eth0/rp_filter", "2");
	expect_file("/proc/sys/net/ipv6/conf/default/stable_secret", "fd00:0000:0000:0000:0000:0000:00c7:0001");
	/* eth0's other end is outside (another namespace), cryo-a's is cryo-b. */
	expect_cmd("ip -d link show eth0", "link-netnsid");
	expect_cmd("ip link show cryo-a", "cryo-a@cryo-b: ");
	if (if_nametoindex("cryo-a"))
		expect_link("cryo-a", 1500, "02:c7:00:00:00:0a", 1);
	expect_cmd("ip -d link show cryo-b", "veth");
	expect_cmd("ip link show cryo-b", " master cryo-br ");
	expect_cmd("ip -d link show cryo-br", "bridge");
	expect_cmd("ip addr show cryo-br", "inet 10.99.0.1/24");
	if (if_nametoindex("cryo-br"))
		expect_link("cryo-br", 1300, "02:c7:00:00:00:99", 1);
	expect_cmd("ip addr show eth0", "inet 10.77.0.2/24");
	expect_cmd("ip addr show eth0", "inet6 fd00:77::2/64");
	expect_cmd("ip addr show cryo-a", "inet 10.88.0.1/24");
	expect_cmd("ip route show 198.51.100.0/24", "198.51.100.0/24 via 10.77.0.1 dev eth0 metric 7");
	snprintf(want, sizeof(want), "iifname \"eth0\" tcp dport 9 counter");
	expect_cmd("nft list table inet cryoveth", want);
	return prog_finish();
}
